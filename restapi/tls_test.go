package restapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/ha"
)

// pki is a test CA with the certificates the TLS tests need, written under dir.
type pki struct {
	t        *testing.T
	dir      string
	caCert   *x509.Certificate
	caKey    *ecdsa.PrivateKey
	caFile   string
	pool     *x509.CertPool
	client   tls.Certificate // signed by the CA
	stranger tls.Certificate // self-signed: not trusted by the server
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{t: t, dir: t.TempDir()}
	p.caKey = newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tusker test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.caKey.PublicKey, p.caKey)
	require.NoError(t, err)
	p.caCert, err = x509.ParseCertificate(der)
	require.NoError(t, err)
	p.caFile = p.write("ca.pem", pemBlock("CERTIFICATE", der))
	p.pool = x509.NewCertPool()
	p.pool.AddCert(p.caCert)

	p.client = p.keyPair(p.issue(2, "client", x509.ExtKeyUsageClientAuth, newKey(t)))
	strangerKey := newKey(t)
	stmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "stranger"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	sder, err := x509.CreateCertificate(rand.Reader, stmpl, stmpl, &strangerKey.PublicKey, strangerKey)
	require.NoError(t, err)
	p.stranger = p.keyPair(pemBlock("CERTIFICATE", sder), keyPEM(t, strangerKey))
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func keyPEM(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	require.NoError(t, err)
	return pemBlock("EC PRIVATE KEY", der)
}

// issue signs a certificate for 127.0.0.1 with the CA; it returns the certificate and key PEM.
func (p *pki) issue(serial int64, cn string, usage x509.ExtKeyUsage, key *ecdsa.PrivateKey) ([]byte, []byte) {
	p.t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	require.NoError(p.t, err)
	return pemBlock("CERTIFICATE", der), keyPEM(p.t, key)
}

func (p *pki) keyPair(certPEM, keyPEM []byte) tls.Certificate {
	p.t.Helper()
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(p.t, err)
	return c
}

func (p *pki) write(name string, data []byte) string {
	p.t.Helper()
	path := filepath.Join(p.dir, name)
	require.NoError(p.t, os.WriteFile(path, data, 0o600))
	return path
}

// serverFiles writes a server certificate with serial and its key; it returns their paths.
func (p *pki) serverFiles(serial int64) (certFile, keyFile string) {
	certPEM, kPEM := p.issue(serial, "server", x509.ExtKeyUsageServerAuth, newKey(p.t))
	return p.write("server.pem", certPEM), p.write("server.key", kPEM)
}

// clientConfig trusts the test CA and presents cert when it is not nil. The certificate is sent
// whatever CAs the server names as acceptable: left to itself, Go's client would not send the
// stranger's, and the server's refusal of an untrusted certificate would go untested.
func (p *pki) clientConfig(cert *tls.Certificate) *tls.Config {
	c := &tls.Config{RootCAs: p.pool, ServerName: "127.0.0.1"}
	if cert != nil {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return c
}

// serveTLS serves s on a loopback port until the test ends; it returns the address.
func serveTLS(t *testing.T, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
	})
	return l.Addr().String()
}

func httpsClient(c *tls.Config) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: c, DisableKeepAlives: true}}
}

// call sends a request and returns the status code and body; err is set when no response came.
func call(c *http.Client, method, url string, auth bool) (int, string, http.Header, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, "", nil, err
	}
	if auth {
		req.SetBasicAuth("admin", "s3cret")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header, nil
}

func TestHTTPSHealthChecks(t *testing.T) {
	p := newPKI(t)
	certFile, keyFile := p.serverFiles(100)
	box := &statusBox{}
	box.p.Store(primary())
	s := New(Config{TLS: &TLSConfig{CertFile: certFile, KeyFile: keyFile}}, box.get)
	addr := serveTLS(t, s)

	c := httpsClient(p.clientConfig(nil))
	code, body, _, err := call(c, "GET", "https://"+addr+"/primary", false)
	require.NoError(t, err)
	assert.Equal(t, 200, code)
	assert.True(t, strings.HasPrefix(body, `{"state":"running"`), body)
	code, _, _, err = call(c, "HEAD", "https://"+addr+"/replica", false)
	require.NoError(t, err)
	assert.Equal(t, 503, code)

	// Plain HTTP to the TLS port gets no answer from the API.
	code, _, _, err = call(&http.Client{Timeout: 5 * time.Second}, "GET", "http://"+addr+"/primary", false)
	assert.True(t, err != nil || code == http.StatusBadRequest, "plain HTTP answered %d", code)

	// TLS 1.1 is refused.
	old := p.clientConfig(nil)
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	_, err = tls.Dial("tcp", addr, old)
	assert.Error(t, err, "a TLS 1.1 handshake succeeded")
}

