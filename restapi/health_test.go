package restapi

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tusker-ha/tusker/ha"
)

// TestHealthMatrix checks every health path against every kind of node, for GET, HEAD and OPTIONS.
func TestHealthMatrix(t *testing.T) {
	nodes := []struct {
		name string
		st   func() *ha.Status
	}{
		{"nil", func() *ha.Status { return nil }},
		{"primary", primary},
		{"replica", replica},
		{"lagging", lagging},
		{"stopped", stopped},
		{"noloadbalance", noLB},
	}
	const x, o = unavailable, ok
	tests := []struct {
		path string
		want [6]int // nil, primary, replica, lagging, stopped, noloadbalance
	}{
		{"/", [6]int{x, o, x, x, x, x}},
		{"/primary", [6]int{x, o, x, x, x, x}},
		{"/read-write", [6]int{x, o, x, x, x, x}},
		{"/master", [6]int{x, o, x, x, x, x}},
		{"/primary/", [6]int{x, o, x, x, x, x}},
		{"/leader", [6]int{x, o, x, x, x, x}},
		{"/standby-leader", [6]int{x, x, x, x, x, x}},
		{"/standby_leader", [6]int{x, x, x, x, x, x}},
		{"/replica", [6]int{x, x, o, o, x, x}},
		{"/replica?lag=1MB", [6]int{x, x, o, x, x, x}},
		{"/replica?lag=4MB", [6]int{x, x, o, o, x, x}},
		{"/replica?replication_state=streaming", [6]int{x, x, o, o, x, x}},
		{"/read-only", [6]int{x, o, o, o, x, x}},
		{"/read-only?lag=1MB", [6]int{x, o, o, x, x, x}},
		{"/health", [6]int{x, o, o, o, x, o}},
		{"/liveness", [6]int{x, o, o, o, o, o}},
		{"/readiness", [6]int{x, o, o, x, x, o}},
		{"/readiness?mode=write", [6]int{x, o, o, o, x, o}},
		{"/patroni", [6]int{o, o, o, o, o, o}},
		{"/async", [6]int{x, x, o, o, x, x}},
		{"/asynchronous?lag=1MB", [6]int{x, x, o, x, x, x}},
		{"/sync", [6]int{x, x, x, x, x, x}},
		{"/synchronous", [6]int{x, x, x, x, x, x}},
		{"/quorum", [6]int{x, x, x, x, x, x}},
		{"/read-only-sync", [6]int{x, o, x, x, x, x}},
		{"/read-only-synchronous", [6]int{x, o, x, x, x, x}},
		{"/read-only-quorum", [6]int{x, o, x, x, x, x}},
	}
	for _, tt := range tests {
		for i, n := range nodes {
			s, _ := newTestServer(n.st())
			get := do(t, s, http.MethodGet, tt.path)
			if get.Code != tt.want[i] {
				t.Errorf("GET %s on %s = %d, want %d", tt.path, n.name, get.Code, tt.want[i])
			}
			bodyless := strings.HasPrefix(tt.path, "/liveness") || strings.HasPrefix(tt.path, "/readiness")
			if bodyless {
				if get.Body.Len() != 0 {
					t.Errorf("GET %s on %s: body %q, want none (as Patroni)", tt.path, n.name, get.Body)
				}
			} else {
				if ct := get.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("GET %s on %s: Content-Type %q", tt.path, n.name, ct)
				}
				if want := string(s.snapshotFor(n.st()).patroni); n.st() == nil && get.Body.String() != want {
					t.Errorf("GET %s on %s: body %s, want %s", tt.path, n.name, get.Body, want)
				}
				if !strings.HasPrefix(get.Body.String(), `{"state":`) {
					t.Errorf("GET %s on %s: body %s, want the /patroni JSON", tt.path, n.name, get.Body)
				}
			}
			if sv := get.Header().Get("Server"); sv != "tusker" {
				t.Errorf("GET %s: Server header %q", tt.path, sv)
			}
			for _, m := range []string{http.MethodHead, http.MethodOptions} {
				rec := do(t, s, m, tt.path)
				if rec.Code != tt.want[i] {
					t.Errorf("%s %s on %s = %d, want %d", m, tt.path, n.name, rec.Code, tt.want[i])
				}
				if rec.Body.Len() != 0 || rec.Header().Get("Content-Length") != "0" {
					t.Errorf("%s %s on %s: body %q, Content-Length %q; want none", m, tt.path, n.name,
						rec.Body, rec.Header().Get("Content-Length"))
				}
			}
		}
	}
}

