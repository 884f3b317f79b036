package ha

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMetricsRoleChangesAndLeaseAge(t *testing.T) {
	m := newMetrics("demo", "n1")
	m.role("uninitialized")
	m.role("replica")
	m.role("replica")
	m.role("primary")
	assert.Equal(t, 1.0, testutil.ToFloat64(m.roleChanges.WithLabelValues("primary")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.roleChanges.WithLabelValues("replica")))

	n, err := testutil.GatherAndCount(m.reg, "tusker_leader_lease_age_seconds")
	require.NoError(t, err)
	assert.Zero(t, n, "no lease, no sample")
	m.renewedAt.Store(time.Now().Add(-1500 * time.Millisecond).UnixNano())
	fams, err := m.reg.Gather()
	require.NoError(t, err)
	found := false
	for _, f := range fams {
		if f.GetName() == "tusker_leader_lease_age_seconds" {
			found = true
			age := f.Metric[0].Gauge.GetValue()
			assert.InDelta(t, 1.5, age, 0.5)
		}
	}
	assert.True(t, found)
}
