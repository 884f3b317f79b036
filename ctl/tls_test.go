package ctl

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// selfSigned writes a self-signed client certificate and its key as PEM files.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, cert *x509.Certificate) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tuskerctl"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err = x509.ParseCertificate(der)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certFile, keyFile, cert
}

// TestCmdHTTPSMembers: a member serving HTTPS and requiring a client certificate is reached with
// ctl.cacert and ctl.certfile/keyfile, or with -k instead of the CA.
func TestCmdHTTPSMembers(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, clientCert := selfSigned(t, dir)
	reloads := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/reload" {
			reloads++
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	pool := x509.NewCertPool()
	pool.AddCert(clientCert)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))

	h := newHarness(t, testCluster(srv.URL+"/patroni"))
	h.extra = nil
	cfg := filepath.Join(dir, "ctl.yml")
	write := func(ctl string) {
		require.NoError(t, os.WriteFile(cfg, []byte("scope: demo\netcd3:\n  hosts: 127.0.0.1:2379\nctl:\n"+ctl), 0o600))
	}

	write("  cacert: " + caFile + "\n  certfile: " + certFile + "\n  keyfile: " + keyFile + "\n")
	out, _ := h.mustRun(0, "", "-c", cfg, "reload", "demo", "n1", "--force")
	assert.Contains(t, out, "Reload request received for member n1")

	write("  cacert: " + caFile + "\n") // no client certificate: the member refuses the handshake
	out, errOut := h.mustRun(1, "", "-c", cfg, "reload", "demo", "n1", "--force")
	assert.Contains(t, out, "Failed: reload for member n1: POST "+srv.URL+"/reload on member n1: ")
	assert.Equal(t, "tuskerctl: reload failed on 1 of 1 members (n1)\n", errOut)

	write("  certfile: " + certFile + "\n  keyfile: " + keyFile + "\n") // unknown CA...
	out, _ = h.mustRun(1, "", "-c", cfg, "reload", "demo", "n1", "--force")
	assert.Contains(t, out, "certificate signed by unknown authority")
	h.mustRun(0, "", "-c", cfg, "-k", "reload", "demo", "n1", "--force") // ...unless -k
	assert.Equal(t, 2, reloads)
}
