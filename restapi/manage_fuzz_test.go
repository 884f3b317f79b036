package restapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tusker-ha/tusker/ha"
)

// fuzzCodes are the status codes a management endpoint may answer with a Manager that accepts
// everything.
var fuzzCodes = map[int]bool{
	200: true, 202: true, 400: true, 404: true, 405: true, 409: true, 411: true, 412: true,
	413: true, 422: true, 500: true, 502: true, 503: true,
	403: true, // POST /failsafe naming another member than the one at testClient
}

var fuzzEndpoints = []struct{ method, path string }{
	{"POST", "/switchover"}, {"DELETE", "/switchover"}, {"POST", "/failover"},
	{"POST", "/restart"}, {"DELETE", "/restart"}, {"POST", "/reload"}, {"POST", "/reinitialize"},
	{"GET", "/config"}, {"HEAD", "/config"}, {"PATCH", "/config"}, {"PUT", "/config"},
	{"GET", "/failsafe"}, {"POST", "/failsafe"}, {"OPTIONS", "/restart"},
}

// FuzzManagementBodies feeds arbitrary bodies to every management endpoint, paused or not, with
// and without a Content-Length: no panic, a status code from fuzzCodes, and what reaches the
// Manager passed the checks. The seeds run as a normal unit test.
func FuzzManagementBodies(f *testing.F) {
	for _, seed := range []string{
		"", "{}", "[]", "null", "true", "0", `""`, "garbage", "{", "}", `{"a":}`, "{\"leader\":\"n\xff\"}",
		`{"leader":"n1"}`, `{"leader":"n1","candidate":"n2"}`, `{"candidate":"n2"}`, `{"member":"n2"}`,
		`{"leader":"n1","candidate":"n1"}`, `{"leader":1,"candidate":[]}`,
		`{"leader":"n1","scheduled_at":"2030-01-01T00:00:00Z"}`, `{"leader":"n1","scheduled_at":"2030-01-01T00:00:00"}`,
		`{"leader":"n1","scheduled_at":"2000-01-01T00:00:00+01:00"}`, `{"leader":"n1","scheduled_at":{}}`,
		`{"schedule":"2030-01-01T00:00:00Z","role":"replica","postgres_version":"15.3","timeout":"30s","restart_pending":true}`,
		`{"schedule":null}`, `{"role":"master"}`, `{"postgres_version":"9.6.1"}`, `{"postgres_version":15}`,
		`{"timeout":1e308}`, `{"timeout":"-1s"}`, `{"timeout":"2min"}`, `{"unknown":1}`, `{"restart_pending":"x"}`,
		`{"force":true,"from_leader":"yes"}`, `{"from-leader":1}`, `{"force":{}}`,
		`{"ttl":30,"postgresql":{"parameters":null}}`, `{"pause":true}`,
		`{"name":"n1","conn_url":"postgres://h/db","api_url":"http://h:8008/patroni","slots":{"n2":1}}`,
		`{"slots":{"n2":"x"}}`, `{"slots":{"n2":1e30}}`, `{"a":1,"a":2}`, `{"a":1} {"b":2}`,
		strings.Repeat("[", 20000), strings.Repeat(`{"a":`, 5000), `{"x":"` + strings.Repeat("a", maxBodyBytes) + `"}`,
	} {
		f.Add([]byte(seed), false, false)
		f.Add([]byte(seed), true, true)
	}
	f.Fuzz(func(t *testing.T, body []byte, paused, chunked bool) {
		m := &fakeManager{config: []byte(`{"ttl":30}`), lsn: 1}
		st := withFailsafeKey(primary())
		st.Pause = paused
		s := mgmtServer(st, m)
		for _, ep := range fuzzEndpoints {
			req := httptest.NewRequest(ep.method, ep.path, bytes.NewReader(body))
			req.RemoteAddr = testClient // this host: the default allowlist lets it in
			if chunked {
				req.ContentLength = -1
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if !fuzzCodes[rec.Code] {
				t.Fatalf("%s %s with %q: status %d %q", ep.method, ep.path, body, rec.Code, rec.Body)
			}
			if (ep.method == http.MethodHead || ep.method == http.MethodOptions) && rec.Body.Len() != 0 {
				t.Fatalf("%s %s: body %q", ep.method, ep.path, rec.Body)
			}
		}
		for _, sw := range m.sw {
			checkSwitchover(t, sw, paused, body)
		}
		for _, rs := range m.rs {
			if paused && !rs.Schedule.IsZero() {
				t.Fatalf("restart scheduled while paused from %q", body)
			}
			if rs.Timeout < 0 || rs.PostgresVersion < 0 {
				t.Fatalf("restart request %+v from %q", rs, body)
			}
			switch rs.Role {
			case "", "primary", "replica", "standby_leader":
			default:
				t.Fatalf("restart role %q from %q", rs.Role, body)
			}
		}
		for _, b := range m.bodies {
			if !bytes.Equal(b, body) {
				t.Fatalf("config body %q, sent %q", b, body)
			}
		}
	})
}

// checkSwitchover asserts what Patroni's checks guarantee about a request that reaches the Manager.
func checkSwitchover(t *testing.T, sw ha.SwitchoverRequest, paused bool, body []byte) {
	t.Helper()
	switch {
	case sw.Failover && (sw.Candidate == "" || sw.Leader != ""):
		t.Fatalf("failover %+v from %q", sw, body)
	case !sw.Failover && sw.Leader == "":
		t.Fatalf("switchover without a leader %+v from %q", sw, body)
	case sw.Leader == sw.Candidate:
		t.Fatalf("switchover to itself %+v from %q", sw, body)
	case paused && (sw.Candidate == "" || !sw.At.IsZero()):
		t.Fatalf("paused switchover %+v from %q", sw, body)
	case sw.Failover && !sw.At.IsZero():
		t.Fatalf("scheduled failover %+v from %q", sw, body)
	case !sw.At.IsZero() && sw.At.Before(mgmtNow.Add(-time.Second)):
		t.Fatalf("switchover scheduled in the past %+v from %q", sw, body)
	}
}

// FuzzHealthRequests sends arbitrary paths, query strings and methods to the health and
// monitoring handler, for a primary, a replica and before the first Status: no panic, only the
// codes a health check answers, and no body on HEAD and OPTIONS.
func FuzzHealthRequests(f *testing.F) {
	for _, seed := range []string{
		"/", "/primary", "/master", "/replica?lag=1MB&replication_state=streaming", "/replica?lag=-1",
		"/replica?lag=1e400", "/read-only?tag_zone=b&tag_zone=c", "/readiness?lag=x&mode=write",
		"/liveness", "/health", "/standby_leader", "/sync", "/async?lag=16kB", "/read-only-quorum",
		"/patroni", "/cluster", "/history", "/metrics", "/%zz", "/replica?%zz=1&tag_%=x", "/replica?" + strings.Repeat("&", 1000),
		"/replica?lag=" + strings.Repeat("9", 400), "//replica", "/replica/extra/segments?lag=1GB",
	} {
		for _, m := range []string{"GET", "HEAD", "OPTIONS"} {
			f.Add(m, seed)
		}
	}
	servers := []*Server{
		New(Config{}, func() *ha.Status { return primary() }),
		New(Config{}, func() *ha.Status { return replica() }),
		New(Config{}, nil),
	}
	okCodes := map[int]bool{200: true, 404: true, 405: true, 503: true}
	f.Fuzz(func(t *testing.T, method, target string) {
		if method == "" || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") || !strings.HasPrefix(target, "/") ||
			strings.ContainsAny(target, " \t\r\n#") {
			return // not a request line net/http would hand to a handler
		}
		for _, s := range servers {
			req, err := http.NewRequest(method, "http://x"+target, nil)
			if err != nil {
				return
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if !okCodes[rec.Code] && !(rec.Code == 501 || rec.Code == 411 || rec.Code == 400) {
				t.Fatalf("%s %s: status %d", method, target, rec.Code)
			}
			if (method == "HEAD" || method == "OPTIONS") && rec.Body.Len() != 0 && rec.Code == 200 {
				t.Fatalf("%s %s: body %q", method, target, rec.Body)
			}
		}
	})
}
