package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tusker-ha/tusker/test/harness"
)

// call sends a management request to a node's REST API and returns the status code and body.
func call(t *testing.T, n *harness.Node, method, path string, body any) (int, string) {
	t.Helper()
	code, msg, err := tryCall(n, method, path, body)
	require.NoError(t, err, "%s %s on %s", method, path, n.Name)
	return code, msg
}

// tryCall is call for use inside waitFor: a connection error is returned, not fatal.
func tryCall(n *harness.Node, method, path string, body any) (int, string, error) {
	return send(n.HTTPClient(), method, n.APIURL()+path, body, 60*time.Second)
}

// send sends one request with a JSON body (nil for none) and returns the status and the trimmed
// answer; a connection error is returned.
func send(c *http.Client, method, url string, body any, timeout time.Duration) (int, string, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, "", err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, "", err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// patroni reads one field of a node's /patroni.
func field(n *harness.Node, key string) any {
	m, _, err := n.Patroni(context.Background())
	if err != nil {
		return nil
	}
	return m[key]
}

// waitFor is harness.WaitFor with a test failure.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	require.NoError(t, harness.WaitFor(context.Background(), timeout, 100*time.Millisecond, cond), what)
}

// waitPrimary waits until want is the primary (and the only one).
func waitPrimary(t *testing.T, c *harness.Cluster, want *harness.Node, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, timeout, "primary "+want.Name, func() error {
		p, err := c.Primary(ctx)
		if err != nil {
			return err
		}
		if p != want {
			return fmt.Errorf("primary is %s", p.Name)
		}
		return c.Healthy(ctx)
	})
}

// waitNewPrimary waits until a member other than old is the primary and returns it.
func waitNewPrimary(t *testing.T, c *harness.Cluster, old *harness.Node, timeout time.Duration) *harness.Node {
	t.Helper()
	var np *harness.Node
	waitFor(t, timeout, "a primary other than "+old.Name, func() error {
		var err error
		np, err = c.Primary(context.Background())
		if err == nil && np == old {
			return fmt.Errorf("still %s", old.Name)
		}
		return err
	})
	return np
}

