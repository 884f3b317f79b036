package restapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/ha"
)

// from sends a request from remote ("ip:port") and returns the recorder.
func from(s *Server, remote, method, path string, mod ...func(*http.Request)) *httptest.ResponseRecorder {
	var body *strings.Reader
	if method == http.MethodPost && path == "/failsafe" {
		body = strings.NewReader(`{"name":"n1","api_url":"http://10.0.0.1:8008/patroni"}`)
	} else {
		body = strings.NewReader("")
	}
	req := httptest.NewRequest(method, path, body)
	req.RemoteAddr = remote
	for _, f := range mod {
		f(req)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

const denied = "Access is denied"

func assertDenied(t *testing.T, rec *httptest.ResponseRecorder, msg string) {
	t.Helper()
	assert.Equal(t, http.StatusForbidden, rec.Code, msg)
	assert.Equal(t, denied, rec.Body.String(), msg)
}

func assertPassed(t *testing.T, rec *httptest.ResponseRecorder, msg string) {
	t.Helper()
	assert.Equal(t, http.StatusAccepted, rec.Code, "%s: %s", msg, rec.Body.String())
}

func allowServer(t *testing.T, st *ha.Status, cfg Config) *Server {
	t.Helper()
	if cfg.Manager == nil {
		cfg.Manager = &fakeManager{res: ha.Result{Code: 202, Message: "reload scheduled"}}
	}
	s := New(cfg, func() *ha.Status { return st })
	require.NoError(t, s.setupErr)
	return s
}

func TestAllowlistIPsAndCIDRs(t *testing.T) {
	m := &fakeManager{res: ha.Result{Code: 202, Message: "reload scheduled"}}
	s := allowServer(t, primary(), Config{Manager: m, Allowlist: []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "198.51.100.9/24"}})
	assertPassed(t, from(s, "10.1.2.3:5555", "POST", "/reload"), "in a CIDR")
	assertPassed(t, from(s, "192.0.2.7:5555", "POST", "/reload"), "an IP")
	assertPassed(t, from(s, "[::ffff:10.1.2.3]:5555", "POST", "/reload"), "IPv4-mapped, from a dual-stack listener")
	assertPassed(t, from(s, "[2001:db8::1]:5555", "DELETE", "/switchover"), "IPv6 CIDR")
	assertPassed(t, from(s, "198.51.100.200:5555", "POST", "/reload"), "host bits in a CIDR entry are ignored")
	n := len(m.callNames())
	assertDenied(t, from(s, "192.0.2.8:5555", "POST", "/reload"), "outside")
	assertDenied(t, from(s, "127.0.0.1:5555", "DELETE", "/restart"), "loopback is not implied")
	assertDenied(t, from(s, "[2001:db9::1]:5555", "PATCH", "/config"), "IPv6 outside")
	assertDenied(t, from(s, "@", "POST", "/reload"), "no IP address")
	assert.Len(t, m.callNames(), n, "a refused request reached the manager")

	// Reads are not checked.
	assert.Equal(t, 200, from(s, "192.0.2.8:5555", "GET", "/primary").Code)
	assertPassed(t, from(s, "192.0.2.8:5555", "GET", "/config"), "GET /config reaches the manager")
	assert.Equal(t, 200, from(s, "192.0.2.8:5555", "OPTIONS", "/reload").Code)

	// Without an allowlist, the default: this host and the members only.
	def := allowServer(t, primary(), Config{})
	rec := from(def, "192.0.2.8:5555", "POST", "/reload")
	assert.Equal(t, http.StatusForbidden, rec.Code)
	assert.Equal(t, msgDefaultDenied, rec.Body.String())
	assertPassed(t, from(def, "127.0.0.1:5555", "POST", "/reload"), "default: loopback")

	// An invalid entry is a configuration error, and a handler used anyway refuses everything.
	bad := New(Config{Manager: m, Allowlist: []string{"10.0.0.0/33", "10.1.2.3"}}, func() *ha.Status { return primary() })
	assert.ErrorContains(t, bad.Check(), `allowlist entry "10.0.0.0/33"`)
	assertDenied(t, from(bad, "10.1.2.3:5555", "POST", "/reload"), "invalid allowlist")
}

func TestAllowlistHostName(t *testing.T) {
	s := allowServer(t, primary(), Config{Allowlist: []string{"localhost"}})
	assertPassed(t, from(s, "127.0.0.1:5555", "POST", "/reload"), "localhost")
	assertDenied(t, from(s, "10.0.0.1:5555", "POST", "/reload"), "not localhost")
}

// membersAt is a Status whose cluster has members with these api_url values.
func membersAt(urls ...string) *ha.Status {
	st := primary()
	st.Cluster = &dcs.Cluster{Leader: &dcs.Leader{Name: "m0"}}
	for i, u := range urls {
		st.Cluster.Members = append(st.Cluster.Members, dcs.Member{Name: "m" + string(rune('0'+i)), Data: dcs.MemberData{APIURL: u}})
	}
	return st
}

func TestAllowlistIncludeMembers(t *testing.T) {
	st := membersAt("http://127.0.0.1:8008/patroni", "https://[fd00::2]:8008/patroni", "", "::bad url")
	s := allowServer(t, st, Config{AllowlistIncludeMembers: true})
	assertPassed(t, from(s, "127.0.0.1:40000", "POST", "/reload"), "member")
	assertPassed(t, from(s, "[fd00::2]:40000", "POST", "/reload"), "IPv6 member")
	assertDenied(t, from(s, "10.9.9.9:40000", "POST", "/reload"), "not a member, and an empty allowlist admits nobody else")
	// POST /failsafe skips the members (Patroni's allowlist_check_members=False): with no
	// allowlist besides, the allowlist does not check it; the sender must be the member of the
	// failsafe key it names.
	st.Cluster.Failsafe = map[string]string{"n1": "http://10.9.9.9:8008/patroni"}
	assertPassed(t, from(s, "10.9.9.9:40000", "POST", "/failsafe"), "failsafe skips the member check")
	assert.Equal(t, http.StatusForbidden, from(s, "10.9.9.8:40000", "POST", "/failsafe").Code, "not the member it names")

	// A member's api_url with a host name.
	assertPassed(t, from(allowServer(t, membersAt("http://localhost:8008/patroni"), Config{AllowlistIncludeMembers: true}),
		"127.0.0.1:40000", "POST", "/reload"), "member by host name")
	// No Status yet: no members.
	noStatus := New(Config{AllowlistIncludeMembers: true, Manager: &fakeManager{}}, nil)
	assertDenied(t, from(noStatus, "127.0.0.1:40000", "POST", "/reload"), "no cluster known")

	// With an allowlist too, both admit, and /failsafe only checks the allowlist.
	s = allowServer(t, st, Config{AllowlistIncludeMembers: true, Allowlist: []string{"192.0.2.1"}})
	assertPassed(t, from(s, "127.0.0.1:40000", "POST", "/reload"), "member")
	assertPassed(t, from(s, "192.0.2.1:40000", "POST", "/reload"), "allowlisted")
	assertDenied(t, from(s, "10.9.9.9:40000", "POST", "/reload"), "neither")
	assertDenied(t, from(s, "127.0.0.1:40000", "POST", "/failsafe"), "a member is not enough for /failsafe")
	assert.Equal(t, http.StatusForbidden, from(s, "192.0.2.1:40000", "POST", "/failsafe").Code,
		"allowlisted, but not the member the failsafe key names")
	st.Cluster.Failsafe = map[string]string{"n1": "http://192.0.2.1:8008/patroni"}
	assertPassed(t, from(s, "192.0.2.1:40000", "POST", "/failsafe"), "allowlisted failsafe")
}

// TestCheckAccessOrder is Patroni's check_access order: allowlist (403), client certificate when
// verify_client asks for one (403), Basic authentication (401).
func TestCheckAccessOrder(t *testing.T) {
	s := allowServer(t, primary(), Config{
		Allowlist: []string{"10.0.0.1"},
		Auth:      &BasicAuth{Username: "admin", Password: "s3cret"},
		TLS:       &TLSConfig{CertFile: "unused.pem", VerifyClient: "optional"},
	})
	verified := func(r *http.Request) {
		r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{}}}}
	}
	unverified := func(r *http.Request) { r.TLS = &tls.ConnectionState{} }
	auth := func(r *http.Request) { r.SetBasicAuth("admin", "s3cret") }

	assertDenied(t, from(s, "10.0.0.2:1", "POST", "/reload", unverified), "allowlist first")
	rec := from(s, "10.0.0.1:1", "POST", "/reload", unverified, auth)
	assert.Equal(t, 403, rec.Code)
	assert.Equal(t, "client certificate required", rec.Body.String())
	rec = from(s, "10.0.0.1:1", "POST", "/reload", auth) // not over TLS at all
	assert.Equal(t, "client certificate required", rec.Body.String())
	rec = from(s, "10.0.0.1:1", "POST", "/reload", verified)
	assert.Equal(t, 401, rec.Code, "then Basic authentication")
	assert.Equal(t, `Basic realm="Patroni"`, rec.Header().Get("WWW-Authenticate"))
	assertPassed(t, from(s, "10.0.0.1:1", "POST", "/reload", verified, auth), "all checks pass")
	assertPassed(t, from(s, "10.0.0.2:1", "GET", "/config"), "reads need no client certificate with optional")
}