// TestSyncHealthMatrix checks the synchronous replication paths against the primary, a sync
// standby (synchronous_mode: on), a quorum standby (quorum) and an asynchronous replica, for GET,
// HEAD and OPTIONS.
func TestSyncHealthMatrix(t *testing.T) {
	async := func() *ha.Status { // n3: not in the sync key
		st := replica()
		st.Name = "n3"
		return syncCluster(st, "on")
	}
	laggingSync := func() *ha.Status {
		st := syncStandby()
		st.ReplayedLocation = optime - 2*mib
		return st
	}
	noLBSync := func() *ha.Status {
		st := syncStandby()
		st.Tags = map[string]any{"noloadbalance": true}
		return st
	}
	dcsDown := func(f func() *ha.Status) func() *ha.Status {
		return func() *ha.Status {
			st := f()
			st.DCSReachable = false
			st.Pause = true // so that the primary still counts as one without the DCS
			return st
		}
	}
	nodes := []struct {
		name string
		st   func() *ha.Status
	}{
		{"primary (on)", func() *ha.Status { return syncCluster(primary(), "on") }},
		{"primary (quorum)", func() *ha.Status { return syncCluster(primary(), "quorum") }},
		{"sync standby", syncStandby},
		{"quorum standby", quorumStandby},
		{"async replica", async},
		{"lagging sync standby", laggingSync},
		{"noloadbalance sync standby", noLBSync},
		{"sync standby, DCS down", dcsDown(syncStandby)},
		{"primary, DCS down", dcsDown(func() *ha.Status { return syncCluster(primary(), "on") })},
	}
	const x, o = unavailable, ok
	tests := []struct {
		path string
		want [9]int // as nodes
	}{
		{"/sync", [9]int{x, x, o, x, x, o, x, x, x}},
		{"/synchronous", [9]int{x, x, o, x, x, o, x, x, x}},
		{"/sync?lag=1MB", [9]int{x, x, o, x, x, x, x, x, x}},
		{"/quorum", [9]int{x, x, x, o, x, x, x, x, x}},
		{"/quorum?lag=1MB", [9]int{x, x, x, o, x, x, x, x, x}},
		{"/async", [9]int{x, x, x, x, o, x, x, x, x}},
		{"/asynchronous", [9]int{x, x, x, x, o, x, x, x, x}},
		{"/asynchronous?lag=1MB", [9]int{x, x, x, x, o, x, x, x, x}},
		{"/read-only-sync", [9]int{o, o, o, x, x, o, x, x, x}},
		{"/read-only-synchronous", [9]int{o, o, o, x, x, o, x, x, x}},
		{"/read-only-sync?lag=1MB", [9]int{o, o, o, x, x, x, x, x, x}},
		{"/read-only-quorum", [9]int{o, o, x, o, x, x, x, x, x}},
		{"/read-only-quorum?lag=1MB", [9]int{o, o, x, o, x, x, x, x, x}},
		// Unchanged by synchronous replication.
		{"/replica", [9]int{x, x, o, o, o, o, x, o, x}},
		{"/read-only", [9]int{o, o, o, o, o, o, x, o, o}},
	}
	for _, tt := range tests {
		for i, n := range nodes {
			s, _ := newTestServer(n.st())
			for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodOptions} {
				rec := do(t, s, m, tt.path)
				if rec.Code != tt.want[i] {
					t.Errorf("%s %s on %s = %d, want %d", m, tt.path, n.name, rec.Code, tt.want[i])
				}
				if m == http.MethodGet && !strings.HasPrefix(rec.Body.String(), `{"state":`) {
					t.Errorf("GET %s on %s: body %s, want the /patroni JSON", tt.path, n.name, rec.Body)
				}
			}
		}
	}

	// Tag filters apply to the standbys and, as on /read-only, to the primary.
	tagged := func(st *ha.Status) *ha.Status {
		st.Tags = map[string]any{"zone": "a"}
		return st
	}
	for _, tt := range []struct {
		st   *ha.Status
		path string
		want int
	}{
		{tagged(syncStandby()), "/sync?tag_zone=a", ok},
		{tagged(syncStandby()), "/sync?tag_zone=b", unavailable},
		{tagged(quorumStandby()), "/quorum?tag_zone=b", unavailable},
		{tagged(quorumStandby()), "/read-only-quorum?tag_zone=a", ok},
		{tagged(syncCluster(primary(), "on")), "/read-only-sync?tag_zone=b", unavailable},
		{tagged(syncCluster(primary(), "on")), "/read-only-sync?tag_zone=a", ok},
	} {
		if got := code(t, tt.st, http.MethodGet, tt.path); got != tt.want {
			t.Errorf("%s on %s = %d, want %d", tt.path, tt.st.Name, got, tt.want)
		}
	}
}

