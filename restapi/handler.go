package restapi

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/tusker-ha/tusker/ha"
	"github.com/tusker-ha/tusker/patroni"
)

// endpoint is what a request path resolves to.
type endpoint int

const (
	epNone endpoint = iota
	// Health checks, resolved by Patroni's substring rules.
	epPrimary
	epLeader
	epStandbyLeader
	epReplica
	epReadOnly
	epHealth
	epSync
	epQuorum
	epAsync
	epReadOnlySync
	epReadOnlyQuorum
	// Resolved by the first path segment.
	epPatroni
	epLiveness
	epReadiness
	epCluster
	epHistory
	epMetrics
	epManagement
)

// Header values shared by every response (net/http only reads them). The Server header and the
// configured extra headers are per Server (Server.hdrs).
var (
	hdrJSON        = []string{"application/json"}
	hdrText        = []string{"text/plain; charset=utf-8"}
	hdrZero        = []string{"0"}
	hdrAllowHealth = []string{"GET, HEAD, OPTIONS"}
)

// management lists Patroni's management endpoints with the methods each accepts (see
// serveManagement). Without a Config.Manager they answer 501 rather than 404 so that a caller can
// tell the difference.
var management = map[string]struct {
	methods string
	allow   []string
}{
	"switchover":   {"POST DELETE OPTIONS", []string{"POST, DELETE, OPTIONS"}},
	"failover":     {"POST OPTIONS", []string{"POST, OPTIONS"}},
	"restart":      {"POST DELETE OPTIONS", []string{"POST, DELETE, OPTIONS"}},
	"reload":       {"POST OPTIONS", []string{"POST, OPTIONS"}},
	"reinitialize": {"POST OPTIONS", []string{"POST, OPTIONS"}},
	"config":       {"GET HEAD PATCH PUT OPTIONS", []string{"GET, HEAD, PATCH, PUT, OPTIONS"}},
	"failsafe":     {"GET HEAD POST OPTIONS", []string{"GET, HEAD, POST, OPTIONS"}},
}

