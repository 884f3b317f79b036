// Package apiclient builds the HTTP client that talks to members' REST APIs: the daemon's own
// requests to its peers (leader race probes, failsafe confirmations) and tuskerctl's. Like
// Patroni, it takes the ctl section's TLS settings and falls back to the restapi section's, so
// that a cluster whose members require client certificates keeps working.
package apiclient

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/internal/keypair"
)

// Settings are the resolved TLS settings of a client.
type Settings struct {
	CAFile          string // verify servers with these roots; "" = the system's
	CertFile        string // client certificate, for members with verify_client
	KeyFile         string // default CertFile
	KeyFilePassword string
	Insecure        bool // do not verify server certificates
}

// FromConfig resolves the settings as Patroni does: ctl.cacert, ctl.certfile, ctl.keyfile and
// ctl.keyfile_password first, then restapi.cafile, restapi.certfile, restapi.keyfile and
// restapi.keyfile_password; ctl.insecure turns verification off.
func FromConfig(c *config.Config) Settings {
	s := Settings{CAFile: c.Ctl.CACert, CertFile: c.Ctl.CertFile, KeyFile: c.Ctl.KeyFile,
		KeyFilePassword: c.Ctl.KeyFilePassword, Insecure: c.Ctl.Insecure}
	if s.CAFile == "" {
		s.CAFile = c.RestAPI.CAFile
	}
	if s.CertFile == "" {
		s.CertFile, s.KeyFile, s.KeyFilePassword = c.RestAPI.CertFile, c.RestAPI.KeyFile, c.RestAPI.KeyFilePassword
	}
	return s
}

// Auth returns the credentials for unsafe requests: ctl.authentication, else
// restapi.authentication; nil when neither is set.
func Auth(c *config.Config) *config.Auth {
	if a := c.Ctl.Authentication; a != nil && a.Username != "" {
		return a
	}
	if a := c.RestAPI.Authentication; a != nil && a.Username != "" {
		return a
	}
	return nil
}

// TLSConfig builds the client TLS configuration.
func (s Settings) TLSConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.Insecure} //nolint:gosec // ctl.insecure asks for it
	if s.CAFile != "" {
		pemBytes, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading the CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", s.CAFile)
		}
		tc.RootCAs = pool
	}
	if s.CertFile != "" {
		l := &keyPairLoader{certFile: s.CertFile, keyFile: s.KeyFile, password: s.KeyFilePassword}
		if _, err := l.get(); err != nil {
			return nil, err // a broken setting fails at start, not on the first request
		}
		// The client certificate follows its files (rotated by cert-manager or a cron job) like
		// the server's does; the CA pool is read once.
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return l.get() }
	}
	return tc, nil
}

// keyPairLoader re-reads a certificate and key when their files change, checking at most once a
// second; a change that does not load keeps the previous pair.
type keyPairLoader struct {
	certFile, keyFile, password string

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string
	checked time.Time
}

func (l *keyPairLoader) get() (*tls.Certificate, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cert != nil && time.Since(l.checked) < time.Second {
		return l.cert, nil
	}
	l.checked = time.Now()
	stamp := fileStamp(l.certFile) + "|" + fileStamp(l.keyFile)
	if l.cert != nil && stamp == l.stamp {
		return l.cert, nil
	}
	c, err := keypair.Load(l.certFile, l.keyFile, l.password, "keyfile_password")
	if err != nil {
		if l.cert != nil {
			return l.cert, nil // half-written files during a rotation: keep the old pair
		}
		return nil, err
	}
	l.cert, l.stamp = &c, stamp
	return l.cert, nil
}

// fileStamp identifies a version of a file by its modification time and size (following links).
func fileStamp(path string) string {
	if path == "" {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	return fi.ModTime().String() + "/" + strconv.FormatInt(fi.Size(), 10)
}

// New returns a keep-alive client for members' REST APIs. Callers bound each request with a
// context; the client's own timeout is a backstop.
func New(s Settings) (*http.Client, error) {
	tc, err := s.TLSConfig()
	if err != nil {
		return nil, err
	}
	return &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{
			Proxy:               nil, // members are reached directly, never through HTTP(S)_PROXY
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     tc,
			TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     time.Minute,
			ForceAttemptHTTP2:   false,
		},
	}, nil
}

// WithAuth returns c with every request carrying a's Basic credentials unless it sets its own
// Authorization header: members with restapi.protect_reads check reads too, the probes of a
// leader race included.
func WithAuth(c *http.Client, a *config.Auth) *http.Client {
	if a == nil || a.Username == "" {
		return c
	}
	cc := *c
	base := cc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	cc.Transport = authTransport{base: base, user: a.Username, pass: a.Password}
	return &cc
}

type authTransport struct {
	base       http.RoundTripper
	user, pass string
}

func (t authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Authorization") != "" {
		return t.base.RoundTrip(r)
	}
	r = r.Clone(r.Context()) // a RoundTripper must not modify the caller's request
	r.SetBasicAuth(t.user, t.pass)
	return t.base.RoundTrip(r)
}