// callbackScript writes a callback that appends its arguments to dir/callbacks.log.
func callbackScript(t *testing.T, dir string) (script, log string) {
	t.Helper()
	log = filepath.Join(dir, "callbacks.log")
	script = filepath.Join(dir, "callback.sh")
	require.NoError(t, os.WriteFile(script, []byte(fmt.Sprintf("#!/bin/sh\necho \"$@\" >> %s\n", log)), 0o755))
	return script, log
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// TestSwitchoverFailoverAndCallbacks drives planned and unplanned role changes through the REST
// API and checks Patroni's answers, data safety and the callbacks each node ran.
func TestSwitchoverFailoverAndCallbacks(t *testing.T) {
	e := newCluster(t, 3, "")
	logs := map[string]string{}
	for _, n := range e.c.Nodes {
		script, log := callbackScript(t, n.Dir)
		logs[n.Name] = log
		n.PGExtra = fmt.Sprintf("  callbacks:\n    on_start: %s\n    on_stop: %s\n    on_role_change: %s\n    on_restart: %s\n", script, script, script, script)
		require.NoError(t, e.c.WriteConfig(n, ""))
	}
	require.NoError(t, e.c.Start())
	p := e.waitHealthy(90 * time.Second)
	seed(t, e.c, p)
	reps := others(e.c, p)
	cand := reps[0]

	// Refused requests name what is wrong.
	code, msg := call(t, p, "POST", "/switchover", map[string]any{"leader": p.Name, "candidate": "nobody"})
	require.Equal(t, 412, code, msg)
	require.Equal(t, "candidate does not exists", msg)
	code, msg = call(t, p, "POST", "/switchover", map[string]any{"leader": cand.Name, "candidate": p.Name})
	require.Equal(t, 412, code, msg)
	require.Equal(t, "leader name does not match", msg)
	code, msg = call(t, p, "POST", "/failover", map[string]any{})
	require.Equal(t, 400, code, msg)
	code, msg = call(t, p, "DELETE", "/switchover", nil)
	require.Equal(t, 404, code, msg)

	// A switchover returns once the candidate is the running primary.
	insert(t, p, 2)
	start := time.Now()
	code, msg = call(t, reps[1], "POST", "/switchover", map[string]any{"leader": p.Name, "candidate": cand.Name})
	require.Equal(t, 200, code, msg)
	require.Equal(t, fmt.Sprintf("Successfully switched over to %q", cand.Name), msg)
	t.Logf("switchover call took %s", time.Since(start))
	m, _, err := cand.Patroni(context.Background())
	require.NoError(t, err)
	require.Equal(t, "primary", m["role"], "the call returned before the candidate was primary")
	waitRow(t, cand, 2)
	waitPrimary(t, e.c, cand, 60*time.Second)
	insert(t, cand, 3)
	waitRow(t, p, 3) // the old primary rejoined as a replica
	require.Contains(t, p.Log(), "switchover: leader key released")

	// A failover to a named replica with a live leader is a switchover too.
	code, msg = call(t, cand, "POST", "/failover", map[string]any{"candidate": p.Name})
	require.Equal(t, 200, code, msg)
	require.Equal(t, fmt.Sprintf("Successfully failed over to %q", p.Name), msg)
	waitPrimary(t, e.c, p, 60*time.Second)

	// Scheduled: recorded, shown, cancellable; then carried out at its time.
	at := time.Now().Add(time.Hour).Format(time.RFC3339)
	code, msg = call(t, p, "POST", "/switchover", map[string]any{"leader": p.Name, "candidate": cand.Name, "scheduled_at": at})
	require.Equal(t, 202, code, msg)
	require.Equal(t, "Switchover scheduled", msg)
	waitFor(t, 10*time.Second, "scheduled_switchover in /cluster", func() error {
		if code, msg, _ := tryCall(p, "GET", "/cluster", nil); code != 200 || !strings.Contains(msg, `"scheduled_switchover"`) {
			return fmt.Errorf("%d %s", code, msg)
		}
		return nil
	})
	code, msg = call(t, p, "DELETE", "/switchover", nil)
	require.Equal(t, 200, code, msg)
	require.Equal(t, "scheduled switchover deleted", msg)
	at = time.Now().Add(3 * time.Second).Format(time.RFC3339Nano)
	code, msg = call(t, p, "POST", "/switchover", map[string]any{"leader": p.Name, "candidate": cand.Name, "scheduled_at": at})
	require.Equal(t, 202, code, msg)
	waitPrimary(t, e.c, cand, 60*time.Second)

	// Unplanned: the primary's node dies; the new primary's on_role_change says so.
	insert(t, cand, 4)
	for _, n := range others(e.c, cand) {
		waitRow(t, n, 4)
	}
	cand.KillNode()
	np := waitNewPrimary(t, e.c, cand, 60*time.Second)
	waitRow(t, np, 4)
	waitFor(t, 10*time.Second, "on_role_change callback", func() error {
		if !strings.Contains(readFile(logs[np.Name]), "on_role_change primary e2e") {
			return fmt.Errorf("callbacks of %s: %q", np.Name, readFile(logs[np.Name]))
		}
		return nil
	})
	// Every node started postgres (bootstrap and clones included) and ran on_start for it; the
	// old primary of the switchover stopped (on_stop) and came back as a replica.
	for _, n := range e.c.Nodes {
		require.Contains(t, readFile(logs[n.Name]), "on_start", n.Name)
	}
	// The bootstrapper is told it started as primary (not left to chance: it once depended on
	// whether the loop saw initdb's directory before postgres ran), the clones as replicas.
	require.True(t, strings.HasPrefix(readFile(logs[p.Name]), "on_start primary e2e\n"), readFile(logs[p.Name]))
	require.True(t, strings.HasPrefix(readFile(logs[cand.Name]), "on_start replica e2e\n"), readFile(logs[cand.Name]))
	require.Contains(t, readFile(logs[p.Name]), "on_stop primary e2e")
	require.Contains(t, readFile(logs[p.Name]), "on_role_change replica e2e")
}

// TestCrashedPostgresUnderALiveTusker: postgres dies, tusker restarts it; with
// primary_start_timeout 0 the primary hands over at once instead.
//
// Every callback hangs (sleep 1000) and pre_promote takes a second: neither may hold up the loop,
// the lease or a failover.
func TestCrashedPostgresUnderALiveTusker(t *testing.T) {
	e := newCluster(t, 3, "")
	for _, n := range e.c.Nodes {
		n.PGExtra = "  callbacks:\n    on_start: sh -c 'sleep 1000'\n    on_role_change: sh -c 'sleep 1000'\n" +
			"    on_stop: sh -c 'sleep 1000'\n  pre_promote: sh -c 'sleep 1'\n"
		require.NoError(t, e.c.WriteConfig(n, ""))
	}
	require.NoError(t, e.c.Start())
	p := e.waitHealthy(90 * time.Second)
	seed(t, e.c, p)

	// Default primary_start_timeout (300 s): the same primary comes back.
	oldPID := p.PostmasterPID()
	p.KillPostgres()
	waitFor(t, 60*time.Second, "postgres restarted on the primary", func() error {
		if pid := p.PostmasterPID(); pid <= 0 || pid == oldPID {
			return fmt.Errorf("postmaster pid %d", pid)
		}
		return nil
	})
	waitPrimary(t, e.c, p, 60*time.Second)
	insert(t, p, 2)
	for _, n := range others(e.c, p) {
		waitRow(t, n, 2)
	}

	// A replica's postgres dies: restarted as a replica.
	r := others(e.c, p)[0]
	r.KillPostgres()
	insert(t, p, 3)
	waitRow(t, r, 3)

	// primary_start_timeout 0: the lease is released at once and a replica takes over.
	code, msg := call(t, p, "PATCH", "/config", map[string]any{"primary_start_timeout": 0})
	require.Equal(t, 200, code, msg)
	waitFor(t, 10*time.Second, "the primary applied primary_start_timeout 0", func() error {
		if !strings.Contains(p.Log(), "dynamic configuration applied") || !strings.Contains(p.Log(), "primary_start_timeout=0") {
			return fmt.Errorf("not applied yet")
		}
		return nil
	})
	start := time.Now()
	p.KillPostgres()
	np := waitNewPrimary(t, e.c, p, 30*time.Second)
	t.Logf("failover after a postgres crash with primary_start_timeout 0: %s", time.Since(start))
	require.Contains(t, p.Log(), "primary_start_timeout is 0s: releasing the lock")
	waitRow(t, np, 3)
	insert(t, np, 4)
	waitRow(t, p, 4) // the old primary rejoined
}

// TestPauseMode: while paused nothing changes postgres automatically, and stopping tusker
// leaves postgres running; resuming restores automatic management.
func TestPauseMode(t *testing.T) {
	e := newCluster(t, 3, "")
	require.NoError(t, e.c.Start())
	p := e.waitHealthy(90 * time.Second)
	seed(t, e.c, p)
	reps := others(e.c, p)

	code, msg := call(t, reps[0], "PATCH", "/config", map[string]any{"pause": true})
	require.Equal(t, 200, code, msg)
	for _, n := range e.c.Nodes {
		waitFor(t, 10*time.Second, "pause on "+n.Name, func() error {
			if field(n, "pause") != true {
				return fmt.Errorf("/patroni of %s has no pause", n.Name)
			}
			return nil
		})
	}
	code, msg = call(t, p, "POST", "/switchover", map[string]any{"leader": p.Name})
	require.Equal(t, 400, code, msg)
	require.Equal(t, "Switchover is possible only to a specific candidate in a paused state", msg)

	// A replica's postgres that dies stays down.
	pid := reps[1].PostmasterPID()
	reps[1].KillPostgres()
	time.Sleep(3 * time.Second)
	require.Error(t, syscall.Kill(pid, 0), "the killed postmaster is gone")
	require.Equal(t, pid, reps[1].PostmasterPID(), "pause: a stopped postgres is not started (postmaster.pid is the dead one's)")
	require.Equal(t, "stopped", field(reps[1], "state"))

	// Stopping the primary's tusker leaves postgres serving; nobody is promoted.
	p.Signal(syscall.SIGTERM)
	require.True(t, p.WaitExit(30*time.Second))
	insert(t, p, 2)             // postgres still accepts writes
	time.Sleep(8 * time.Second) // longer than ttl: the leader key has expired
	require.Equal(t, "replica", field(reps[0], "role"), "pause: no automatic promotion")

	// A restarted tusker adopts the running primary and takes the free lock.
	require.NoError(t, p.Start())
	waitFor(t, 30*time.Second, "the primary leads again", func() error {
		code, body, err := tryCall(p, "GET", "/cluster", nil)
		if err != nil {
			return err
		}
		if code != 200 || !strings.Contains(body, fmt.Sprintf(`"name":%q,"role":"leader"`, p.Name)) {
			return fmt.Errorf("%s", body)
		}
		return nil
	})

	// A manual switchover to a named candidate works while paused, and the old primary rejoins.
	code, msg = call(t, p, "POST", "/switchover", map[string]any{"leader": p.Name, "candidate": reps[0].Name})
	require.Equal(t, 200, code, msg)
	insert(t, reps[0], 3)
	waitRow(t, p, 3)

	// Resume: the stopped replica's postgres is started again.
	code, msg = call(t, p, "PATCH", "/config", map[string]any{"pause": nil})
	require.Equal(t, 200, code, msg)
	waitRow(t, reps[1], 3)
	require.NotEqual(t, true, field(reps[1], "pause"))
}

// TestRestartReloadAndDynamicConfig covers GET/PATCH/PUT /config, parameter changes that reload
// or need a restart, POST/DELETE /restart, POST /reload and SIGHUP.
func TestRestartReloadAndDynamicConfig(t *testing.T) {
	e := newCluster(t, 2, "")
	require.NoError(t, e.c.Start())
	p := e.waitHealthy(90 * time.Second)
	seed(t, e.c, p)
	r := others(e.c, p)[0]
	ctx := context.Background()
	show := func(n *harness.Node, name string) string {
		v, err := n.QueryString(ctx, "SELECT current_setting($1)", name)
		if err != nil {
			return err.Error()
		}
		return v
	}

	code, body := call(t, p, "GET", "/config", nil)
	require.Equal(t, 200, code)
	require.Contains(t, body, `"ttl":6`)

	code, body = call(t, p, "PATCH", "/config", map[string]any{"loop_wait": 10})
	require.Equal(t, 400, code, body)
	require.Contains(t, body, "loop_wait + 2*retry_timeout must be <= ttl")
	code, body = call(t, p, "PUT", "/config", map[string]any{"ttl": "soon"})
	require.Equal(t, 400, code, body)
	require.Contains(t, body, "ttl")

	// A reloadable parameter: every node picks it up without a restart.
	code, body = call(t, p, "PATCH", "/config", map[string]any{"postgresql": map[string]any{"parameters": map[string]any{"work_mem": "7MB"}}})
	require.Equal(t, 200, code, body)
	require.Contains(t, body, `"work_mem":"7MB"`)
	for _, n := range e.c.Nodes {
		waitFor(t, 15*time.Second, "work_mem on "+n.Name, func() error {
			if v := show(n, "work_mem"); v != "7MB" {
				return fmt.Errorf("work_mem %s", v)
			}
			return nil
		})
	}

	// A parameter that needs a restart: pending_restart with its reason, then POST /restart.
	code, body = call(t, p, "PATCH", "/config", map[string]any{"postgresql": map[string]any{"parameters": map[string]any{"max_connections": 120}}})
	require.Equal(t, 200, code, body)
	for _, n := range e.c.Nodes {
		waitFor(t, 15*time.Second, "pending_restart on "+n.Name, func() error {
			m, _, err := n.Patroni(ctx)
			if err != nil {
				return err
			}
			reason, _ := m["pending_restart_reason"].(map[string]any)
			if m["pending_restart"] != true || reason["max_connections"] == nil {
				return fmt.Errorf("pending_restart %v, reason %v", m["pending_restart"], m["pending_restart_reason"])
			}
			return nil
		})
	}
	// The reasons are in the member keys too, so /cluster (and tuskerctl list) show them.
	waitFor(t, 10*time.Second, "pending_restart_reason in /cluster", func() error {
		_, body := call(t, r, "GET", "/cluster", nil)
		if strings.Count(body, `"pending_restart_reason":{"max_connections":{"old_value":"40","new_value":"120"}}`) != len(e.c.Nodes) {
			return fmt.Errorf("/cluster: %s", body)
		}
		return nil
	})
	code, body = call(t, r, "POST", "/restart", map[string]any{"role": "primary"})
	require.Equal(t, 503, code, body)
	require.Equal(t, "restart conditions are not satisfied", body)
	// Replicas first: a hot standby needs max_connections >= the primary's.
	for _, n := range []*harness.Node{r, p} {
		code, body = call(t, n, "POST", "/restart", map[string]any{"restart_pending": true})
		require.Equal(t, 200, code, body)
		require.Equal(t, "120", show(n, "max_connections"))
	}
	waitFor(t, 10*time.Second, "pending_restart cleared", func() error {
		if field(p, "pending_restart") == true {
			return fmt.Errorf("still pending")
		}
		return nil
	})
	code, body = call(t, p, "POST", "/restart", map[string]any{"restart_pending": true})
	require.Equal(t, 503, code, body, "nothing pending any more")

	// Scheduled restarts: shown, cancellable.
	at := time.Now().Add(time.Hour).Format(time.RFC3339)
	code, body = call(t, r, "POST", "/restart", map[string]any{"schedule": at})
	require.Equal(t, 202, code, body)
	code, body = call(t, r, "POST", "/restart", map[string]any{"schedule": at})
	require.Equal(t, 409, code, body)
	waitFor(t, 5*time.Second, "scheduled_restart shown", func() error {
		if field(r, "scheduled_restart") == nil {
			return fmt.Errorf("no scheduled_restart in /patroni")
		}
		if _, body := call(t, p, "GET", "/cluster", nil); !strings.Contains(body, `"scheduled_restart":{"schedule":"`) {
			return fmt.Errorf("no scheduled_restart in /cluster: %s", body)
		}
		return nil
	})
	code, body = call(t, r, "DELETE", "/restart", nil)
	require.Equal(t, 200, code, body)
	code, body = call(t, r, "DELETE", "/restart", nil)
	require.Equal(t, 404, code, body)
	oldPID := r.PostmasterPID()
	code, body = call(t, r, "POST", "/restart", map[string]any{"schedule": time.Now().Add(2 * time.Second).Format(time.RFC3339Nano)})
	require.Equal(t, 202, code, body)
	waitFor(t, 30*time.Second, "scheduled restart done", func() error {
		if pid := r.PostmasterPID(); pid == oldPID || pid <= 0 || show(r, "max_connections") != "120" {
			return fmt.Errorf("postmaster %d", pid)
		}
		return nil
	})

	// Timing changes take effect without restarting tusker: the leader key moves to a lease of
	// the new ttl.
	code, body = call(t, p, "PATCH", "/config", map[string]any{"ttl": 12, "loop_wait": 2, "retry_timeout": 3})
	require.Equal(t, 200, code, body)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.etcd.Endpoint}, DialTimeout: 2 * time.Second})
	require.NoError(t, err)
	defer cli.Close()
	waitFor(t, 15*time.Second, "leader lease of the new ttl", func() error {
		resp, err := cli.Get(ctx, "/service/e2e/leader")
		if err != nil || len(resp.Kvs) == 0 {
			return fmt.Errorf("no leader key: %v", err)
		}
		ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
		if err != nil {
			return err
		}
		if ttl.GrantedTTL != 12 {
			return fmt.Errorf("lease granted for %d s", ttl.GrantedTTL)
		}
		return nil
	})

	// POST /reload and SIGHUP: a local parameter (which wins over the dynamic one) is re-read.
	p.PGExtra = "  parameters:\n    work_mem: 9MB\n"
	require.NoError(t, e.c.WriteConfig(p, ""))
	code, body = call(t, p, "POST", "/reload", nil)
	require.Equal(t, 202, code, body)
	require.Equal(t, "reload scheduled", body)
	waitFor(t, 15*time.Second, "work_mem after POST /reload", func() error {
		if v := show(p, "work_mem"); v != "9MB" {
			return fmt.Errorf("work_mem %s", v)
		}
		return nil
	})
	p.PGExtra = "  parameters:\n    work_mem: 11MB\n"
	require.NoError(t, e.c.WriteConfig(p, ""))
	p.Signal(syscall.SIGHUP)
	waitFor(t, 15*time.Second, "work_mem after SIGHUP", func() error {
		if v := show(p, "work_mem"); v != "11MB" {
			return fmt.Errorf("work_mem %s", v)
		}
		return nil
	})
	require.True(t, p.Running(), "SIGHUP does not stop tusker")
}

