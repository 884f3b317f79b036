package keypair

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The keys in testdata are one P-256 key, written by OpenSSL 3 in clear, as PKCS#8 encrypted
// with PBES2 (AES-256-CBC, HMAC-SHA256 and AES-128-CBC, HMAC-SHA1) and in the legacy encrypted
// form, all with the password "s3cret".
var keyFiles = []string{"client-pkcs8.key", "client-pkcs8-sha1.key", "client-legacy.key", "client-clear.key"}

func clearKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	data, err := os.ReadFile("testdata/client-clear.key")
	require.NoError(t, err)
	blk, _ := pem.Decode(data)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	require.NoError(t, err)
	return k.(*ecdsa.PrivateKey)
}

func TestDecryptPEM(t *testing.T) {
	want := clearKey(t)
	for _, f := range keyFiles {
		data, err := os.ReadFile(filepath.Join("testdata", f))
		require.NoError(t, err)
		out, err := DecryptPEM(data, "s3cret")
		require.NoError(t, err, f)
		blk, _ := pem.Decode(out)
		require.NotNil(t, blk, f)
		var got any
		if blk.Type == "EC PRIVATE KEY" {
			got, err = x509.ParseECPrivateKey(blk.Bytes)
		} else {
			got, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		}
		require.NoError(t, err, f)
		require.True(t, want.Equal(got), f)
		if f != "client-clear.key" {
			_, err = DecryptPEM(data, "wrong")
			require.ErrorIs(t, err, ErrWrongPassword, "%s with a wrong password", f)
			_, err = DecryptPEM(data, "")
			require.ErrorIs(t, err, errNeedPassword, f)
		}
	}
	out, err := DecryptPEM([]byte("no pem here"), "")
	require.NoError(t, err, "nothing to decrypt: tls.X509KeyPair reports a missing key")
	require.Equal(t, "no pem here", string(out))
}

// TestLoad loads a certificate for the testdata key with each form of the key, and with the key in
// the certificate's file, as every section that takes a key does.
func TestLoad(t *testing.T) {
	key := clearKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tusker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	dir := t.TempDir()
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certFile := filepath.Join(dir, "client.crt")
	require.NoError(t, os.WriteFile(certFile, certPEM, 0o600))

	for _, f := range keyFiles {
		keyFile := filepath.Join("testdata", f)
		c, err := Load(certFile, keyFile, "s3cret", "keyfile_password")
		require.NoError(t, err, f)
		require.True(t, key.Equal(c.PrivateKey), f)

		// One file with the certificate and the key, keyFile empty.
		keyPEM, err := os.ReadFile(keyFile)
		require.NoError(t, err)
		both := filepath.Join(dir, "both-"+f)
		require.NoError(t, os.WriteFile(both, append(append([]byte{}, certPEM...), keyPEM...), 0o600))
		_, err = Load(both, "", "s3cret", "keyfile_password")
		require.NoError(t, err, "%s in the certificate's file", f)

		if f == "client-clear.key" {
			_, err = Load(certFile, keyFile, "ignored", "keyfile_password")
			require.NoError(t, err, "a password with a clear key is ignored")
			continue
		}
		_, err = Load(certFile, keyFile, "wrong", "key_password")
		require.ErrorContains(t, err, "wrong key_password?", f)
		require.ErrorContains(t, err, f, "the message names the file")
		_, err = Load(certFile, keyFile, "", "keyfile_password")
		require.ErrorContains(t, err, "is encrypted: set keyfile_password", f)
	}

	_, err = Load(filepath.Join(dir, "missing.crt"), "", "", "keyfile_password")
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = Load(certFile, filepath.Join(dir, "missing.key"), "", "keyfile_password")
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = Load(certFile, certFile, "", "keyfile_password")
	require.ErrorContains(t, err, "loading certificate", "a certificate without its key")
}

func FuzzDecryptPEM(f *testing.F) {
	for _, name := range keyFiles {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "s3cret")
	}
	f.Fuzz(func(t *testing.T, data []byte, password string) {
		_, _ = DecryptPEM(data, password) // must not panic
	})
}
