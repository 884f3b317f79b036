package restapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/tusker-ha/tusker/ha"
)

// arrivedAt makes the request look as if it arrived at local ("ip:port").
func arrivedAt(local string) func(*http.Request) {
	return func(r *http.Request) {
		ap := netip.MustParseAddrPort(local)
		*r = *r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, net.TCPAddrFromAddrPort(ap)))
	}
}

// TestDefaultAccess: with no access setting, unsafe requests come from this host or a member, and
// nobody else; reads and health checks stay open.
func TestDefaultAccess(t *testing.T) {
	st := primary() // members n1 at 10.0.0.1 (api_url and conn_url), n2 api 10.0.0.2, conn Node2.example
	m := &fakeManager{res: ha.Result{Code: 202, Message: "reload scheduled"}}
	s := allowServer(t, st, Config{Manager: m})
	s.allow.names.lookupIP = func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "Node2.example" {
			return []netip.Addr{netip.MustParseAddr("10.0.0.22")}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	for _, tc := range []struct {
		what, remote string
		mod          []func(*http.Request)
	}{
		{"loopback", "127.0.0.1:1", nil},
		{"loopback, another address of 127/8", "127.3.2.1:1", nil},
		{"IPv6 loopback", "[::1]:1", nil},
		{"this host through its own address", "192.0.2.50:1", []func(*http.Request){arrivedAt("192.0.2.50:8008")}},
		{"a member's api_url", "10.0.0.2:1", nil},
		{"a member's conn_url", "10.0.0.1:1", nil},
		{"a member's conn_url by host name", "10.0.0.22:1", nil},
		{"IPv4-mapped member", "[::ffff:10.0.0.2]:1", nil},
	} {
		assertPassed(t, from(s, tc.remote, "POST", "/reload", tc.mod...), tc.what)
	}
	n := len(m.callNames())
	for _, tc := range []struct {
		what, remote, method, path string
		mod                        []func(*http.Request)
	}{
		{"a stranger", "192.0.2.8:1", "POST", "/reload", nil},
		{"a stranger's PATCH /config (archive_command would run as postgres)", "192.0.2.8:1", "PATCH", "/config", nil},
		{"a stranger's PUT /config", "192.0.2.8:1", "PUT", "/config", nil},
		{"a stranger's DELETE", "192.0.2.8:1", "DELETE", "/switchover", nil},
		{"a stranger on this host's network, to another address", "192.0.2.8:1", "POST", "/restart", []func(*http.Request){arrivedAt("192.0.2.50:8008")}},
		{"no address", "@", "POST", "/reload", nil},
	} {
		rec := from(s, tc.remote, tc.method, tc.path, tc.mod...)
		assert.Equal(t, http.StatusForbidden, rec.Code, tc.what)
		assert.Equal(t, msgDefaultDenied, rec.Body.String(), tc.what)
	}
	assert.Len(t, m.callNames(), n, "a refused request reached the manager")
	assert.Contains(t, msgDefaultDenied, "restapi.authentication", "the message says what to configure")

	// Reads, health checks and OPTIONS stay open.
	assert.Equal(t, 200, from(s, "192.0.2.8:1", "GET", "/primary").Code)
	assert.Equal(t, 200, from(s, "192.0.2.8:1", "GET", "/patroni").Code)
	assertPassed(t, from(s, "192.0.2.8:1", "GET", "/config"), "GET /config")
	assert.Equal(t, 200, from(s, "192.0.2.8:1", "OPTIONS", "/reload").Code)

	// No Status yet: this host only.
	early := New(Config{Manager: m}, nil)
	assert.Equal(t, 202, from(early, "127.0.0.1:1", "POST", "/reload").Code)
	assert.Equal(t, 403, from(early, "10.0.0.2:1", "POST", "/reload").Code)
}

// TestExplicitAccessReplacesDefault: any access setting is the whole policy.
func TestExplicitAccessReplacesDefault(t *testing.T) {
	m := &fakeManager{res: ha.Result{Code: 202, Message: "reload scheduled"}}
	auth := func(r *http.Request) { r.SetBasicAuth("admin", "s3cret") }
	withAuth := allowServer(t, primary(), Config{Manager: m, Auth: &BasicAuth{Username: "admin", Password: "s3cret"}})
	assertPassed(t, from(withAuth, "192.0.2.8:1", "POST", "/reload", auth), "authentication: anyone with the password")
	assert.Equal(t, 401, from(withAuth, "127.0.0.1:1", "POST", "/reload").Code, "authentication: loopback needs it too")

	list := allowServer(t, primary(), Config{Manager: m, Allowlist: []string{"192.0.2.8"}})
	assertPassed(t, from(list, "192.0.2.8:1", "POST", "/reload"), "allowlist")
	assertDenied(t, from(list, "10.0.0.2:1", "POST", "/reload"), "allowlist: members are not implied")

	certs := allowServer(t, primary(), Config{Manager: m, TLS: &TLSConfig{CertFile: "unused.pem", VerifyClient: "required"}})
	verified := func(r *http.Request) {
		r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{}}}}
	}
	assertPassed(t, from(certs, "192.0.2.8:1", "POST", "/reload", verified), "verify_client: any verified certificate")

	// TLS without verify_client is not an access setting: the default stays.
	tlsOnly := allowServer(t, primary(), Config{Manager: m, TLS: &TLSConfig{CertFile: "unused.pem"}})
	assert.Equal(t, 403, from(tlsOnly, "192.0.2.8:1", "POST", "/reload").Code)
}