// TestVerifyClient covers verify_client none, optional and required with no client certificate,
// one the CA signed and one it did not.
func TestVerifyClient(t *testing.T) {
	p := newPKI(t)
	certFile, keyFile := p.serverFiles(100)
	type want struct{ get, post string } // "200", "403 client certificate required", "handshake"...
	cases := []struct {
		mode                     string
		none, trusted, untrusted want
	}{
		{"none", want{"200", "202"}, want{"200", "202"}, want{"200", "202"}},
		{"optional", want{"200", "403 client certificate required"}, want{"200", "202"}, want{"handshake", "handshake"}},
		{"required", want{"handshake", "handshake"}, want{"200", "202"}, want{"handshake", "handshake"}},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			m := &fakeManager{res: ha.Result{Code: 202, Message: "reload scheduled"}}
			s := New(Config{
				Manager: m, Auth: &BasicAuth{Username: "admin", Password: "s3cret"},
				TLS: &TLSConfig{CertFile: certFile, KeyFile: keyFile, CAFile: p.caFile, VerifyClient: tc.mode},
			}, func() *ha.Status { return primary() })
			addr := serveTLS(t, s)
			result := func(cert *tls.Certificate, method, path string, auth bool) string {
				code, body, _, err := call(httpsClient(p.clientConfig(cert)), method, "https://"+addr+path, auth)
				switch {
				case err != nil:
					return "handshake"
				case code == 403:
					return "403 " + body
				}
				return strconv.Itoa(code)
			}
			for _, c := range []struct {
				name string
				cert *tls.Certificate
				want want
			}{{"no certificate", nil, tc.none}, {"trusted", &p.client, tc.trusted}, {"untrusted", &p.stranger, tc.untrusted}} {
				assert.Equal(t, c.want.get, result(c.cert, "GET", "/patroni", false), "%s: GET /patroni", c.name)
				assert.Equal(t, c.want.post, result(c.cert, "POST", "/reload", true), "%s: POST /reload", c.name)
			}
			if tc.mode == "optional" {
				// A verified certificate passes on to the next check: Basic authentication.
				got := result(&p.client, "POST", "/reload", false)
				assert.Equal(t, "401", got, "trusted certificate without credentials")
			}
		})
	}
}

// dialSerial returns the serial number of the certificate addr presents on a new connection.
func dialSerial(t *testing.T, addr string, c *tls.Config) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, c)
	require.NoError(t, err)
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestCertificateReload(t *testing.T) {
	p := newPKI(t)
	certFile, keyFile := p.serverFiles(100)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s := New(Config{Logger: log, TLS: &TLSConfig{CertFile: certFile, KeyFile: keyFile}}, nil)
	addr := serveTLS(t, s)
	c := p.clientConfig(nil)
	assert.EqualValues(t, 100, dialSerial(t, addr, c))
	assert.Contains(t, logs.String(), "serial=64") // 100 in hex

	// Rotate the files in place, as cert-manager does; a new connection sees the new certificate
	// once the check interval has passed, without ReloadTLS. The modification time is set
	// explicitly: two writes within the file system's timestamp granularity would look the same.
	p.serverFiles(200)
	future := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(certFile, future, future))
	require.NoError(t, os.Chtimes(keyFile, future, future))
	assert.Eventually(t, func() bool { return dialSerial(t, addr, c) == 200 }, 5*time.Second, 50*time.Millisecond,
		"the rotated certificate was not picked up")
	assert.Contains(t, logs.String(), "REST API TLS certificate reloaded")
	assert.Contains(t, logs.String(), "serial=C8")

	// A broken certificate: ReloadTLS fails, and neither it nor the automatic check replaces the
	// certificate in use.
	require.NoError(t, os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n"), 0o600))
	err := s.ReloadTLS()
	require.Error(t, err)
	assert.Contains(t, err.Error(), certFile)
	// New connections trigger the automatic check (at most once a second); until it has logged
	// that the files do not load, and after, every handshake still gets the loaded certificate.
	const kept = "cannot be loaded, keeping the loaded certificate"
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), kept); time.Sleep(50 * time.Millisecond) {
		require.EqualValues(t, 200, dialSerial(t, addr, c))
		require.True(t, time.Now().Before(deadline), "the automatic check never looked at the broken files")
	}
	assert.EqualValues(t, 200, dialSerial(t, addr, c))

	// Repaired: ReloadTLS takes it at once.
	p.serverFiles(300)
	require.NoError(t, s.ReloadTLS())
	assert.EqualValues(t, 300, dialSerial(t, addr, c))

	assert.ErrorContains(t, New(Config{}, nil).ReloadTLS(), "not configured")
}