// TestAllowlistSlowDNS: a request waits at most about a second for a name never resolved, and
// the answer is cached for the next.
func TestAllowlistSlowDNS(t *testing.T) {
	s := allowServer(t, primary(), Config{Allowlist: []string{"slow.example"}})
	release := make(chan struct{})
	var calls atomic.Int32
	s.allow.names.lookupIP = func(ctx context.Context, host string) ([]netip.Addr, error) {
		calls.Add(1)
		select {
		case <-release:
			return []netip.Addr{netip.MustParseAddr("192.0.2.5")}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	start := time.Now()
	assertDenied(t, from(s, "192.0.2.5:1", "POST", "/reload"), "unresolved yet")
	d := time.Since(start)
	assert.GreaterOrEqual(t, d, resolveWait-100*time.Millisecond)
	assert.Less(t, d, resolveWait+time.Second, "the request waited for the resolver")

	close(release)
	assert.Eventually(t, func() bool { return from(s, "192.0.2.5:1", "POST", "/reload").Code == 202 },
		5*time.Second, 10*time.Millisecond)
	assert.EqualValues(t, 1, calls.Load(), "one resolution, shared and cached")
}

func TestHostCache(t *testing.T) {
	c := newHostCache(slog.New(slog.DiscardHandler))
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	c.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	var calls atomic.Int32
	var fail atomic.Bool
	answer := atomic.Pointer[string]{}
	a1 := "192.0.2.1"
	answer.Store(&a1)
	c.lookupIP = func(context.Context, string) ([]netip.Addr, error) {
		calls.Add(1)
		if fail.Load() {
			return nil, errors.New("SERVFAIL")
		}
		return []netip.Addr{netip.MustParseAddr(*answer.Load())}, nil
	}
	ctx := context.Background()
	assert.Equal(t, "[192.0.2.1]", addrsString(c.lookup(ctx, "h")))
	assert.Equal(t, "[192.0.2.1]", addrsString(c.lookup(ctx, "h")))
	assert.EqualValues(t, 1, calls.Load(), "cached")

	// After the TTL the stale answer is used while the name is resolved again.
	a2 := "192.0.2.2"
	answer.Store(&a2)
	advance(resolveTTL)
	assert.Equal(t, "[192.0.2.1]", addrsString(c.lookup(ctx, "h")), "stale while refreshing")
	assert.Eventually(t, func() bool { return addrsString(c.lookup(ctx, "h")) == "[192.0.2.2]" }, 5*time.Second, time.Millisecond)
	assert.EqualValues(t, 2, calls.Load())

	// A failure keeps the last addresses.
	fail.Store(true)
	advance(resolveTTL)
	c.lookup(ctx, "h")
	assert.Eventually(t, func() bool { return calls.Load() == 3 }, 5*time.Second, time.Millisecond)
	assert.Eventually(t, func() bool { _, _, p := c.start("h"); return p == nil }, 5*time.Second, time.Millisecond)
	assert.Equal(t, "[192.0.2.2]", addrsString(c.lookup(ctx, "h")))

	// A name that never resolved is retried sooner.
	assert.Empty(t, c.lookup(ctx, "other"))
	n := calls.Load()
	advance(resolveRetry)
	fail.Store(false)
	assert.Eventually(t, func() bool { return len(c.lookup(ctx, "other")) == 1 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, n+1, calls.Load())
}

func addrsString(a []netip.Addr) string {
	s := make([]string, len(a))
	for i, x := range a {
		s[i] = x.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}
