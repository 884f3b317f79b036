package restapi

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tusker-ha/tusker/ha"
	"github.com/tusker-ha/tusker/patroni"
)

// Patroni's metrics (api.py do_GET_metrics), computed from the latest Status at scrape time. The
// names, types and scope/name labels are Patroni's so that existing dashboards and alerts work;
// the values follow its rules (0 when a value does not apply).
var patroniMetrics = []struct {
	name, help string
	typ        prometheus.ValueType
	value      func(st *ha.Status) float64
}{
	{"patroni_version", "tusker's version as Patroni's semver without periods (1.2.3 is 010203).",
		prometheus.GaugeValue, func(st *ha.Status) float64 { return float64(paddedVersion(st.Version)) }},
	{"patroni_postgres_running", "Value is 1 if Postgres is running, 0 otherwise.",
		prometheus.GaugeValue, func(st *ha.Status) float64 { return b2f(st.State == "running") }},
	{"patroni_postmaster_start_time", "Epoch seconds since Postgres started.",
		prometheus.GaugeValue, func(st *ha.Status) float64 {
			if st.PostmasterStartTime.IsZero() {
				return 0
			}
			return float64(st.PostmasterStartTime.UnixNano()) / 1e9
		}},
	{"patroni_primary", "Value is 1 if this node is the leader, 0 otherwise.",
		prometheus.GaugeValue, func(st *ha.Status) float64 { return b2f(st.Role == "primary") }},
	{"patroni_xlog_location", "Current location of the Postgres transaction log, 0 if this node is not the leader.",
		prometheus.CounterValue, func(st *ha.Status) float64 { return float64(st.XLogLocation) }},
	{"patroni_standby_leader", "Value is 1 if this node is the standby_leader, 0 otherwise.",
		prometheus.GaugeValue, func(st *ha.Status) float64 { return b2f(st.Role == "standby_leader") }},
	{"patroni_replica", "Value is 1 if this node is a replica, 0 otherwise.",
		prometheus.GaugeValue, func(st *ha.Status) float64 { return b2f(st.Role == "replica") }},
	{"patroni_sync_standby", "Value is 1 if this node is a sync standby, 0 otherwise.",
		prometheus.GaugeValue, func(st *ha.Status) float64 { return b2f(st.SyncStandby) }},
	{"patroni_quorum_standby", "Value is 1 if this node is a quorum standby, 0 otherwise.",
		prometheus.GaugeValue, func(st *ha.Status) float64 { return b2f(st.QuorumStandby) }},
	{"patroni_xlog_received_location", "Current location of the received Postgres transaction log, 0 if this node is not a replica.",
		prometheus.CounterValue, func(st *ha.Status) float64 { return float64(st.ReceivedLocation) }},
	{"patroni_xlog_replayed_location", "Current location of the replayed Postgres transaction log, 0 if this node is not a replica.",
		prometheus.CounterValue, func(st *ha.Status) float64 { return float64(st.ReplayedLocation) }},
	{"patroni_xlog_replayed_timestamp", "Current timestamp of the replayed Postgres transaction log, 0 if null.",
		prometheus.GaugeValue, func(st *ha.Status) float64 {
			if st.ReplayedTimestamp == nil {
				return 0
			}
			return float64(st.ReplayedTimestamp.UnixNano()) / 1e9
		}},
	{"patroni_xlog_paused", "Value is 1 if the Postgres xlog is paused, 0 otherwise.",
		prometheus.GaugeValue, func(st *ha.Status) float64 { return b2f(st.ReplayPaused) }},
	{"patroni_postgres_streaming", "Value is 1 if Postgres is streaming, 0 otherwise.",
		prometheus.GaugeValue, func(st *ha.Status) float64 { return b2f(st.ReplicationState == "streaming") }},
	{"patroni_postgres_in_archive_recovery", "Value is 1 if Postgres is replicating from archive, 0 otherwise.",
		prometheus.GaugeValue, func(st *ha.Status) float64 { return b2f(st.ReplicationState == "in archive recovery") }},
	{"patroni_postgres_server_version", "Version of Postgres (if running), 0 otherwise.",
		prometheus.GaugeValue, func(st *ha.Status) float64 { return float64(st.ServerVersion) }},
	{"patroni_cluster_unlocked", "Value is 1 if the cluster is unlocked, 0 if locked.",
		prometheus.GaugeValue, func(st *ha.Status) float64 { return b2f(st.ClusterUnlocked) }},
	{"patroni_failsafe_mode_is_active", "Value is 1 if failsafe mode is active, 0 if inactive.",
		prometheus.GaugeValue, func(st *ha.Status) float64 { return b2f(st.FailsafeActive) }},
	{"patroni_failsafe_mode_enabled", "Value is 1 if failsafe_mode is enabled in the dynamic configuration, 0 otherwise.",
		prometheus.GaugeValue, func(st *ha.Status) float64 { return b2f(st.FailsafeEnabled) }},
	{"patroni_failsafe_member", "Value is 1 if this node is listed in the failsafe key, 0 otherwise.",
		prometheus.GaugeValue, func(st *ha.Status) float64 {
			if st.Cluster == nil {
				return 0
			}
			_, ok := st.Cluster.Failsafe[st.Name]
			return b2f(ok)
		}},
	{"patroni_postgres_timeline", "Postgres timeline of this node (if running), 0 otherwise.",
		prometheus.CounterValue, func(st *ha.Status) float64 { return float64(st.Timeline) }},
	{"patroni_dcs_last_seen", "Epoch timestamp when DCS was last contacted successfully.",
		prometheus.GaugeValue, func(st *ha.Status) float64 {
			if st.DCSLastSeen.IsZero() {
				return 0
			}
			return float64(st.DCSLastSeen.Unix())
		}},
	{"patroni_pending_restart", "Value is 1 if the node needs a restart, 0 otherwise.",
		prometheus.GaugeValue, func(st *ha.Status) float64 { return b2f(st.PendingRestart) }},
	{"patroni_is_paused", "Value is 1 if auto failover is disabled, 0 otherwise.",
		prometheus.GaugeValue, func(st *ha.Status) float64 { return b2f(st.Pause) }},
	{"patroni_postgres_state", "Numeric representation of Postgres state. Values: 0=initdb, 1=initdb_failed, " +
		"2=custom_bootstrap, 3=custom_bootstrap_failed, 4=creating_replica, 5=running, 6=starting, " +
		"7=bootstrap_starting, 8=start_failed, 9=restarting, 10=restart_failed, 11=stopping, 12=stopped, " +
		"13=stop_failed, 14=crashed.",
		prometheus.GaugeValue, func(st *ha.Status) float64 { return float64(postgresStateIndex(st.State)) }},
	{"patroni_failover_priority", "Value of the failover_priority tag (1 unless set), 0 with nofailover.",
		prometheus.GaugeValue, func(st *ha.Status) float64 { return float64(patroni.FailoverPriority(st.Tags)) }},
}