// TestCertificateSymlinkSwap: Kubernetes secret volumes replace a symlinked directory; the stat
// follows the symlink and sees the new files.
func TestCertificateSymlinkSwap(t *testing.T) {
	p := newPKI(t)
	writeGen := func(dir string, serial int64) {
		require.NoError(t, os.MkdirAll(filepath.Join(p.dir, dir), 0o700))
		certPEM, kPEM := p.issue(serial, "server", x509.ExtKeyUsageServerAuth, newKey(t))
		require.NoError(t, os.WriteFile(filepath.Join(p.dir, dir, "tls.crt"), append(certPEM, kPEM...), 0o600))
	}
	writeGen("gen1", 1001)
	link := filepath.Join(p.dir, "current")
	require.NoError(t, os.Symlink("gen1", link))
	certFile := filepath.Join(link, "tls.crt") // cert and key in one file
	s := New(Config{TLS: &TLSConfig{CertFile: certFile}}, nil)
	addr := serveTLS(t, s)
	c := p.clientConfig(nil)
	assert.EqualValues(t, 1001, dialSerial(t, addr, c))

	writeGen("gen2", 1002)
	future := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(filepath.Join(p.dir, "gen2", "tls.crt"), future, future))
	tmp := filepath.Join(p.dir, "current.tmp")
	require.NoError(t, os.Symlink("gen2", tmp))
	require.NoError(t, os.Rename(tmp, link))
	assert.Eventually(t, func() bool { return dialSerial(t, addr, c) == 1002 }, 5*time.Second, 50*time.Millisecond)
}

func TestEncryptedKey(t *testing.T) {
	p := newPKI(t)
	certPEM, kPEM := p.issue(100, "server", x509.ExtKeyUsageServerAuth, newKey(t))
	block, _ := pem.Decode(kPEM)
	// EncryptPEMBlock is deprecated, but it writes the legacy format keyfile_password decrypts.
	enc, err := x509.EncryptPEMBlock(rand.Reader, block.Type, block.Bytes, []byte("pw"), x509.PEMCipherAES256)
	require.NoError(t, err)
	certFile := p.write("server.pem", certPEM)
	keyFile := p.write("server.key", pem.EncodeToMemory(enc))

	s := New(Config{TLS: &TLSConfig{CertFile: certFile, KeyFile: keyFile, KeyFilePassword: "pw"}}, nil)
	addr := serveTLS(t, s)
	assert.EqualValues(t, 100, dialSerial(t, addr, p.clientConfig(nil)))

	err = New(Config{TLS: &TLSConfig{CertFile: certFile, KeyFile: keyFile, KeyFilePassword: "wrong"}}, nil).Check()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "wrong keyfile_password")
	assert.ErrorIs(t, err, x509.IncorrectPasswordError)

	err = New(Config{TLS: &TLSConfig{CertFile: certFile, KeyFile: keyFile}}, nil).Check()
	assert.ErrorContains(t, err, "is encrypted: set keyfile_password")

	// Encrypted PKCS#8 is read too (internal/keypair has the formats); a malformed one is an error.
	pkcs8 := p.write("pkcs8.key", pemBlock("ENCRYPTED PRIVATE KEY", []byte{0x30, 0x00}))
	err = New(Config{TLS: &TLSConfig{CertFile: certFile, KeyFile: pkcs8, KeyFilePassword: "pw"}}, nil).Check()
	assert.ErrorContains(t, err, "encrypted PKCS#8 key")

	// A plain key with a password set: the password is ignored.
	plain := p.write("plain.key", kPEM)
	assert.NoError(t, New(Config{TLS: &TLSConfig{CertFile: certFile, KeyFile: plain, KeyFilePassword: "pw"}}, nil).Check())

	// A key that does not match the certificate, and missing files.
	other := p.write("other.key", keyPEM(t, newKey(t)))
	assert.Error(t, New(Config{TLS: &TLSConfig{CertFile: certFile, KeyFile: other}}, nil).Check())
	err = New(Config{TLS: &TLSConfig{CertFile: filepath.Join(p.dir, "missing.pem")}}, nil).Check()
	assert.True(t, errors.Is(err, os.ErrNotExist), "%v", err)
	err = New(Config{TLS: &TLSConfig{CertFile: certFile, KeyFile: plain, CAFile: plain}}, nil).Check()
	assert.ErrorContains(t, err, "no PEM certificate")
}

func TestTLSConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  TLSConfig
		want string
	}{
		{TLSConfig{}, "certfile"},
		{TLSConfig{CertFile: "x", VerifyClient: "sometimes"}, `verify_client "sometimes"`},
		{TLSConfig{CertFile: "x", Ciphers: "HIGH:!aNULL"}, `"HIGH"`},
	} {
		s := New(Config{TLS: &tc.cfg}, nil)
		assert.ErrorContains(t, s.Check(), tc.want)
		assert.ErrorContains(t, s.Serve(context.Background(), nopListener{}), tc.want, "Serve checks too")
		assert.ErrorContains(t, s.ReloadTLS(), tc.want)
	}
	// Case-insensitive, as Patroni lowercases it.
	assert.NoError(t, New(Config{TLS: &TLSConfig{CertFile: "x", VerifyClient: "Required"}}, nil).setupErr)
}