func TestGetBodyIsPatroniStatus(t *testing.T) {
	s, _ := newTestServer(lagging())
	want := do(t, s, http.MethodGet, "/patroni").Body.String()
	for _, p := range []string{"/primary", "/replica?lag=1MB", "/replica", "/health"} {
		if got := do(t, s, http.MethodGet, p).Body.String(); got != want {
			t.Errorf("GET %s body = %s, want %s", p, got, want)
		}
	}
}

func TestLagFilter(t *testing.T) {
	st := replica()
	st.ReplayedLocation = optime - 20000
	tests := []struct {
		query string
		want  int
	}{
		{"", ok},
		{"lag=20000", ok},
		{"lag=19999", unavailable},
		{"lag=16kB", unavailable},
		{"lag=32kB", ok},
		{"lag=16+kB", unavailable}, // "16 kB"
		{"lag=%2016kB%20", unavailable},
		{"lag=1MB", ok},
		{"lag=0x4E20", ok},          // hex 20000
		{"lag=047040", ok},          // octal 20000
		{"lag=0.01MB", unavailable}, // 10 kB
		{"lag=1e5", ok},
		{"lag=-1", unavailable},
		{"lag=0", unavailable},
		{"lag=bogus", ok}, // unparsable: no limit, as Patroni
		{"lag=1KB", ok},   // units are case-sensitive: unparsable
		{"lag=16kB&lag=1GB", unavailable},
		{"lag=&lag=16kB", unavailable}, // empty values are ignored
		{"lag=", ok},
		{"lag", ok},
	}
	for _, tt := range tests {
		if got := code(t, st, http.MethodGet, "/replica?"+tt.query); got != tt.want {
			t.Errorf("/replica?%s = %d, want %d", tt.query, got, tt.want)
		}
	}

	// Lag counts from the newer of the status key and the WAL receiver's latest_end_lsn.
	st = replica()
	st.LatestEndLSN = optime + 3*mib
	if got := code(t, st, http.MethodGet, "/replica?lag=2MB"); got != unavailable {
		t.Errorf("lag behind latest_end_lsn: %d, want 503", got)
	}
	// Without any leader optime there is nothing to lag behind.
	st = lagging()
	st.LeaderOptime = 0
	if got := code(t, st, http.MethodGet, "/replica?lag=1"); got != ok {
		t.Errorf("no leader optime: %d, want 200", got)
	}
}

func TestReplicationStateFilter(t *testing.T) {
	archive := replica()
	archive.ReplicationState = "in archive recovery"
	tests := []struct {
		st    *ha.Status
		query string
		want  int
	}{
		{replica(), "replication_state=streaming", ok},
		{replica(), "replication_state=in+archive+recovery", unavailable},
		{archive, "replication_state=in%20archive%20recovery", ok},
		{archive, "replication_state=streaming", unavailable},
		{archive, "replication_state=", ok},
		{archive, "", ok},
	}
	for _, tt := range tests {
		if got := code(t, tt.st, http.MethodGet, "/replica?"+tt.query); got != tt.want {
			t.Errorf("%s /replica?%s = %d, want %d", tt.st.ReplicationState, tt.query, got, tt.want)
		}
	}
}