// postgresStates are Patroni's PostgresqlState values in index order (fixed forever by Patroni).
var postgresStates = []string{"initializing new cluster", "initdb failed", "running custom bootstrap script",
	"custom bootstrap failed", "creating replica", "running", "starting", "starting after custom bootstrap",
	"start failed", "restarting", "restart failed", "stopping", "stopped", "stop failed", "crashed"}

func postgresStateIndex(state string) int {
	for i, s := range postgresStates {
		if s == state {
			return i
		}
	}
	return -1
}

// paddedVersion turns "1.2.3" (or "v1.2.3-dev") into 10203, Patroni's zero-padded form; a
// version that is not x.y.z gives 0.
func paddedVersion(v string) int {
	v = strings.TrimPrefix(v, "v")
	if i := strings.IndexAny(v, "-+ "); i >= 0 {
		v = v[:i]
	}
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return 0
	}
	out := 0
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 99 {
			return 0
		}
		out = out*100 + n
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// statusCollector exports patroniMetrics from the Status the HA loop last published.
type statusCollector struct {
	s     *Server
	descs []*prometheus.Desc
}

func newStatusCollector(s *Server) *statusCollector {
	c := &statusCollector{s: s}
	for _, m := range patroniMetrics {
		c.descs = append(c.descs, prometheus.NewDesc(m.name, m.help, []string{"scope", "name"}, nil))
	}
	return c
}

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.status()
	if st == nil {
		return // nothing observed yet: no values rather than zeros that look like facts
	}
	for i, m := range patroniMetrics {
		ch <- prometheus.MustNewConstMetric(c.descs[i], m.typ, m.value(st), st.Scope, st.Name)
	}
}

// newMetricsHandler serves Patroni's metrics followed by the extra gatherer's (tusker's own).
func (s *Server) newMetricsHandler(extra prometheus.Gatherer) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newStatusCollector(s))
	var g prometheus.Gatherer = reg
	if extra != nil {
		g = prometheus.Gatherers{reg, extra}
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slogPrinter{s},
		// A scrape must not pile up behind a slow one (a Prometheus with a short interval and a
		// loaded node): the limit answers 503 instead.
		MaxRequestsInFlight: 4,
	})
}

type slogPrinter struct{ s *Server }

func (p slogPrinter) Println(v ...any) {
	p.s.log.Warn("metrics", "err", strings.TrimSpace(fmtln(v...)))
}

func fmtln(v ...any) string { return fmt.Sprintln(v...) }