type nopListener struct{}

func (nopListener) Accept() (net.Conn, error) { return nil, errors.New("closed") }
func (nopListener) Close() error              { return nil }
func (nopListener) Addr() net.Addr            { return &net.TCPAddr{} }

func TestParseCiphers(t *testing.T) {
	const (
		rsa256   = tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
		rsa128   = tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
		ecdsaCha = tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
	)
	for _, tc := range []struct {
		in      string
		want    []uint16
		skipped int
		err     string
	}{
		{in: ""},
		{in: "ECDHE-RSA-AES256-GCM-SHA384", want: []uint16{rsa256}},
		{in: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,ecdhe-ecdsa-chacha20-poly1305", want: []uint16{rsa256, ecdsaCha}},
		{in: " ECDHE-RSA-AES128-GCM-SHA256  ECDHE-RSA-AES128-GCM-SHA256 ", want: []uint16{rsa128}},
		{in: "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:!ECDHE-RSA-AES128-GCM-SHA256", want: []uint16{rsa256}, skipped: 1},
		// Patroni's documented example: DHE suites and protocol exclusions do not apply.
		{in: "ECDHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:" +
			"DHE-RSA-AES128-GCM-SHA256:!SSLv1:!SSLv2:!SSLv3:!TLSv1:!TLSv1.1", want: []uint16{rsa256, rsa128}, skipped: 7},
		{in: "TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES256-GCM-SHA384:AES128-SHA", want: []uint16{rsa256}, skipped: 2},
		{in: "HIGH:!aNULL", err: `"HIGH"`},
		{in: "ECDHE-RSA-AES256-GCM-SHA384:FOO-BAR", err: `"FOO-BAR"`},
		{in: "TLS_AES_128_GCM_SHA256", err: "no usable TLS 1.2 suite"},
		{in: "AES128-SHA:RC4-SHA", err: "no usable TLS 1.2 suite"},
		{in: "DHE-RSA-AES256-GCM-SHA384", err: "no usable TLS 1.2 suite"},
		{in: "!ECDHE-RSA-AES256-GCM-SHA384", err: "no usable TLS 1.2 suite"},
	} {
		got, skipped, err := parseCiphers(tc.in)
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err, "parseCiphers(%q)", tc.in)
			continue
		}
		if assert.NoError(t, err, "parseCiphers(%q)", tc.in) {
			assert.Equal(t, tc.want, got, "parseCiphers(%q)", tc.in)
			assert.Len(t, skipped, tc.skipped, "parseCiphers(%q) skipped %v", tc.in, skipped)
		}
	}
}

// TestOpenSSLNamesCoverGo fails when Go implements a TLS 1.2 suite the OpenSSL table lacks.
func TestOpenSSLNamesCoverGo(t *testing.T) {
	iana := map[string]bool{}
	for _, iname := range openSSLNames {
		iana[iname] = true
	}
	for _, cs := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if len(cs.SupportedVersions) == 1 && cs.SupportedVersions[0] == tls.VersionTLS13 {
			continue
		}
		assert.True(t, iana[cs.Name], "no OpenSSL name for %s", cs.Name)
	}
	for o, iname := range openSSLNames {
		assert.Equal(t, iname, suitesByName[o].name, "OpenSSL name %s maps to a suite Go does not have", o)
	}
}

// TestCipherRestriction: a server limited to one TLS 1.2 suite negotiates it and refuses a client
// that offers only another.
func TestCipherRestriction(t *testing.T) {
	p := newPKI(t)
	certFile, keyFile := p.serverFiles(100)
	s := New(Config{TLS: &TLSConfig{CertFile: certFile, KeyFile: keyFile, Ciphers: "ECDHE-ECDSA-AES256-GCM-SHA384"}}, nil)
	addr := serveTLS(t, s)

	c := p.clientConfig(nil)
	c.MaxVersion = tls.VersionTLS12
	conn, err := tls.Dial("tcp", addr, c)
	require.NoError(t, err)
	assert.Equal(t, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, conn.ConnectionState().CipherSuite,
		"negotiated %s", tls.CipherSuiteName(conn.ConnectionState().CipherSuite))
	conn.Close()

	c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	_, err = tls.Dial("tcp", addr, c)
	assert.Error(t, err, "a suite outside restapi.ciphers was negotiated")

	// TLS 1.3 is not restricted by the list.
	conn, err = tls.Dial("tcp", addr, p.clientConfig(nil))
	require.NoError(t, err)
	assert.EqualValues(t, tls.VersionTLS13, conn.ConnectionState().Version)
	conn.Close()
}
