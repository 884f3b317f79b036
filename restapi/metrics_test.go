package restapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/ha"
)

// scrape GETs /metrics and parses the Prometheus text it returns.
func scrape(t *testing.T, s *Server) map[string]*dto.MetricFamily {
	t.Helper()
	rec := do(t, s, "GET", "/metrics")
	require.Equal(t, http.StatusOK, rec.Code)
	require.True(t, strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain"), rec.Header().Get("Content-Type"))
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	require.NoError(t, err, rec.Body.String())
	return fams
}

// value returns the single sample of a family, checking Patroni's scope and name labels.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f, ok := fams[name]
	require.True(t, ok, "metric %s missing", name)
	require.Len(t, f.Metric, 1, name)
	m := f.Metric[0]
	labels := map[string]string{}
	for _, l := range m.Label {
		labels[l.GetName()] = l.GetValue()
	}
	assert.Equal(t, map[string]string{"scope": "demo", "name": labels["name"]}, labels, name)
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	t.Fatalf("%s is neither a gauge nor a counter", name)
	return 0
}

func TestMetricsPrimary(t *testing.T) {
	st := primary()
	st.Tags = map[string]any{"failover_priority": 3}
	extra := prometheus.NewRegistry()
	extra.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "tusker_test_total", Help: "x"}))
	s := New(Config{Metrics: extra}, func() *ha.Status { return st })
	fams := scrape(t, s)

	for name, want := range map[string]float64{
		"patroni_version":                 100, // 0.1.0 -> 000100
		"patroni_postgres_running":        1,
		"patroni_primary":                 1,
		"patroni_replica":                 0,
		"patroni_standby_leader":          0,
		"patroni_xlog_location":           float64(optime),
		"patroni_xlog_received_location":  0,
		"patroni_postgres_server_version": float64(st.ServerVersion),
		"patroni_postgres_timeline":       float64(st.Timeline),
		"patroni_cluster_unlocked":        0,
		"patroni_is_paused":               0,
		"patroni_postgres_state":          5,
		"patroni_postmaster_start_time":   float64(started.UnixNano()) / 1e9,
		"patroni_dcs_last_seen":           float64(st.DCSLastSeen.Unix()),
		"patroni_failover_priority":       3,
		"patroni_postgres_streaming":      0,
	} {
		assert.Equal(t, want, value(t, fams, name), name)
	}
	assert.Equal(t, dto.MetricType_COUNTER, fams["patroni_xlog_location"].GetType())
	assert.Equal(t, dto.MetricType_GAUGE, fams["patroni_primary"].GetType())
	assert.Contains(t, fams, "tusker_test_total", "the extra gatherer's metrics follow Patroni's")
	assert.Len(t, patroniMetrics, 26)
	for _, m := range patroniMetrics {
		assert.Contains(t, fams, m.name)
	}
}

func TestMetricsReplicaAndStates(t *testing.T) {
	st := replica()
	st.Tags = map[string]any{"nofailover": true}
	s := New(Config{}, func() *ha.Status { return st })
	fams := scrape(t, s)
	assert.Equal(t, 1.0, value(t, fams, "patroni_replica"))
	assert.Equal(t, 0.0, value(t, fams, "patroni_primary"))
	assert.Equal(t, float64(st.ReplayedLocation), value(t, fams, "patroni_xlog_replayed_location"))
	assert.Equal(t, float64(st.ReceivedLocation), value(t, fams, "patroni_xlog_received_location"))
	assert.Equal(t, 1.0, value(t, fams, "patroni_postgres_streaming"))
	assert.Equal(t, 0.0, value(t, fams, "patroni_failover_priority"), "nofailover")

	for state, want := range map[string]int{"initializing new cluster": 0, "creating replica": 4,
		"running": 5, "stopped": 12, "crashed": 14, "restart failed": 10, "unknown": -1} {
		assert.Equal(t, want, postgresStateIndex(state), state)
	}
	for v, want := range map[string]int{"0.1.0": 100, "4.1.4": 40104, "v1.2.3-dev": 10203,
		"a3a5797-dirty": 0, "1.2": 0, "1.100.0": 0} {
		assert.Equal(t, want, paddedVersion(v), v)
	}
}

func TestMetricsSyncStandby(t *testing.T) {
	async := syncCluster(replica(), "on")
	async.Name = "n3"
	for _, tt := range []struct {
		name         string
		st           *ha.Status
		sync, quorum float64
	}{
		{"sync standby", syncStandby(), 1, 0},
		{"quorum standby", quorumStandby(), 0, 1},
		{"async replica", async, 0, 0},
		{"primary", syncCluster(primary(), "on"), 0, 0},
	} {
		s := New(Config{}, func() *ha.Status { return tt.st })
		fams := scrape(t, s)
		assert.Equal(t, tt.sync, value(t, fams, "patroni_sync_standby"), tt.name)
		assert.Equal(t, tt.quorum, value(t, fams, "patroni_quorum_standby"), tt.name)
		assert.Equal(t, "Value is 1 if this node is a quorum standby, 0 otherwise.", fams["patroni_quorum_standby"].GetHelp())
	}
}

// Before the first Status there are no patroni_* values (zeros would look like facts) but the
// endpoint answers.
func TestMetricsBeforeFirstStatus(t *testing.T) {
	s := New(Config{}, nil)
	fams := scrape(t, s)
	assert.NotContains(t, fams, "patroni_primary")
	rec := do(t, s, "HEAD", "/metrics")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Empty(t, rec.Body.String())
}
