package ha

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tusker-ha/tusker/dcs"
)

// metrics are tusker's own Prometheus metrics (the REST API adds Patroni's patroni_* ones). They
// carry the same scope and name labels as Patroni's so that one selector finds both.
type metrics struct {
	reg         *prometheus.Registry
	loop        prometheus.Histogram
	dcsRequests *prometheus.HistogramVec
	dcsErrors   *prometheus.CounterVec
	roleChanges *prometheus.CounterVec
	leaseAge    *prometheus.Desc
	// renewedAt is when the current lease was last granted or renewed (unix nanoseconds of the
	// start of the request, which is what the lease deadline counts from); 0 without a lease.
	renewedAt atomic.Int64
	lastRole  string // loop-owned
}

func newMetrics(scope, name string) *metrics {
	labels := prometheus.Labels{"scope": scope, "name": name}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		loop: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tusker_ha_loop_duration_seconds", ConstLabels: labels,
			Help:    "Duration of one HA loop cycle: observe, decide, act and publish.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		dcsRequests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tusker_dcs_request_duration_seconds", ConstLabels: labels,
			Help:    "Latency of DCS requests by operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"op"}),
		dcsErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tusker_dcs_request_errors_total", ConstLabels: labels,
			Help: "DCS requests that failed (the store unreachable or an unexpected answer), by operation.",
		}, []string{"op"}),
		roleChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tusker_role_changes_total", ConstLabels: labels,
			Help: "Changes of this member's PostgreSQL role, by the role it changed to.",
		}, []string{"role"}),
		leaseAge: prometheus.NewDesc("tusker_leader_lease_age_seconds",
			"Seconds since this member last renewed the leader lease; absent unless it holds the lease.",
			nil, labels),
	}
	m.reg.MustRegister(m.loop, m.dcsRequests, m.dcsErrors, m.roleChanges, leaseCollector{m},
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	return m
}

// leaseCollector reports the age of the lease at scrape time.
type leaseCollector struct{ m *metrics }

func (c leaseCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.leaseAge }

func (c leaseCollector) Collect(ch chan<- prometheus.Metric) {
	if at := c.m.renewedAt.Load(); at != 0 {
		ch <- prometheus.MustNewConstMetric(c.m.leaseAge, prometheus.GaugeValue,
			time.Since(time.Unix(0, at)).Seconds())
	}
}

// role counts a change of the published role and reports the previous one ("" when unchanged).
func (m *metrics) role(role string) (from string) {
	if m.lastRole != "" && role != m.lastRole {
		m.roleChanges.WithLabelValues(role).Inc()
		from = m.lastRole
	}
	m.lastRole = role
	return from
}

// Metrics returns the gatherer of tusker's own metrics (HA loop, DCS, lease, role changes,
// process and Go runtime) for the REST API's /metrics.
func (n *Node) Metrics() prometheus.Gatherer { return n.metrics.reg }

// timedDCS measures every request a node makes to its DCS.
type timedDCS struct {
	dcs.DCS
	m *metrics
}

func (t timedDCS) observe(op string, start time.Time, err error) {
	t.m.dcsRequests.WithLabelValues(op).Observe(time.Since(start).Seconds())
	// Lost races and compare-and-set conflicts are answers, not failures of the store.
	if err != nil && !errors.Is(err, dcs.ErrNotLeader) && !errors.Is(err, dcs.ErrConflict) {
		t.m.dcsErrors.WithLabelValues(op).Inc()
	}
}

func (t timedDCS) Cluster(ctx context.Context) (*dcs.Cluster, error) {
	start := time.Now()
	c, err := t.DCS.Cluster(ctx)
	t.observe("get_cluster", start, err)
	return c, err
}

func (t timedDCS) Initialize(ctx context.Context, value string, create bool) (bool, error) {
	start := time.Now()
	ok, err := t.DCS.Initialize(ctx, value, create)
	t.observe("initialize", start, err)
	return ok, err
}

func (t timedDCS) CancelInitialize(ctx context.Context) error {
	start := time.Now()
	err := t.DCS.CancelInitialize(ctx)
	t.observe("cancel_initialize", start, err)
	return err
}

func (t timedDCS) AcquireLeader(ctx context.Context) (bool, error) {
	start := time.Now()
	ok, err := t.DCS.AcquireLeader(ctx)
	t.observe("acquire_leader", start, err)
	return ok, err
}

func (t timedDCS) RenewLeader(ctx context.Context) error {
	start := time.Now()
	err := t.DCS.RenewLeader(ctx)
	t.observe("renew_leader", start, err)
	return err
}

func (t timedDCS) ReleaseLeader(ctx context.Context) error {
	start := time.Now()
	err := t.DCS.ReleaseLeader(ctx)
	t.observe("release_leader", start, err)
	return err
}

func (t timedDCS) TouchMember(ctx context.Context, data dcs.MemberData) error {
	start := time.Now()
	err := t.DCS.TouchMember(ctx, data)
	t.observe("touch_member", start, err)
	return err
}

func (t timedDCS) DeleteMember(ctx context.Context) error {
	start := time.Now()
	err := t.DCS.DeleteMember(ctx)
	t.observe("delete_member", start, err)
	return err
}

func (t timedDCS) SetConfig(ctx context.Context, value []byte, version int64) error {
	start := time.Now()
	err := t.DCS.SetConfig(ctx, value, version)
	t.observe("set_config", start, err)
	return err
}

func (t timedDCS) SetStatus(ctx context.Context, st dcs.Status) error {
	start := time.Now()
	err := t.DCS.SetStatus(ctx, st)
	t.observe("set_status", start, err)
	return err
}

func (t timedDCS) SetHistory(ctx context.Context, h []dcs.HistoryEntry) error {
	start := time.Now()
	err := t.DCS.SetHistory(ctx, h)
	t.observe("set_history", start, err)
	return err
}

func (t timedDCS) SetFailover(ctx context.Context, f dcs.Failover, version int64) error {
	start := time.Now()
	err := t.DCS.SetFailover(ctx, f, version)
	t.observe("set_failover", start, err)
	return err
}

func (t timedDCS) DeleteFailover(ctx context.Context) error {
	start := time.Now()
	err := t.DCS.DeleteFailover(ctx)
	t.observe("delete_failover", start, err)
	return err
}

func (t timedDCS) SetFailsafe(ctx context.Context, members map[string]string) error {
	start := time.Now()
	err := t.DCS.SetFailsafe(ctx, members)
	t.observe("set_failsafe", start, err)
	return err
}
