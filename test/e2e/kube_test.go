package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/tusker-ha/tusker/test/harness"
)

// TestKubernetesAPIHiccups runs a cluster on the Kubernetes API behind a proxy and makes the API
// server briefly unreachable, slow, and busy with conflicting writes to the leader object. None of
// it may cost the primary its role before retry_timeout has passed: the same member stays primary,
// on the same timeline, and never stops PostgreSQL.
func TestKubernetesAPIHiccups(t *testing.T) {
	ctx := context.Background()
	k := harness.StartKubeAPIServer(t)
	proxy := harness.StartProxy(t, k.HostPort)
	kc, err := os.ReadFile(k.Kubeconfig)
	require.NoError(t, err)
	proxied := t.TempDir() + "/kubeconfig"
	require.NoError(t, os.WriteFile(proxied, []byte(strings.Replace(string(kc), k.URL, "https://"+proxy.Addr, 1)), 0o600))

	const scope = "hiccup"
	for i := 1; i <= 3; i++ {
		k.CreatePod(t, "default", fmt.Sprintf("n%d", i), map[string]string{"application": "tusker", "cluster-name": scope}, fmt.Sprintf("192.0.2.2%d", i))
	}
	s := store{"kubernetes", func(*testing.T, string) (func(string) string, func(string) []string, string) {
		return func(string) string { return "kubernetes:\n  namespace: default\n  labels: {application: tusker}\n" },
			func(string) []string { return []string{"KUBECONFIG=" + proxied} }, ""
	}}
	e := newClusterOnScope(t, 3, s, scope)
	require.NoError(t, e.c.Start())
	primary := e.waitHealthy(90 * time.Second)
	seed(t, e.c, primary)
	tl := func() string {
		v, err := primary.QueryString(ctx, "SELECT timeline_id::text FROM pg_control_checkpoint()")
		require.NoError(t, err)
		return v
	}
	timeline := tl()

	// While the faults run, every 200 ms: the primary is still a primary and no replica is one.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var watchErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			for _, n := range e.c.Nodes {
				v, err := n.QueryString(ctx, "SELECT pg_is_in_recovery()::text")
				want := "true"
				if n == primary {
					want = "false"
				}
				if err != nil || v != want {
					watchErr = fmt.Errorf("%s: pg_is_in_recovery %q (%v), want %s", n.Name, v, err, want)
					return
				}
			}
		}
	}()
	slowBefore := slowDCSCalls(t, primary)

	// Unreachable for half of retry_timeout (2 s), three times.
	for i := 0; i < 3; i++ {
		proxy.Blackhole(true)
		time.Sleep(time.Second)
		proxy.Blackhole(false)
		time.Sleep(2 * time.Second)
	}
	// Slow: every chunk delayed 300 ms each way, for 8 s.
	proxy.SetDelay(300 * time.Millisecond)
	time.Sleep(8 * time.Second)
	proxy.SetDelay(0)

	// Conflicts: another writer changes the leader ConfigMap every 100 ms for 5 s, so the
	// leader's renewals keep finding a newer resourceVersion.
	admin, err := kubernetes.NewForConfig(k.RestConfig())
	require.NoError(t, err)
	for i := 0; i < 50; i++ {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{"other-writer":"%d"}}}`, i)
		_, err := admin.CoreV1().ConfigMaps("default").Patch(ctx, scope+"-leader", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		require.NoError(t, err)
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	require.NoError(t, watchErr, "the primary lost its role during API hiccups")

	require.Greater(t, slowDCSCalls(t, primary), slowBefore, "the faults never slowed a DCS call: the test did not bite")
	p, err := e.c.Primary(ctx)
	require.NoError(t, err)
	require.Equal(t, primary.Name, p.Name)
	require.Equal(t, timeline, tl(), "a new timeline means a failover happened")
	for _, n := range e.c.Nodes {
		log := n.Log()
		for _, bad := range []string{"stopping postgres", "demot", "fenc"} {
			require.NotContains(t, strings.ToLower(log), bad, "%s logged %q", n.Name, bad)
		}
	}
	insert(t, primary, 2)
	for _, n := range others(e.c, primary) {
		waitRow(t, n, 2)
	}
}

// slowDCSCalls counts the node's DCS calls that took longer than half a second.
func slowDCSCalls(t *testing.T, n *harness.Node) uint64 {
	t.Helper()
	var slow uint64
	f := scrapeMetrics(t, n)["tusker_dcs_request_duration_seconds"]
	require.NotNil(t, f, "tusker_dcs_request_duration_seconds missing")
	for _, m := range f.Metric {
		h := m.GetHistogram()
		slow += h.GetSampleCount() - bucket(h, 0.5)
	}
	return slow
}

func bucket(h *dto.Histogram, le float64) uint64 {
	for _, b := range h.Bucket {
		if b.GetUpperBound() == le {
			return b.GetCumulativeCount()
		}
	}
	return 0
}