// TestReinitialize re-clones a replica on request.
func TestReinitialize(t *testing.T) {
	e := newCluster(t, 2, "")
	require.NoError(t, e.c.Start())
	p := e.waitHealthy(90 * time.Second)
	seed(t, e.c, p)
	r := others(e.c, p)[0]

	code, body := call(t, p, "POST", "/reinitialize", nil)
	require.Equal(t, 503, code, body)
	require.Equal(t, "I am the leader, can not reinitialize", body)

	marker := filepath.Join(r.DataDir, "tusker-test-marker")
	require.NoError(t, os.WriteFile(marker, []byte("x"), 0o600))
	insert(t, p, 2)
	code, body = call(t, r, "POST", "/reinitialize", map[string]any{"force": true})
	require.Equal(t, 200, code, body)
	require.Equal(t, "reinitialize started", body)
	waitFor(t, 60*time.Second, "marker gone", func() error {
		if _, err := os.Stat(marker); err == nil {
			return fmt.Errorf("marker still there")
		}
		return nil
	})
	waitRow(t, r, 2)
	insert(t, p, 3)
	waitRow(t, r, 3)
}

// TestFailsafeMode: with failsafe_mode the primary survives a DCS outage while every member
// confirms it, and stops writes once one cannot.
func TestFailsafeMode(t *testing.T) {
	e := newCluster(t, 3, "bootstrap:\n  dcs:\n    failsafe_mode: true\n")
	require.NoError(t, e.c.Start())
	p := e.waitHealthy(90 * time.Second)
	seed(t, e.c, p)
	waitFor(t, 15*time.Second, "failsafe key", func() error {
		code, body, _ := tryCall(p, "GET", "/failsafe", nil)
		var m map[string]string
		if code != 200 || json.Unmarshal([]byte(body), &m) != nil || len(m) != 3 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})

	e.etcd.Stop()
	time.Sleep(10 * time.Second) // well past ttl (6 s)
	insert(t, p, 2)              // still primary, still writable
	require.Equal(t, true, field(p, "failsafe_mode_is_active"))
	for _, n := range others(e.c, p) {
		require.Equal(t, "replica", field(n, "role"), n.Name)
	}
	require.NoError(t, e.etcd.Start())
	waitPrimary(t, e.c, p, 60*time.Second)
	for _, n := range others(e.c, p) {
		waitRow(t, n, 2)
	}

	// One member cannot answer: no confirmation, so the primary stops writes before the lease
	// runs out, and nobody is promoted while the DCS is away.
	frozen := others(e.c, p)[0]
	e.etcd.Stop()
	frozen.Signal(syscall.SIGSTOP)
	waitFor(t, 20*time.Second, "primary fenced", func() error {
		if err := p.Exec(context.Background(), "INSERT INTO t VALUES (99, 'x')"); err == nil {
			return fmt.Errorf("still writable")
		}
		return nil
	})
	frozen.Signal(syscall.SIGCONT)
	require.NoError(t, e.etcd.Start())
	e.waitHealthy(90 * time.Second)
}

