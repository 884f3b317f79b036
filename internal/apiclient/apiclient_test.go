package apiclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/config"
)

type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T) *ca {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	c, _ := x509.ParseCertificate(der)
	return &ca{c, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (c *ca) issue(t *testing.T, serial int64) (certPEM, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "n"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func write(t *testing.T, path string, b []byte) {
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

// TestClientCertificateFollowsItsFiles: a member's requests to a peer that requires client
// certificates keep working across a rotation of the member's certificate, without a restart.
func TestClientCertificateFollowsItsFiles(t *testing.T) {
	authority := newCA(t)
	dir := t.TempDir()
	caFile, certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	write(t, caFile, authority.pem)
	c, k := authority.issue(t, 10)
	write(t, certFile, c)
	write(t, keyFile, k)

	pool := x509.NewCertPool()
	pool.AddCert(authority.cert)
	seen := make(chan int64, 10)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.TLS.PeerCertificates[0].SerialNumber.Int64()
	}))
	sc, sk := authority.issue(t, 2)
	pair, err := tls.X509KeyPair(sc, sk)
	require.NoError(t, err)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()

	client, err := New(Settings{CAFile: caFile, CertFile: certFile, KeyFile: keyFile})
	require.NoError(t, err)
	get := func() int64 {
		resp, err := client.Get(srv.URL)
		require.NoError(t, err)
		resp.Body.Close()
		client.CloseIdleConnections() // the next request makes a new handshake
		return <-seen
	}
	assert.Equal(t, int64(10), get())

	c, k = authority.issue(t, 11)
	write(t, keyFile, k)
	write(t, certFile, c)
	// The loader looks at the files at most once a second.
	require.Eventually(t, func() bool { return get() == 11 }, 5*time.Second, 100*time.Millisecond,
		"the rotated certificate is presented")

	write(t, certFile, []byte("garbage"))
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); {
		require.Equal(t, int64(11), get(), "a broken file keeps the previous certificate")
	}

	// Without a client certificate the peer refuses the handshake.
	bare, err := New(Settings{CAFile: caFile})
	require.NoError(t, err)
	_, err = bare.Get(srv.URL)
	require.Error(t, err)
}

func TestSettingsAndErrors(t *testing.T) {
	c := &config.Config{}
	c.RestAPI.CAFile, c.RestAPI.CertFile, c.RestAPI.KeyFile = "/r/ca", "/r/c", "/r/k"
	c.RestAPI.Authentication = &config.Auth{Username: "api", Password: "p"}
	assert.Equal(t, Settings{CAFile: "/r/ca", CertFile: "/r/c", KeyFile: "/r/k"}, FromConfig(c))
	assert.Equal(t, "api", Auth(c).Username)

	c.Ctl = config.Ctl{CACert: "/c/ca", CertFile: "/c/c", Insecure: true, Authentication: &config.Auth{Username: "ctl"}}
	assert.Equal(t, Settings{CAFile: "/c/ca", CertFile: "/c/c", Insecure: true}, FromConfig(c), "ctl wins, as in patronictl")
	assert.Equal(t, "ctl", Auth(c).Username)
	assert.Nil(t, Auth(&config.Config{}))

	_, err := New(Settings{CAFile: "/nonexistent/ca.pem"})
	require.ErrorContains(t, err, "reading the CA file")
	dir := t.TempDir()
	write(t, filepath.Join(dir, "empty.pem"), []byte("not a certificate"))
	_, err = New(Settings{CAFile: filepath.Join(dir, "empty.pem")})
	require.ErrorContains(t, err, "holds no PEM certificate")
	_, err = New(Settings{CertFile: filepath.Join(dir, "empty.pem")})
	require.Error(t, err, "a broken client certificate fails at once")
}

// TestWithAuth: every request carries the credentials, one with its own keeps them.
func TestWithAuth(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		got = append(got, u+":"+p)
	}))
	defer srv.Close()
	c, err := New(Settings{})
	require.NoError(t, err)
	require.Same(t, c, WithAuth(c, nil))
	ac := WithAuth(c, &config.Auth{Username: "admin", Password: "s3cret"})
	resp, err := ac.Get(srv.URL + "/patroni")
	require.NoError(t, err)
	resp.Body.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/failsafe", nil)
	req.SetBasicAuth("other", "pw")
	resp, err = ac.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, []string{"admin:s3cret", "other:pw"}, got)
}