func TestTagFilters(t *testing.T) {
	tagged := func(st *ha.Status) *ha.Status {
		st.Tags = map[string]any{"zone": "a", "dc": "EU", "nofailover": false, "priority": float64(1), "weight": 1.5, "nil": nil}
		return st
	}
	tests := []struct {
		st   *ha.Status
		path string
		want int
	}{
		{tagged(replica()), "/replica?tag_zone=a", ok},
		{tagged(replica()), "/replica?tag_zone=b", unavailable},
		{tagged(replica()), "/replica?tag_missing=x", unavailable},
		{tagged(replica()), "/replica?tag_nil=none", unavailable},
		{tagged(replica()), "/replica?tag_nofailover=false", ok},
		{tagged(replica()), "/replica?tag_nofailover=False", unavailable}, // only the tag side is lower-cased
		{tagged(replica()), "/replica?tag_priority=1", ok},
		{tagged(replica()), "/replica?tag_weight=1.5", ok},
		{tagged(replica()), "/replica?tag_dc=EU", ok},
		{tagged(replica()), "/replica?tag_dc=eu", unavailable}, // string tags compare as they are
		{tagged(replica()), "/replica?tag_zone=a&tag_dc=EU&lag=1MB", ok},
		{tagged(replica()), "/replica?tag_zone=a&tag_dc=US", unavailable},
		{tagged(replica()), "/replica?tag_zone=a&tag_zone=b", ok}, // first value counts
		{tagged(replica()), "/replica?tag_zone=b&tag_zone=a", unavailable},
		{tagged(replica()), "/replica?tag_zone=", ok}, // empty values are ignored
		{tagged(replica()), "/replica?tag%5Fzone=a", ok},
		{tagged(replica()), "/health?tag_zone=b", unavailable},
		{tagged(replica()), "/read-only?tag_zone=b", unavailable},
		{tagged(replica()), "/async?tag_zone=a", ok},
		{tagged(primary()), "/primary?tag_zone=b", ok}, // ignored on leader paths
		{tagged(primary()), "/leader?tag_zone=b", ok},
		{tagged(primary()), "/read-only?tag_zone=b", unavailable},
		{tagged(primary()), "/read-only?tag_zone=a", ok},
		{tagged(lagging()), "/replica?tag_zone=a&lag=1MB", unavailable}, // only applied to a 200
	}
	for _, tt := range tests {
		if got := code(t, tt.st, http.MethodGet, tt.path); got != tt.want {
			t.Errorf("%s on %s = %d, want %d", tt.path, tt.st.Role, got, tt.want)
		}
	}
}

// noloadbalance is read as Patroni reads it (bool(value), patroni/tags.py): any non-empty string is
// true, "false" included.
func TestNoLoadBalance(t *testing.T) {
	for _, v := range []any{true, "true", "True", "on", "yes", "1", 1, float64(1), "false", "off", "no", "0", "maybe"} {
		st := replica()
		st.Tags = map[string]any{"noloadbalance": v}
		if got := code(t, st, http.MethodGet, "/replica"); got != unavailable {
			t.Errorf("noloadbalance=%#v: /replica = %d, want 503", v, got)
		}
		if got := code(t, st, http.MethodGet, "/health"); got != ok {
			t.Errorf("noloadbalance=%#v: /health = %d, want 200", v, got)
		}
	}
	for _, v := range []any{false, 0, float64(0), "", nil} {
		st := replica()
		st.Tags = map[string]any{"noloadbalance": v}
		if got := code(t, st, http.MethodGet, "/replica"); got != ok {
			t.Errorf("noloadbalance=%#v: /replica = %d, want 200", v, got)
		}
	}
}

