package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/test/harness"
)

// outageServer is a DCS server the outage matrix can take away in the three ways a store goes
// missing: stopped (killed, then started again on the same data), frozen (SIGSTOP: connections
// hang), and cut off from one member only (a proxy in front of each member blackholes).
type outageServer interface {
	Stop()
	Start() error
	Freeze()
	Thaw()
}

// outageStore starts a server and says how a member reaches it through addr (its own proxy).
// keepsKey: after a stop and start the server still has the leader's lease (etcd re-grants
// its leases a full ttl on start, Consul resets its session timers on election), so nobody
// else can have promoted and the old primary must be the primary again. On ZooKeeper the
// backend ends its own session after ttl without a successful lease call, and on Kubernetes a
// leader's renewTime went stale for every member during the outage: there the others may race
// once the store is back, and the most advanced member wins.
type outageStore struct {
	name     string
	ttl      time.Duration
	keepsKey bool
	start    func(t *testing.T, scope string) (srv outageServer, target string,
		section func(node, addr string) string, nodeEnv func(t *testing.T, node, addr string) []string)
}

var outageStores = []outageStore{
	{"etcd", 6 * time.Second, true, func(t *testing.T, _ string) (outageServer, string, func(string, string) string, func(*testing.T, string, string) []string) {
		e := harness.StartEtcd(t)
		return e, e.HostPort, func(_, addr string) string { return "etcd3:\n  hosts: " + addr }, nil
	}},
	{"consul", 20 * time.Second, true, func(t *testing.T, _ string) (outageServer, string, func(string, string) string, func(*testing.T, string, string) []string) {
		c := harness.StartConsul(t)
		return c, c.Addr, func(_, addr string) string { return "consul:\n  host: " + addr }, nil
	}},
	{"zookeeper", 6 * time.Second, false, func(t *testing.T, _ string) (outageServer, string, func(string, string) string, func(*testing.T, string, string) []string) {
		z := harness.StartZooKeeper(t)
		return z, z.Addr, func(_, addr string) string { return "zookeeper:\n  hosts: ['" + addr + "']" }, nil
	}},
	{"kubernetes", 6 * time.Second, false, func(t *testing.T, scope string) (outageServer, string, func(string, string) string, func(*testing.T, string, string) []string) {
		k := harness.StartKubeAPIServer(t)
		ip := func(node string) string { return "192.0.2.1" + node[len(node)-1:] }
		for i := 1; i <= 3; i++ {
			node := fmt.Sprintf("n%d", i)
			k.CreatePod(t, "default", node, map[string]string{"application": "tusker", "cluster-name": scope}, ip(node))
		}
		dir := t.TempDir()
		section := func(node, _ string) string {
			return "kubernetes:\n  namespace: default\n  labels: {application: tusker}\n  pod_ip: " + ip(node) + "\n"
		}
		nodeEnv := func(t *testing.T, node, addr string) []string {
			path := filepath.Join(dir, node+".kubeconfig")
			require.NoError(t, k.KubeconfigVia(path, addr))
			return []string{"KUBECONFIG=" + path}
		}
		return k, k.HostPort, section, nodeEnv
	}},
}

// TestDCSOutageHeals takes the store away from a 3-member cluster under a steady writer, for
// longer than the leader's ttl, in each of the three ways and on every DCS, with failsafe mode
// off and on. Without failsafe the primary is fenced before its lease can lapse and keeps running
// read-only; with it, the primary keeps taking writes while every member confirms it. When the
// store is back: the same primary if nobody else can have promoted, otherwise the most advanced
// member; nobody is rewound or re-cloned; no acknowledged write is lost; never two primaries.
func TestDCSOutageHeals(t *testing.T) {
	for _, s := range outageStores {
		for _, failsafe := range []bool{false, true} {
			name := s.name
			if failsafe {
				name += "/failsafe"
			}
			t.Run(name, func(t *testing.T) { outageMatrix(t, s, failsafe) })
		}
	}
}

