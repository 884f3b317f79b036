package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/test/harness"
)

// TestDCSOutageFencesThePrimary: when etcd disappears, the primary cannot renew its lease and stops
// accepting writes on its own (nobody else could know it is gone); replicas change nothing. When
// etcd comes back, the cluster recovers with exactly one primary and no row lost.
func TestDCSOutageFencesThePrimary(t *testing.T) {
	e := newCluster(t, 3, "")
	ctx := context.Background()
	require.NoError(t, e.c.Start())
	primary := e.waitHealthy(90 * time.Second)
	seed(t, e.c, primary)

	e.etcd.Stop()
	require.NoError(t, harness.WaitFor(ctx, 60*time.Second, 100*time.Millisecond, func() error {
		if err := primary.Exec(ctx, "INSERT INTO t VALUES (2, 'row-2') ON CONFLICT DO NOTHING"); err == nil {
			return errors.New("the primary still accepts writes without its lease")
		}
		return nil
	}))
	require.True(t, strings.Contains(primary.Log(), "could not be renewed") || strings.Contains(primary.Log(), "lease about to expire"),
		"the primary must say it stopped postgres because its lease ran out")
	for _, n := range others(e.c, primary) {
		st, _, err := n.Patroni(ctx)
		require.NoError(t, err)
		require.Equal(t, "replica", st["role"], "%s must not promote without the DCS", n.Name)
	}

	require.NoError(t, e.etcd.Start())
	require.NoError(t, harness.WaitFor(ctx, 90*time.Second, 200*time.Millisecond, func() error { return e.c.Healthy(ctx) }))
	p, err := e.c.Primary(ctx)
	require.NoError(t, err)
	waitRow(t, p, 1)
	insert(t, p, 3)
	for _, n := range others(e.c, p) {
		waitRow(t, n, 3)
	}
}