// route resolves a path: dedicated endpoints by their first segment (as Patroni's do_<METHOD>_<segment>
// dispatch), then health checks by Patroni's substring rules on the whole path ("/" is /primary,
// "/master" is /primary, "/standby_leader" and "/standby-leader" are the same). What matches
// nothing is 404 (Patroni answers 503 with its status there).
func route(path string) (endpoint, string) {
	seg := strings.TrimPrefix(path, "/")
	if i := strings.IndexByte(seg, '/'); i >= 0 {
		seg = seg[:i]
	}
	switch seg {
	case "patroni":
		return epPatroni, seg
	case "liveness":
		return epLiveness, seg
	case "readiness":
		return epReadiness, seg
	case "cluster":
		return epCluster, seg
	case "history":
		return epHistory, seg
	case "metrics":
		return epMetrics, seg
	case "":
		if path == "/" || path == "" {
			return epPrimary, seg
		}
	}
	if _, ok := management[seg]; ok {
		return epManagement, seg
	}
	switch {
	case strings.Contains(path, "standby_leader"), strings.Contains(path, "standby-leader"):
		return epStandbyLeader, seg
	case strings.Contains(path, "leader"):
		return epLeader, seg
	case strings.Contains(path, "master"), strings.Contains(path, "primary"), strings.Contains(path, "read-write"):
		return epPrimary, seg
	case strings.Contains(path, "replica"):
		return epReplica, seg
	case strings.Contains(path, "read-only") && !strings.Contains(path, "sync") && !strings.Contains(path, "quorum"):
		return epReadOnly, seg
	case strings.Contains(path, "health"):
		return epHealth, seg
	}
	switch path {
	case "/sync", "/synchronous":
		return epSync, seg
	case "/quorum":
		return epQuorum, seg
	case "/async", "/asynchronous":
		return epAsync, seg
	case "/read-only-sync", "/read-only-synchronous":
		return epReadOnlySync, seg
	case "/read-only-quorum":
		return epReadOnlyQuorum, seg
	}
	return epNone, seg
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	hs := s.hdrs
	if r.TLS != nil {
		hs = s.hdrsTLS
	}
	h := w.Header()
	for i := range hs {
		h[hs[i].name] = hs[i].val
	}
	if !s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.dispatch(w, r)
		return
	}
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	s.dispatch(rec, r)
	s.log.Debug("API request", "remote", r.RemoteAddr, "method", r.Method, "uri", r.RequestURI,
		"status", rec.code, "latency", time.Since(start))
}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	ep, seg := route(r.URL.Path)
	switch ep {
	case epNone:
		writeText(w, r, http.StatusNotFound, "not found", nil)
		return
	case epManagement:
		s.serveManagement(w, r, seg)
		return
	}
	get := r.Method == http.MethodGet
	if !get && r.Method != http.MethodHead && r.Method != http.MethodOptions {
		writeText(w, r, http.StatusMethodNotAllowed, "method not allowed", hdrAllowHealth)
		return
	}

	if s.cfg.ProtectReads && r.Method != http.MethodOptions {
		switch ep {
		case epPatroni, epCluster, epHistory, epMetrics:
			if !s.checkAccess(w, r, seg, true) {
				return
			}
		}
	}
	st := s.status()
	switch ep {
	case epPatroni:
		if get {
			snap := s.snapshotFor(st)
			writeJSON(w, http.StatusOK, snap.patroni, snap.patroniLen)
		} else {
			writeCode(w, http.StatusOK)
		}
	case epCluster, epHistory:
		if !get {
			writeCode(w, http.StatusOK)
			return
		}
		snap := s.snapshotFor(st)
		if ep == epCluster {
			b, l := s.clusterBody(snap)
			writeJSON(w, http.StatusOK, b, l)
		} else {
			b, l := s.historyBody(snap)
			writeJSON(w, http.StatusOK, b, l)
		}
	case epMetrics:
		if !get {
			writeCode(w, http.StatusOK) // HEAD and OPTIONS: nothing worth gathering
			return
		}
		s.metrics.ServeHTTP(w, r)
	case epLiveness:
		writeCode(w, s.liveness(st)) // Patroni sends the status line only, for GET too
	case epReadiness:
		writeCode(w, readiness(st, r.URL.RawQuery, s.now()))
	default:
		code := healthCode(ep, st, r.URL.RawQuery, s.now())
		if get {
			snap := s.snapshotFor(st)
			writeJSON(w, code, snap.patroni, snap.patroniLen)
		} else {
			writeCode(w, code) // HAProxy's OPTIONS/HEAD checks read the status line only
		}
	}
}

func writeCode(w http.ResponseWriter, code int) {
	h := w.Header()
	h["Content-Length"] = hdrZero
	w.WriteHeader(code)
}