// TestWatchdog: required mode arms a (stand-in) device before promotion, pings it after every
// renewal, closes it on demotion, and a member without one is never promoted.
func TestWatchdog(t *testing.T) {
	e := newCluster(t, 3, "")
	dev := map[string]string{}
	for i, n := range e.c.Nodes {
		dev[n.Name] = filepath.Join(n.Dir, "watchdog")
		if i < 2 {
			require.NoError(t, os.WriteFile(dev[n.Name], nil, 0o600))
		}
		require.NoError(t, e.c.WriteConfig(n, fmt.Sprintf("watchdog:\n  mode: required\n  device: %s\n  safety_margin: -1\n", dev[n.Name])))
	}
	noDevice := e.c.Nodes[2]
	require.NoError(t, e.c.Start())
	p := e.waitHealthy(90 * time.Second)
	require.NotEqual(t, noDevice, p)
	require.Equal(t, true, field(noDevice, "watchdog_failed"))
	waitFor(t, 10*time.Second, "keepalives", func() error {
		s := readFile(dev[p.Name])
		if !strings.HasPrefix(s, "timeout 3\n") || strings.Count(s, "keepalive") < 2 {
			return fmt.Errorf("device of %s: %q", p.Name, s)
		}
		return nil
	})

	code, body := call(t, p, "POST", "/switchover", map[string]any{"leader": p.Name, "candidate": noDevice.Name})
	require.Equal(t, 412, code, body)
	require.Equal(t, "switchover is not possible: no good candidates have been found", body)

	other := others(e.c, p, noDevice)[0]
	code, body = call(t, p, "POST", "/switchover", map[string]any{"leader": p.Name, "candidate": other.Name})
	require.Equal(t, 200, code, body)
	require.True(t, strings.HasSuffix(readFile(dev[p.Name]), "V"), "the old primary closed its watchdog: %q", readFile(dev[p.Name]))
	waitFor(t, 10*time.Second, "the new primary's watchdog", func() error {
		if s := readFile(dev[other.Name]); !strings.Contains(s, "keepalive") {
			return fmt.Errorf("%q", s)
		}
		return nil
	})

	// The new primary dies: the old one (with a device) wins, never the member without one.
	seed(t, e.c, other)
	other.KillNode()
	waitPrimary2 := func() error {
		np, err := e.c.Primary(context.Background())
		if err != nil {
			return err
		}
		if np != p {
			return fmt.Errorf("primary %s", np.Name)
		}
		return nil
	}
	waitFor(t, 60*time.Second, "failover to the member with a watchdog", waitPrimary2)
	require.Equal(t, "replica", field(noDevice, "role"))
}

