package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/test/harness"
)

// store is one DCS the e2e matrix runs a cluster on: start brings the real server up and returns
// the DCS section of each node's configuration, the environment each node needs, and the bootstrap
// dynamic configuration the store calls for.
type store struct {
	name  string
	start func(t *testing.T, scope string) (section func(node string) string, nodeEnv func(node string) []string, dynamic string)
}

var stores = []store{
	{"etcd", func(t *testing.T, _ string) (func(string) string, func(string) []string, string) {
		e := harness.StartEtcd(t)
		return func(string) string { return "etcd3:\n  hosts: " + e.HostPort }, nil, ""
	}},
	{"consul", func(t *testing.T, _ string) (func(string) string, func(string) []string, string) {
		c := harness.StartConsul(t)
		// Consul's sessions last at least 10 s = ttl/2, so ttl 20 is the shortest that means what it says.
		return func(string) string { return "consul:\n  host: " + c.Addr }, nil, "    ttl: 20\n"
	}},
	{"zookeeper", func(t *testing.T, _ string) (func(string) string, func(string) []string, string) {
		z := harness.StartZooKeeper(t)
		return func(string) string { return "zookeeper:\n  hosts: ['" + z.Addr + "']" }, nil, ""
	}},
	kubeStore("kubernetes-configmaps", ""),
	kubeStore("kubernetes-endpoints", "  use_endpoints: true\n"),
	kubeStore("kubernetes-leases", "  use_leases: true\n"),
}

// kubeStore runs the members as pods of a real API server (bare Pod objects: no kubelet), found
// through a kubeconfig as tusker outside a cluster finds them.
func kubeStore(name, mode string) store {
	return store{name, func(t *testing.T, scope string) (func(string) string, func(string) []string, string) {
		k := harness.StartKubeAPIServer(t)
		ip := func(node string) string { return "192.0.2.1" + node[len(node)-1:] }
		for i := 1; i <= 3; i++ {
			node := fmt.Sprintf("n%d", i)
			k.CreatePod(t, "default", node, map[string]string{"application": "tusker", "cluster-name": scope}, ip(node))
		}
		section := func(node string) string {
			return "kubernetes:\n  namespace: default\n  labels: {application: tusker}\n  pod_ip: " + ip(node) + "\n" + mode
		}
		return section, func(string) []string { return []string{"KUBECONFIG=" + k.Kubeconfig} }, ""
	}}
}

// newClusterOn is newCluster on the given store.
func newClusterOn(t *testing.T, nodes int, s store) *env {
	t.Helper()
	return newClusterOnScope(t, nodes, s, "e2e")
}

func newClusterOnScope(t *testing.T, nodes int, s store, scope string) *env {
	t.Helper()
	section, nodeEnv, dynamic := s.start(t, scope)
	extra := ""
	if dynamic != "" {
		extra = "bootstrap:\n  dcs:\n" + dynamic
	}
	c, err := harness.NewCluster(harness.ClusterOptions{
		Dir: t.TempDir(), Scope: scope, Nodes: nodes, TuskerBin: harness.Bin(t, "tusker"),
		PGBinDir: harness.PGBinDir(t), DCS: section, NodeEnv: nodeEnv, ExtraLocal: extra,
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.Nodes {
				t.Logf("==== log of %s ====\n%s", n.Name, tail(n.Log(), 80))
			}
		}
		c.Stop(30 * time.Second)
	})
	return &env{t: t, c: c}
}