func writeJSON(w http.ResponseWriter, code int, body []byte, length []string) {
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Content-Length"] = length
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

func writeText(w http.ResponseWriter, r *http.Request, code int, msg string, allow []string) {
	writeMessage(w, r, code, msg+"\n", allow)
}

// healthCode is Patroni's generic health check (api.py do_GET) answered from the Status. The
// leader paths also need the lease to be valid at now: the status is a snapshot of the last loop,
// and a tusker that was frozen (SIGSTOP, a stalled VM) longer than ttl would otherwise answer
// /primary 200 from it on waking, while another member is already promoted.
func healthCode(ep endpoint, st *ha.Status, query string, now time.Time) int {
	if st == nil {
		return http.StatusServiceUnavailable
	}
	running := st.State == "running"
	var leaderOK, primaryOK, standbyLeaderOK bool
	switch {
	case !st.DCSReachable && st.Pause:
		// In maintenance mode without a DCS, trust what Postgres says.
		leaderOK = running && (st.Role == "primary" || st.Role == "standby_leader")
		primaryOK = running && st.Role == "primary"
		standbyLeaderOK = running && st.Role == "standby_leader"
	case st.Leading(now) && st.StandbyCluster:
		// Patroni: the lock holder of a standby cluster is no primary, whatever postgres says.
		leaderOK = running
		standbyLeaderOK = running && (st.Role == "replica" || st.Role == "standby_leader")
	case st.Leading(now):
		leaderOK = running
		primaryOK = running && st.Role == "primary"
	}

	ok := false
	checkTags := true
	switch ep {
	case epStandbyLeader:
		ok, checkTags = standbyLeaderOK, false
	case epLeader:
		ok, checkTags = leaderOK, false
	case epPrimary:
		ok, checkTags = primaryOK, false
	case epReplica:
		ok = replicaOK(st, query)
	case epReadOnly:
		ok = primaryOK || standbyLeaderOK || replicaOK(st, query)
	case epHealth:
		ok = running
	// The rest need the DCS: the sync key says who is a synchronous or quorum standby.
	case epSync:
		ok = st.DCSReachable && st.SyncStandby && replicaOK(st, query)
	case epQuorum:
		ok = st.DCSReachable && st.QuorumStandby && replicaOK(st, query)
	case epAsync:
		ok = st.DCSReachable && !st.SyncStandby && !st.QuorumStandby && replicaOK(st, query)
	case epReadOnlySync:
		ok = st.DCSReachable && (primaryOK || standbyLeaderOK || st.SyncStandby && replicaOK(st, query))
	case epReadOnlyQuorum:
		ok = st.DCSReachable && (primaryOK || standbyLeaderOK || st.QuorumStandby && replicaOK(st, query))
	}
	if ok && checkTags && query != "" && !tagsMatch(st.Tags, query) {
		ok = false
	}
	if ok {
		return http.StatusOK
	}
	return http.StatusServiceUnavailable
}

// leaderOptime is Patroni's reference position for lag: the leader's optime from the status key
// or the upstream's position the WAL receiver last heard of, whichever is newer.
func leaderOptime(st *ha.Status) int64 { return max(st.LeaderOptime, st.LatestEndLSN) }

// twoParams returns the first non-empty value of each of two query parameters (as Python's
// parse_qs, which Patroni uses, keeps the first and drops empty values).
func twoParams(query, a, b string) (va, vb string) {
	for q := query; q != "" && (va == "" || vb == ""); {
		var k, v string
		k, v, q = nextParam(q)
		switch {
		case v == "":
		case k == a && va == "":
			va = v
		case k == b && vb == "":
			vb = v
		}
	}
	return va, vb
}

// replicaOK is Patroni's replica_code == 200: a running replica without the noloadbalance tag,
// within ?lag= of the leader and in ?replication_state= when they are given.
func replicaOK(st *ha.Status, query string) bool {
	if st.Role != "replica" || st.State != "running" || patroni.NoLoadBalance(st.Tags) {
		return false
	}
	lagParam, stateParam := twoParams(query, "lag", "replication_state")
	if lagParam != "" {
		if lag, ok := parseLag(lagParam); ok {
			lo := leaderOptime(st)
			if lo != 0 && lo-st.ReplayedLocation > lag {
				return false
			}
		}
	}
	return stateParam == "" || st.ReplicationState == stateParam
}

// readiness is Patroni's /readiness: the leader, or a running replica that streams and is within
// ?lag= (default maximum_lag_on_failover) of the leader, replayed (?mode=apply, the default) or
// received (?mode=write).
func readiness(st *ha.Status, query string, now time.Time) int {
	const notReady = http.StatusServiceUnavailable
	if st == nil || st.State != "running" {
		return notReady
	}
	if st.Leading(now) {
		return http.StatusOK
	}
	if st.ReplicationState != "streaming" {
		return notReady
	}
	if !st.DCSReachable && st.LatestEndLSN == 0 && !st.FailsafeActive {
		return notReady // nothing to measure the lag against, and no primary vouching for us
	}
	maxLag := st.MaximumLagOnFailover
	lagParam, modeParam := twoParams(query, "lag", "mode")
	if l, ok := parseLag(lagParam); ok { // unparsable: the default, as in Patroni
		maxLag = l
	}
	write := modeParam == "write" // anything else is apply
	loc := st.ReplayedLocation
	if write {
		loc = receivedLocation(st)
	}
	if leaderOptime(st)-loc > maxLag {
		return notReady
	}
	return http.StatusOK
}

// liveness is Patroni's /liveness (ha.Status.Alive).
func (s *Server) liveness(st *ha.Status) int {
	if st == nil || !st.Alive(s.now()) {
		return http.StatusServiceUnavailable
	}
	return http.StatusOK
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