// TestFastForwardPreferredCandidate: the member with the highest failover_priority is behind
// when the primary dies; instead of losing the race to the most advanced replica (or promoting
// short of it), it streams the missing WAL from that replica first, then promotes.
func TestFastForwardPreferredCandidate(t *testing.T) {
	e := newCluster(t, 3, "bootstrap:\n  dcs:\n    maximum_lag_on_failover: 268435456\n")
	require.NoError(t, e.c.Start())
	p := e.waitHealthy(90 * time.Second)
	seed(t, e.c, p)
	reps := others(e.c, p)
	pref, ahead := reps[0], reps[1]
	// Give the preferred member its priority (SIGHUP re-reads the tags).
	require.NoError(t, e.c.WriteConfig(pref, "tags:\n  failover_priority: 2\n"))
	pref.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "priority published", func() error {
		tags, _ := field(pref, "tags").(map[string]any)
		if tags["failover_priority"] != float64(2) {
			return fmt.Errorf("tags %v", tags)
		}
		return nil
	})

	// Freeze the preferred member's WAL receiver, then write more WAL than socket buffers hold.
	ctx := context.Background()
	s, err := pref.QueryString(ctx, "SELECT pid::text FROM pg_stat_wal_receiver")
	require.NoError(t, err)
	var wr int
	_, err = fmt.Sscan(s, &wr)
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(wr, syscall.SIGSTOP))
	require.NoError(t, p.Exec(ctx, "CREATE TABLE big AS SELECT g AS id, repeat('x', 1000) AS pad FROM generate_series(1, 40000) g"))
	insert(t, p, 2)
	waitRow(t, ahead, 2)

	p.KillNode()
	require.NoError(t, syscall.Kill(wr, syscall.SIGCONT))
	waitPrimary(t, e.c, pref, 60*time.Second)
	waitRow(t, pref, 2)
	n, err := pref.QueryString(ctx, "SELECT count(*)::text FROM big")
	require.NoError(t, err)
	require.Equal(t, "40000", n)
	require.Contains(t, pref.Log(), "fast-forward")
	require.Contains(t, ahead.Log(), "higher failover_priority")
}