func TestLeaderRules(t *testing.T) {
	// Holding the leader key is what counts, not being a primary.
	st := primary()
	st.IsLeader = false
	for _, p := range []string{"/primary", "/leader", "/read-only-sync"} {
		if got := code(t, st, http.MethodGet, p); got != unavailable {
			t.Errorf("primary without the leader key: %s = %d, want 503", p, got)
		}
	}
	if got := code(t, st, http.MethodGet, "/read-only"); got != unavailable {
		t.Errorf("primary without the leader key: /read-only = %d, want 503", got)
	}

	// Paused and the DCS unreachable: Postgres' own role decides.
	st.DCSReachable = false
	st.Pause = true
	for _, p := range []string{"/primary", "/leader", "/read-only"} {
		if got := code(t, st, http.MethodGet, p); got != ok {
			t.Errorf("paused, DCS down, primary: %s = %d, want 200", p, got)
		}
	}
	// ... but not for the paths that need the DCS.
	for _, p := range []string{"/read-only-sync", "/async"} {
		if got := code(t, st, http.MethodGet, p); got != unavailable {
			t.Errorf("paused, DCS down, primary: %s = %d, want 503", p, got)
		}
	}
	st.Pause = false
	if got := code(t, st, http.MethodGet, "/primary"); got != unavailable {
		t.Errorf("DCS down, not paused, no key: /primary = %d, want 503", got)
	}

	// A leader whose Postgres is not running (yet) is not a primary to route to.
	st = primary()
	st.State = "starting"
	for _, p := range []string{"/primary", "/leader", "/health", "/readiness"} {
		if got := code(t, st, http.MethodGet, p); got != unavailable {
			t.Errorf("starting leader: %s = %d, want 503", p, got)
		}
	}

	// A status whose lease ran out (the test server's clock is t0+1s) is not a leader any more:
	// the nemesis froze a primary's tusker past ttl, and on SIGCONT its last status still said
	// leader while another member was promoted.
	st = primary()
	st.LeaderUntil = t0.Add(time.Second)
	for _, p := range []string{"/primary", "/leader", "/read-write", "/readiness"} {
		if got := code(t, st, http.MethodGet, p); got != unavailable {
			t.Errorf("leader past its lease: %s = %d, want 503", p, got)
		}
	}
	st.LeaderUntil = t0.Add(time.Second + time.Millisecond)
	for _, p := range []string{"/primary", "/leader", "/readiness"} {
		if got := code(t, st, http.MethodGet, p); got != ok {
			t.Errorf("leader within its lease: %s = %d, want 200", p, got)
		}
	}

	// A replica holding the key (promotion not finished) is the leader, not a primary.
	st = replica()
	st.IsLeader = true
	if got := code(t, st, http.MethodGet, "/leader"); got != ok {
		t.Errorf("replica with the key: /leader = %d, want 200", got)
	}
	if got := code(t, st, http.MethodGet, "/primary"); got != unavailable {
		t.Errorf("replica with the key: /primary = %d, want 503", got)
	}
}

func TestReadiness(t *testing.T) {
	dcsDown := func(st *ha.Status) *ha.Status {
		st.DCSReachable = false
		return st
	}
	withEnd := func(st *ha.Status, end int64) *ha.Status {
		st.LatestEndLSN = end
		return st
	}
	archive := replica()
	archive.ReplicationState = "in archive recovery"
	tests := []struct {
		name  string
		st    *ha.Status
		query string
		want  int
	}{
		{"leader", primary(), "", ok},
		{"replica", replica(), "", ok},
		{"lagging apply", lagging(), "", unavailable},
		{"lagging write", lagging(), "mode=write", ok},
		{"lagging explicit apply", lagging(), "mode=apply", unavailable},
		{"lagging unknown mode", lagging(), "mode=bogus", unavailable},
		{"lagging, lag=4MB", lagging(), "lag=4MB", ok},
		{"lagging, lag=2MB", lagging(), "lag=2MB", ok},
		{"lagging, lag=2097151", lagging(), "lag=2097151", unavailable},
		{"lagging, bad lag uses maximum_lag_on_failover", lagging(), "lag=lots", unavailable},
		{"lagging, first lag counts", lagging(), "lag=4MB&lag=1", ok},
		{"write, lag=1kB", lagging(), "mode=write&lag=1kB", ok},
		{"write, lag=1023", lagging(), "mode=write&lag=1023", unavailable},
		{"archive recovery", archive, "", unavailable},
		{"stopped", stopped(), "", unavailable},
		{"nil", nil, "", unavailable},
		{"dcs down", dcsDown(replica()), "", unavailable},
		{"dcs down, failsafe primary vouching", func() *ha.Status {
			st := dcsDown(replica())
			st.FailsafeActive = true
			return st
		}(), "", ok},
		{"dcs down, receiver knows", dcsDown(withEnd(replica(), optime)), "", ok},
		{"dcs down, receiver ahead", dcsDown(withEnd(replica(), optime+2*mib)), "", unavailable},
		{"noloadbalance is still ready", noLB(), "", ok},
	}
	for _, tt := range tests {
		if got := code(t, tt.st, http.MethodGet, "/readiness?"+tt.query); got != tt.want {
			t.Errorf("%s: /readiness?%s = %d, want %d", tt.name, tt.query, got, tt.want)
		}
	}
}

