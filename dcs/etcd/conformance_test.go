package etcd

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/dcs/dcstest"
	"github.com/tusker-ha/tusker/test/harness"
)

func etcdTarget(e *harness.Etcd) dcstest.Target {
	return dcstest.Target{
		New: func(t testing.TB, scope, name string, ttl, retry time.Duration) dcs.DCS {
			b, err := New(Options{Endpoints: []string{e.Endpoint}, Namespace: "/service", Scope: scope, Name: name,
				TTL: ttl, RetryTimeout: retry})
			require.NoError(t, err)
			return b
		},
		TTL: 2 * time.Second,
		// etcd grants whole seconds and its lessor checks expiry every 500 ms.
		Expiry: 3 * time.Second,
		Restart: func(t testing.TB) {
			e.Stop()
			require.NoError(t, e.Start())
		},
		Outage: func(t testing.TB) func() {
			e.Stop()
			return func() { require.NoError(t, e.Start()) }
		},
	}
}

// TestConformance runs the shared DCS suite against the etcd the project builds (3.6) and the one
// Debian ships (3.4), the two a VM user is likely to run.
func TestConformance(t *testing.T) {
	t.Run("etcd-3.6", func(t *testing.T) { dcstest.Run(t, etcdTarget(harness.StartEtcd(t))) })
	t.Run("etcd-3.4", func(t *testing.T) { dcstest.Run(t, etcdTarget(harness.StartEtcdBinary(t, harness.DebianEtcd))) })
}