// TestPrePromoteRefusal: a pre_promote that exits non-zero blocks the promotion; the candidate
// releases the lock and another member takes over instead.
func TestPrePromoteRefusal(t *testing.T) {
	e := newCluster(t, 3, "")
	require.NoError(t, e.c.Start())
	p := e.waitHealthy(90 * time.Second)
	seed(t, e.c, p)
	refuser := others(e.c, p)[0]
	refuser.PGExtra = "  pre_promote: sh -c 'echo fencing refused; exit 3'\n"
	require.NoError(t, e.c.WriteConfig(refuser, ""))
	refuser.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "configuration re-read", func() error {
		if !strings.Contains(refuser.Log(), "configuration reloaded") {
			return fmt.Errorf("not yet")
		}
		return nil
	})

	code, msg := call(t, p, "POST", "/switchover", map[string]any{"leader": p.Name, "candidate": refuser.Name})
	require.Equal(t, 200, code, msg)
	require.Contains(t, msg, fmt.Sprintf("instead of %q", refuser.Name))
	require.Contains(t, refuser.Log(), "promotion refused, leader key released")
	require.Contains(t, refuser.Log(), "fencing refused")
	np, err := e.c.Primary(context.Background())
	require.NoError(t, err)
	require.NotEqual(t, refuser, np)
	insert(t, np, 2)
	waitRow(t, refuser, 2)
}

// TestPrimaryRaceBackoff: replicas do not race until their WAL position has stood still for
// primary_race_backoff, then fail over as usual.
func TestPrimaryRaceBackoff(t *testing.T) {
	e := newCluster(t, 3, "bootstrap:\n  dcs:\n    primary_race_backoff: 12\n")
	require.NoError(t, e.c.Start())
	p := e.waitHealthy(90 * time.Second)
	seed(t, e.c, p)
	p.KillNode()
	np := waitNewPrimary(t, e.c, p, 60*time.Second)
	waitRow(t, np, 1)
	require.Contains(t, np.Log(), "WAL position still advancing (primary_race_backoff)",
		"the winner waited for its WAL to settle before racing")
}