func TestLiveness(t *testing.T) {
	var now time.Time
	clock := func() time.Time { return now }
	tests := []struct {
		name  string
		st    *ha.Status
		since time.Duration // now - LastLoop
		want  int
	}{
		{"primary fresh", primary(), 0, ok},
		{"primary 29s", primary(), 29 * time.Second, ok},
		{"primary 30s", primary(), 30 * time.Second, unavailable},
		{"replica 59s", replica(), 59 * time.Second, ok},
		{"replica 60s", replica(), 60 * time.Second, unavailable},
		{"stopped primary gets 2*ttl", stopped(), 59 * time.Second, ok},
		{"paused", func() *ha.Status { st := primary(); st.Pause = true; return st }(), time.Hour, ok},
		{"default ttl 30s", func() *ha.Status { st := primary(); st.TTL = 0; return st }(), 31 * time.Second, unavailable},
		{"ttl 10s", func() *ha.Status { st := replica(); st.TTL = 10 * time.Second; return st }(), 21 * time.Second, unavailable},
		{"never looped", func() *ha.Status { st := replica(); st.LastLoop = time.Time{}; return st }(), 0, unavailable},
		{"nil", nil, 0, unavailable},
	}
	for _, tt := range tests {
		box := &statusBox{}
		box.p.Store(tt.st)
		s := New(Config{Now: clock}, box.get)
		now = t0.Add(tt.since)
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodOptions} {
			rec := do(t, s, m, "/liveness")
			if rec.Code != tt.want || rec.Body.Len() != 0 {
				t.Errorf("%s: %s /liveness = %d %q, want %d and no body", tt.name, m, rec.Code, rec.Body, tt.want)
			}
		}
	}
}

