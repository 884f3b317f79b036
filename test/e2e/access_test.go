package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/test/harness"
)

// fromStranger sends one request to n's REST API from the stranger network (a non-loopback
// address that is no member's), at this host's address on that link.
func fromStranger(c *http.Client, n *harness.Node, method, path string, body any) (int, string, error) {
	return send(c, method, fmt.Sprintf("http://%s:%d%s", harness.StrangerHostAddr, n.APIPort, path), body, 10*time.Second)
}

// TestStrangersAreKeptOut: with no access setting, a client that is neither this host nor a member
// can read but not change anything (PATCH /config with an archive_command would be code execution
// as postgres), while loopback clients such as tuskerctl keep working; and a stranger repeating
// POST /failsafe in the leader's name never keeps the replicas from failing over.
func TestStrangersAreKeptOut(t *testing.T) {
	e := newCluster(t, 3, "bootstrap:\n  dcs:\n    failsafe_mode: true\n")
	for _, n := range e.c.Nodes {
		n.APIListen = "0.0.0.0" // reachable from the stranger's link too
		require.NoError(t, e.c.WriteConfig(n, "bootstrap:\n  dcs:\n    failsafe_mode: true\n"))
	}
	stranger := harness.Stranger(t)
	require.NoError(t, e.c.Start())
	p := e.waitHealthy(90 * time.Second)
	seed(t, e.c, p)

	// Reads are open, as in Patroni.
	code, _, err := fromStranger(stranger, p, "GET", "/patroni", nil)
	require.NoError(t, err)
	require.Equal(t, 200, code)

	// Every unsafe method is refused, with a message that says what to configure.
	for _, r := range []struct {
		method, path string
		body         any
	}{
		{"PATCH", "/config", map[string]any{"postgresql": map[string]any{"parameters": map[string]any{"archive_mode": "on", "archive_command": "touch /tmp/tusker-pwned"}}}},
		{"PUT", "/config", map[string]any{"ttl": 30}},
		{"POST", "/restart", map[string]any{}},
		{"POST", "/reload", nil},
		{"POST", "/switchover", map[string]any{"leader": p.Name, "candidate": others(e.c, p)[0].Name}},
		{"POST", "/reinitialize", map[string]any{}},
		{"DELETE", "/switchover", nil},
	} {
		code, msg, err := fromStranger(stranger, p, r.method, r.path, r.body)
		require.NoError(t, err)
		require.Equal(t, http.StatusForbidden, code, "%s %s: %s", r.method, r.path, msg)
		require.Contains(t, msg, "restapi.authentication", "%s %s", r.method, r.path)
	}
	require.Contains(t, p.Log(), "REST API request refused: address not in the allowlist")
	_, cfg := call(t, p, "GET", "/config", nil)
	require.NotContains(t, cfg, "archive_command", "a refused PATCH changed the configuration")
	require.Equal(t, "primary", field(p, "role"), "a refused switchover moved the primary")

	// This host is let in: a PATCH from loopback works as before.
	code, msg := call(t, p, "PATCH", "/config", map[string]any{"loop_wait": 1})
	require.Equal(t, 200, code, msg)

	// The failsafe key lists the members once the leader wrote it.
	waitFor(t, 15*time.Second, "failsafe key", func() error {
		code, body, _ := tryCall(p, "GET", "/failsafe", nil)
		var m map[string]string
		if code != 200 || json.Unmarshal([]byte(body), &m) != nil || len(m) != 3 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	replicas := others(e.c, p)
	fake := map[string]any{"name": p.Name, "conn_url": fmt.Sprintf("postgres://%s:%d/postgres", p.Host, p.PGPort),
		"api_url": p.APIURL() + "/patroni"}
	for _, r := range replicas {
		code, msg, err := fromStranger(stranger, r, "POST", "/failsafe", fake)
		require.NoError(t, err)
		require.Equal(t, http.StatusForbidden, code, "POST /failsafe in %s's name to %s: %s", p.Name, r.Name, msg)
	}

	// The stranger keeps repeating it while the primary dies: a replica is promoted all the same.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var accepted, refused atomic.Int64
	for _, r := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if code, _, err := fromStranger(stranger, r, "POST", "/failsafe", fake); err == nil {
					if code == 200 {
						accepted.Add(1)
					} else {
						refused.Add(1)
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()
	p.KillNode()
	np := waitNewPrimary(t, e.c, p, 60*time.Second)
	waitRow(t, np, 1)
	stop()
	wg.Wait()
	require.Zero(t, accepted.Load(), "a stranger's POST /failsafe was accepted")
	require.Positive(t, refused.Load(), "the stranger's requests did not arrive")
}
