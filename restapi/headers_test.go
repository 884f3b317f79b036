package restapi

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/ha"
)

func TestServerTokens(t *testing.T) {
	for tokens, want := range map[string]string{
		"":            "tusker",
		"Original":    "tusker",
		"original":    "tusker",
		"Minimal":     "tusker/" + version,
		"MINIMAL":     "tusker/" + version,
		"ProductOnly": "tusker",
		"productonly": "tusker",
		"Full":        "tusker", // unknown: the default, with a warning
	} {
		m := &fakeManager{res: ha.Result{Code: 202, Message: "reload scheduled"}}
		s := New(Config{ServerTokens: tokens, Version: version, Manager: m}, func() *ha.Status { return primary() })
		for _, r := range []struct{ method, path string }{
			{"GET", "/primary"}, {"HEAD", "/replica"}, {"OPTIONS", "/leader"}, {"GET", "/cluster"},
			{"GET", "/nothing-here"}, {"POST", "/reload"}, {"PUT", "/health"},
		} {
			assert.Equal(t, want, do(t, s, r.method, r.path).Header().Get("Server"), "server_tokens %q: %s %s", tokens, r.method, r.path)
		}
	}
	// Minimal without a version has nothing to add.
	s := New(Config{ServerTokens: "Minimal"}, nil)
	assert.Equal(t, "tusker", do(t, s, "GET", "/health").Header().Get("Server"))
}

func TestExtraHeaders(t *testing.T) {
	m := &fakeManager{res: ha.Result{Code: 202, Message: "reload scheduled"}}
	cfg := Config{
		Manager:           m,
		HTTPExtraHeaders:  map[string]string{"x-frame-options": "DENY", "X-Both": "http", "Content-Security-Policy": "default-src 'none'"},
		HTTPSExtraHeaders: map[string]string{"Strict-Transport-Security": "max-age=31536000", "X-Both": "https"},
	}
	s := New(cfg, func() *ha.Status { return primary() })
	require.NoError(t, s.Check())
	for _, r := range []struct{ method, path string }{
		{"GET", "/primary"}, {"HEAD", "/replica"}, {"OPTIONS", "/primary"}, {"GET", "/patroni"},
		{"GET", "/liveness"}, {"POST", "/reload"}, {"GET", "/nothing-here"},
	} {
		h := do(t, s, r.method, r.path).Header()
		assert.Equal(t, "DENY", h.Get("X-Frame-Options"), "%s %s", r.method, r.path)
		assert.Equal(t, "default-src 'none'", h.Get("Content-Security-Policy"), "%s %s", r.method, r.path)
		assert.Equal(t, "http", h.Get("X-Both"), "%s %s", r.method, r.path)
		assert.Empty(t, h.Values("Strict-Transport-Security"), "%s %s: an HTTPS header over HTTP", r.method, r.path)
		assert.Equal(t, "tusker", h.Get("Server"))
	}

	// Over TLS: both, the HTTPS value winning.
	p := newPKI(t)
	certFile, keyFile := p.serverFiles(100)
	cfg.TLS = &TLSConfig{CertFile: certFile, KeyFile: keyFile}
	addr := serveTLS(t, New(cfg, func() *ha.Status { return primary() }))
	c := httpsClient(p.clientConfig(nil))
	for _, path := range []string{"/primary", "/reload"} {
		method := "GET"
		if path == "/reload" {
			method = "POST"
		}
		_, _, h, err := call(c, method, "https://"+addr+path, false)
		require.NoError(t, err)
		assert.Equal(t, "max-age=31536000", h.Get("Strict-Transport-Security"), path)
		assert.Equal(t, "DENY", h.Get("X-Frame-Options"), path)
		assert.Equal(t, []string{"https"}, h.Values("X-Both"), path)
	}
}

func TestExtraHeadersInvalid(t *testing.T) {
	for _, tc := range []struct {
		http, https map[string]string
		want        string
	}{
		{map[string]string{"Bad Name": "x"}, nil, "http_extra_headers"},
		{nil, map[string]string{"X-A": "line\r\nInjected: yes"}, "https_extra_headers"},
		{map[string]string{"Content-Length": "0"}, nil, "set by the server"},
		{map[string]string{"": "x"}, nil, "empty header name"},
	} {
		s := New(Config{HTTPExtraHeaders: tc.http, HTTPSExtraHeaders: tc.https}, nil)
		assert.ErrorContains(t, s.Check(), tc.want)
		// The handler still answers, with the Server header alone.
		rec := do(t, s, "GET", "/health")
		assert.Equal(t, "tusker", rec.Header().Get("Server"))
		assert.Empty(t, rec.Header().Get("Injected"))
	}
}

// TestHealthPathAllocations: the extra headers cost the health path no allocation.
func TestHealthPathAllocations(t *testing.T) {
	box := &statusBox{}
	box.p.Store(primary())
	s := New(Config{ServerTokens: "Minimal", Version: version,
		HTTPExtraHeaders: map[string]string{"X-Frame-Options": "DENY", "X-Other": "1"}}, box.get)
	h := s.Handler()
	req := mustRequest("GET", "/primary")
	w := newRecorder()
	allocs := testing.AllocsPerRun(200, func() {
		w.reset()
		h.ServeHTTP(w, req)
	})
	assert.Zero(t, allocs)
	assert.Equal(t, 200, w.code)
	assert.Equal(t, []string{"DENY"}, w.h["X-Frame-Options"])
	assert.Equal(t, []string{"tusker/" + version}, w.h["Server"])
}

// TestListenWildcard: "*:port" listens on every address, as in Patroni.
func TestListenWildcard(t *testing.T) {
	l, err := net.Listen("tcp", ":0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())

	s := New(Config{Listen: "*:" + strconv.Itoa(port)}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe(ctx) }()
	defer func() {
		cancel()
		assert.NoError(t, <-done)
	}()
	hosts := []string{"127.0.0.1"}
	if l6, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		l6.Close()
		hosts = append(hosts, "[::1]")
	}
	for _, h := range hosts {
		var resp *http.Response
		assert.Eventually(t, func() bool {
			resp, err = http.Get("http://" + h + ":" + strconv.Itoa(port) + "/health")
			return err == nil
		}, 5*time.Second, 20*time.Millisecond, "nothing listens on %s", h)
		if resp != nil {
			resp.Body.Close()
			assert.Equal(t, 503, resp.StatusCode, h)
		}
	}
}