func TestRouting(t *testing.T) {
	s, _ := newTestServer(primary())
	tests := []struct {
		method, path string
		want         int
		allow        string
	}{
		{"GET", "/foo", http.StatusNotFound, ""},
		{"GET", "/favicon.ico", http.StatusNotFound, ""},
		{"HEAD", "/foo", http.StatusNotFound, ""},
		{"POST", "/foo", http.StatusNotFound, ""},
		{"GET", "/patronix", http.StatusNotFound, ""},
		{"GET", "/patroni/anything", http.StatusOK, ""},
		{"GET", "/healthz", http.StatusOK, ""},        // substring rule
		{"GET", "/my-primary", http.StatusOK, ""},     // substring rule
		{"GET", "/replica-leader", http.StatusOK, ""}, // "leader" wins, as in Patroni
		{"POST", "/primary", http.StatusMethodNotAllowed, "GET, HEAD, OPTIONS"},
		{"PUT", "/patroni", http.StatusMethodNotAllowed, "GET, HEAD, OPTIONS"},
		{"DELETE", "/cluster", http.StatusMethodNotAllowed, "GET, HEAD, OPTIONS"},
		{"POST", "/liveness", http.StatusMethodNotAllowed, "GET, HEAD, OPTIONS"},
		{"PATCH", "/", http.StatusMethodNotAllowed, "GET, HEAD, OPTIONS"},
		{"POST", "/switchover", http.StatusNotImplemented, "POST, DELETE, OPTIONS"},
		{"DELETE", "/switchover", http.StatusNotImplemented, "POST, DELETE, OPTIONS"},
		{"GET", "/switchover", http.StatusMethodNotAllowed, "POST, DELETE, OPTIONS"},
		{"POST", "/failover", http.StatusNotImplemented, "POST, OPTIONS"},
		{"DELETE", "/failover", http.StatusMethodNotAllowed, "POST, OPTIONS"},
		{"POST", "/restart", http.StatusNotImplemented, "POST, DELETE, OPTIONS"},
		{"DELETE", "/restart", http.StatusNotImplemented, "POST, DELETE, OPTIONS"},
		{"POST", "/reload", http.StatusNotImplemented, "POST, OPTIONS"},
		{"POST", "/reinitialize", http.StatusNotImplemented, "POST, OPTIONS"},
		{"GET", "/config", http.StatusNotImplemented, "GET, HEAD, PATCH, PUT, OPTIONS"},
		{"PATCH", "/config", http.StatusNotImplemented, "GET, HEAD, PATCH, PUT, OPTIONS"},
		{"PUT", "/config", http.StatusNotImplemented, "GET, HEAD, PATCH, PUT, OPTIONS"},
		{"POST", "/config", http.StatusMethodNotAllowed, "GET, HEAD, PATCH, PUT, OPTIONS"},
		{"GET", "/failsafe", http.StatusNotImplemented, "GET, HEAD, POST, OPTIONS"},
		{"POST", "/failsafe", http.StatusNotImplemented, "GET, HEAD, POST, OPTIONS"},
		{"GET", "/metrics", http.StatusOK, ""},
		{"OPTIONS", "/switchover", http.StatusNotImplemented, "POST, DELETE, OPTIONS"},
		{"HEAD", "/cluster", http.StatusOK, ""},
		{"OPTIONS", "/history", http.StatusOK, ""},
	}
	for _, tt := range tests {
		rec := do(t, s, tt.method, tt.path)
		if rec.Code != tt.want {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.path, rec.Code, tt.want)
		}
		if got := rec.Header().Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
		}
		if tt.want == http.StatusNotImplemented && tt.method != "HEAD" && tt.method != "OPTIONS" &&
			rec.Body.String() != "not implemented yet\n" {
			t.Errorf("%s %s: body %q", tt.method, tt.path, rec.Body)
		}
		if (tt.method == "HEAD" || tt.method == "OPTIONS") && rec.Body.Len() != 0 {
			t.Errorf("%s %s: body %q, want none", tt.method, tt.path, rec.Body)
		}
	}
}

func TestRoute(t *testing.T) {
	tests := map[string]endpoint{
		"/":                      epPrimary,
		"/primary":               epPrimary,
		"/master":                epPrimary,
		"/read-write":            epPrimary,
		"/leader":                epLeader,
		"/standby-leader":        epStandbyLeader,
		"/standby_leader":        epStandbyLeader,
		"/replica":               epReplica,
		"/read-only":             epReadOnly,
		"/read-only-sync":        epReadOnlySync,
		"/read-only-synchronous": epReadOnlySync,
		"/read-only-quorum":      epReadOnlyQuorum,
		"/sync":                  epSync,
		"/synchronous":           epSync,
		"/async":                 epAsync,
		"/asynchronous":          epAsync,
		"/quorum":                epQuorum,
		"/health":                epHealth,
		"/liveness":              epLiveness,
		"/readiness":             epReadiness,
		"/patroni":               epPatroni,
		"/cluster":               epCluster,
		"/history":               epHistory,
		"/switchover":            epManagement,
		"/config/x":              epManagement,
		"/sync/x":                epNone,
		"/nothing":               epNone,
		"//":                     epNone,
	}
	for path, want := range tests {
		if got, _ := route(path); got != want {
			t.Errorf("route(%q) = %d, want %d", path, got, want)
		}
	}
}