func outageMatrix(t *testing.T, s outageStore, failsafe bool) {
	ctx := context.Background()
	srv, target, section, nodeEnv := s.start(t, "e2e")
	proxies := map[string]*harness.Proxy{}
	for i := 1; i <= 3; i++ {
		node := fmt.Sprintf("n%d", i)
		proxies[node] = harness.StartProxy(t, target)
	}
	dyn := fmt.Sprintf("bootstrap:\n  dcs:\n    ttl: %d\n    failsafe_mode: %v\n", int(s.ttl/time.Second), failsafe)
	opts := harness.ClusterOptions{
		Dir: t.TempDir(), Scope: "e2e", Nodes: 3, TuskerBin: harness.Bin(t, "tusker"),
		PGBinDir: harness.PGBinDir(t), ExtraLocal: dyn,
		DCS: func(node string) string { return section(node, proxies[node].Addr) },
	}
	if nodeEnv != nil {
		opts.NodeEnv = func(node string) []string { return nodeEnv(t, node, proxies[node].Addr) }
	}
	c, err := harness.NewCluster(opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.Nodes {
				t.Logf("==== log of %s ====\n%s", n.Name, tail(n.Log(), 120))
			}
		}
		c.Stop(30 * time.Second)
	})
	e := &env{t: t, c: c}
	require.NoError(t, c.Start())
	p := e.waitHealthy(120 * time.Second)
	w := startWriter(t, c, p)
	twoPrimaries := watchPrimaries(t, c)

	faults := []struct {
		name      string
		on, off   func(primary string)
		keyKept   bool // nobody else can have promoted
		allCutOff bool // every member lost the store, not only the primary
	}{
		{"stopped", func(string) { srv.Stop() }, func(string) { require.NoError(t, srv.Start()) }, s.keepsKey, true},
		{"frozen", func(string) { srv.Freeze() }, func(string) { srv.Thaw() }, false, true},
		{"cut from the primary", func(p string) { proxies[p].Blackhole(true) }, func(p string) { proxies[p].Blackhole(false) }, false, false},
	}
	for _, f := range faults {
		p := healthyPrimary(t, c, 120*time.Second, f.name+": healthy before the fault")
		require.NoError(t, w.WaitCount(ctx, p.Name, 5, 30*time.Second), "writes before the store goes (%s)", f.name)
		if failsafe {
			// The leader lists the members in the failsafe key a cycle or so after they appear; a
			// member missing from it could not confirm the primary.
			require.NoError(t, harness.WaitFor(ctx, 30*time.Second, 100*time.Millisecond, func() error {
				return failsafeListsAll(ctx, p, len(c.Nodes))
			}))
		}
		logFrom := map[string]int{}
		for _, n := range c.Nodes {
			logFrom[n.Name] = len(n.Log())
		}
		t.Logf("%s: store %s, primary %s", s.name, f.name, p.Name)
		f.on(p.Name)
		deadline := time.Now().Add(s.ttl + 3*time.Second)
		if !failsafe && f.allCutOff {
			// Fenced, and still serving reads: a standby with no upstream, not a stopped server.
			require.NoError(t, harness.WaitFor(ctx, s.ttl+10*time.Second, 100*time.Millisecond, func() error {
				ro, err := p.QueryString(ctx, "SELECT pg_is_in_recovery()::text")
				if err != nil {
					return err
				}
				if ro != "true" {
					return errors.New("the primary still takes writes")
				}
				return nil
			}), "%s: the primary must be fenced to a running read-only server", f.name)
		}
		time.Sleep(time.Until(deadline))
		if failsafe {
			require.NoError(t, w.WaitCount(ctx, p.Name, 3, 5*time.Second),
				"%s, failsafe: every member confirms the primary, which keeps taking writes", f.name)
		}
		f.off(p.Name)
		np := healthyPrimary(t, c, 90*time.Second, f.name+": healthy again after the store's return")
		if failsafe || f.keyKept {
			require.Equal(t, p.Name, np.Name, "%s: nobody else could have promoted; the primary must stay", f.name)
		}
		require.NoError(t, w.WaitCount(ctx, np.Name, 5, 30*time.Second), "%s: writes after the store's return", f.name)
		for _, n := range c.Nodes {
			log := n.Log()[logFrom[n.Name]:]
			require.NotContains(t, log, "cloning", "%s: %s must rejoin without a new base backup", f.name, n.Name)
			if failsafe || f.keyKept {
				for _, bad := range []string{"pg_rewind", "diverged"} {
					require.NotContains(t, log, bad, "%s: %s must go on without a rewind check or a rewind", f.name, n.Name)
				}
			} else if strings.Contains(log, "running pg_rewind") {
				// The fence's fast shutdown passes every flushed record on before it ends, so a
				// member that lost the race rewinds only if it really wrote past the new fork.
				require.Contains(t, log, "needed=true", "%s: %s ran pg_rewind without having diverged", f.name, n.Name)
				t.Logf("%s: %s diverged and was rewound", f.name, n.Name)
			}
		}
	}
	w.Stop()
	require.Zero(t, twoPrimaries(), "two members accepted writes at the same time")
	for _, n := range c.Nodes {
		require.NoError(t, harness.WaitFor(ctx, 30*time.Second, 200*time.Millisecond, func() error {
			if m := missingOn(t, w, n); len(m) > 0 {
				return fmt.Errorf("%s lacks %d acknowledged writes (first %d)", n.Name, len(m), m[0])
			}
			return nil
		}))
	}
}

// healthyPrimary waits until the cluster is healthy and one member answers /primary in the same
// poll (a primary whose /primary answers otherwise for a moment is polled again), and returns it.
func healthyPrimary(t *testing.T, c *harness.Cluster, timeout time.Duration, what string) *harness.Node {
	t.Helper()
	ctx := context.Background()
	var p *harness.Node
	require.NoError(t, harness.WaitFor(ctx, timeout, 100*time.Millisecond, func() error {
		if err := c.Healthy(ctx); err != nil {
			return err
		}
		var err error
		p, err = c.Primary(ctx)
		return err
	}), what)
	return p
}

// watchPrimaries asks every member ten times a second whether it is a primary and counts the
// rounds in which two said yes; the returned function stops the watch and returns the count.
func watchPrimaries(t *testing.T, c *harness.Cluster) func() int {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	both := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var prim []string
			for _, n := range c.Nodes {
				qctx, qcancel := context.WithTimeout(ctx, 300*time.Millisecond)
				ro, err := n.QueryString(qctx, "SELECT pg_is_in_recovery()::text")
				qcancel()
				if err == nil && ro == "false" {
					prim = append(prim, n.Name)
				}
			}
			if len(prim) > 1 {
				mu.Lock()
				both++
				mu.Unlock()
				t.Logf("two primaries at once: %s", strings.Join(prim, ", "))
			}
		}
	}()
	stop := func() int {
		cancel()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return both
	}
	t.Cleanup(func() { stop() })
	return stop
}

// failsafeListsAll: GET /failsafe on n names every member.
func failsafeListsAll(ctx context.Context, n *harness.Node, members int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.APIURL()+"/failsafe", nil)
	if err != nil {
		return err
	}
	resp, err := n.HTTPClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var m map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return fmt.Errorf("GET /failsafe answered %d: %w", resp.StatusCode, err)
	}
	if len(m) < members {
		return fmt.Errorf("the failsafe key lists %d of %d members", len(m), members)
	}
	return nil
}