// TestClientNames: verify_client_names narrows the accepted certificates to CN or SAN matches.
func TestClientNames(t *testing.T) {
	m := &fakeManager{res: ha.Result{Code: 202, Message: "reload scheduled"}}
	s := allowServer(t, primary(), Config{Manager: m,
		TLS:         &TLSConfig{CertFile: "unused.pem", VerifyClient: "required"},
		ClientNames: []string{"ops.example.com", "tuskerctl", "10.1.1.1", "spiffe://example.org/ctl"}})
	withCert := func(c *x509.Certificate) func(*http.Request) {
		return func(r *http.Request) { r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{c}}} }
	}
	u, _ := url.Parse("spiffe://example.org/ctl")
	for _, c := range []struct {
		what string
		cert *x509.Certificate
	}{
		{"common name", &x509.Certificate{Subject: pkix.Name{CommonName: "tuskerctl"}}},
		{"DNS SAN, other case", &x509.Certificate{Subject: pkix.Name{CommonName: "x"}, DNSNames: []string{"OPS.example.com"}}},
		{"IP SAN", &x509.Certificate{IPAddresses: []net.IP{net.ParseIP("10.1.1.1")}}},
		{"URI SAN", &x509.Certificate{URIs: []*url.URL{u}}},
	} {
		assertPassed(t, from(s, "192.0.2.8:1", "POST", "/reload", withCert(c.cert)), c.what)
	}
	rec := from(s, "192.0.2.8:1", "POST", "/reload", withCert(&x509.Certificate{Subject: pkix.Name{CommonName: "intruder"},
		DNSNames: []string{"ops.example.com.evil"}}))
	assert.Equal(t, 403, rec.Code)
	assert.Equal(t, "client certificate not allowed", rec.Body.String())

	bad := New(Config{Manager: m, ClientNames: []string{"x"}}, nil)
	assert.ErrorContains(t, bad.Check(), "verify_client_names needs certfile and verify_client")
}

// TestAuthFailuresLimited: wrong passwords from one address are refused with 429 after the limit,
// for the rest of the window; another address is not affected, and the window ends.
func TestAuthFailuresLimited(t *testing.T) {
	m := &fakeManager{res: ha.Result{Code: 202, Message: "reload scheduled"}}
	now := t0
	s := allowServer(t, primary(), Config{Manager: m, Auth: &BasicAuth{Username: "admin", Password: "s3cret"}})
	s.now = func() time.Time { return now }
	wrong := func(r *http.Request) { r.SetBasicAuth("admin", "guess") }
	right := func(r *http.Request) { r.SetBasicAuth("admin", "s3cret") }
	for i := range authFailLimit {
		assert.Equal(t, 401, from(s, "192.0.2.8:1", "POST", "/reload", wrong).Code, "attempt %d", i+1)
	}
	rec := from(s, "192.0.2.8:2", "POST", "/reload", right)
	assert.Equal(t, http.StatusTooManyRequests, rec.Code, "even the right password waits out the window")
	assert.Equal(t, "60", rec.Header().Get("Retry-After"))
	assertPassed(t, from(s, "192.0.2.9:1", "POST", "/reload", right), "another address")
	assert.Equal(t, 401, from(s, "192.0.2.10:1", "POST", "/reload").Code, "no header: not counted")

	now = now.Add(authFailWindow)
	assertPassed(t, from(s, "192.0.2.8:1", "POST", "/reload", right), "after the window")
	// A success forgets the failures.
	for range authFailLimit - 1 {
		from(s, "192.0.2.8:1", "POST", "/reload", wrong)
	}
	assertPassed(t, from(s, "192.0.2.8:1", "POST", "/reload", right), "below the limit")
	assert.Equal(t, 401, from(s, "192.0.2.8:1", "POST", "/reload", wrong).Code, "counting starts again")

	// A flood of sources cannot grow the table without bound.
	var l authLimiter
	for i := range authFailEntries + 100 {
		l.fail(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), t0)
	}
	assert.LessOrEqual(t, len(l.m), authFailEntries)
}

// TestProtectReads: with protect_reads the cluster-data reads are checked like changes; the
// health checks and /liveness, /readiness stay open.
func TestProtectReads(t *testing.T) {
	m := &fakeManager{res: ha.Result{Code: 200}, config: []byte(`{"ttl":30}`)}
	st := withFailsafeKey(primary())
	st.FailsafeEnabled = true
	s := allowServer(t, st, Config{Manager: m, ProtectReads: true, Auth: &BasicAuth{Username: "admin", Password: "s3cret"}})
	auth := func(r *http.Request) { r.SetBasicAuth("admin", "s3cret") }
	for _, p := range []string{"/patroni", "/cluster", "/history", "/metrics", "/config", "/failsafe"} {
		for _, method := range []string{"GET", "HEAD"} {
			assert.Equal(t, 401, from(s, "192.0.2.8:1", method, p).Code, "%s %s without credentials", method, p)
			assert.Equal(t, 200, from(s, "192.0.2.8:1", method, p, auth).Code, "%s %s with credentials", method, p)
		}
	}
	for _, p := range []string{"/", "/primary", "/replica", "/health", "/liveness", "/readiness", "/read-only"} {
		assert.NotEqual(t, 401, from(s, "192.0.2.8:1", "GET", p).Code, p)
	}
	// Off (the default, as Patroni): reads are open to anyone.
	open := allowServer(t, st, Config{Manager: m, Auth: &BasicAuth{Username: "admin", Password: "s3cret"}})
	assert.Equal(t, 200, from(open, "192.0.2.8:1", "GET", "/cluster").Code)
	// With the default allowlist, protected reads are this host's and the members'.
	def := allowServer(t, st, Config{Manager: m, ProtectReads: true})
	assert.Equal(t, 403, from(def, "192.0.2.8:1", "GET", "/metrics").Code)
	assert.Equal(t, 200, from(def, "10.0.0.2:1", "GET", "/metrics").Code)
}

// TestFailsafeSender: POST /failsafe is taken only from the address of the member it names, as the
// failsafe key or that member's key say; by default no other access check applies to it.
func TestFailsafeSender(t *testing.T) {
	st := replica()
	c := *st.Cluster
	c.Failsafe = map[string]string{"n1": "http://leader.example:8008/patroni", "n2": "http://10.0.0.2:8008/patroni"}
	st.Cluster = &c
	m := &fakeManager{res: ha.Result{Code: 200}, lsn: 1}
	s := allowServer(t, st, Config{Manager: m})
	s.senders.names.lookupIP = func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "leader.example" {
			return []netip.Addr{netip.MustParseAddr("10.0.0.11")}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	post := func(remote, name string) int {
		req := httpRequest("POST", "/failsafe", `{"name":"`+name+`","api_url":"http://10.0.0.1:8008/patroni"}`)
		req.RemoteAddr = remote
		return serve(s, req).Code
	}
	assert.Equal(t, 200, post("10.0.0.11:1", "n1"), "the failsafe key's api_url, by host name")
	assert.Equal(t, 200, post("10.0.0.1:1", "n1"), "n1's member key (api_url and conn_url)")
	calls := len(m.callNames())
	assert.Equal(t, 403, post("10.0.0.2:1", "n1"), "another member naming the leader")
	assert.Equal(t, 403, post("127.0.0.1:1", "n1"), "this host naming the leader")
	assert.Equal(t, 403, post("192.0.2.8:1", "n1"), "a stranger")
	assert.Equal(t, 403, post("192.0.2.8:1", "n7"), "a name the key does not list")
	assert.Equal(t, 403, post("10.0.0.3:1", "n3"), "a member not in the key")
	assert.Len(t, m.callNames(), calls, "a refused POST /failsafe changed something")

	noKey := allowServer(t, replica(), Config{Manager: m})
	assert.Equal(t, 403, serve(noKey, withRemote(httpRequest("POST", "/failsafe", `{"name":"n1"}`), "10.0.0.1:1")).Code,
		"no failsafe key: nobody")
}

func httpRequest(method, path, body string) *http.Request {
	req, _ := http.NewRequest(method, path, strings.NewReader(body))
	req.RequestURI = path
	return req
}

func withRemote(r *http.Request, remote string) *http.Request { r.RemoteAddr = remote; return r }

func serve(s *Server, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, r)
	return rec
}

// TestCleartextAuthWarning: Basic authentication over plain HTTP on a reachable address is
// warned about at start-up; on loopback or with TLS it is not.
func TestCleartextAuthWarning(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, nil))
	auth := &BasicAuth{Username: "admin", Password: "s3cret"}
	for _, tc := range []struct {
		cfg  Config
		addr string
		warn bool
	}{
		{Config{Auth: auth}, "10.0.0.1:8008", true},
		{Config{Auth: auth}, "[::]:8008", true},
		{Config{Auth: auth}, "127.0.0.1:8008", false},
		{Config{Auth: auth, TLS: &TLSConfig{CertFile: "x.pem"}}, "10.0.0.1:8008", false},
		{Config{}, "10.0.0.1:8008", false},
	} {
		buf.Reset()
		tc.cfg.Logger = log
		New(tc.cfg, nil).warnCleartextAuth(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(tc.addr)))
		assert.Equal(t, tc.warn, strings.Contains(buf.String(), "clear text"), "%s: %s", tc.addr, buf.String())
	}
}
