package zookeeper

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/test/harness"
)

// keyTestdata holds one P-256 key in clear, in PKCS#8 encrypted and in the legacy encrypted
// form, all with the password "s3cret".
const keyTestdata = "../../internal/keypair/testdata/"

// pki is a test CA with the certificates the TLS test needs, written to dir.
type pki struct {
	dir    string
	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
	serial int64
}

func newPKI(t *testing.T) *pki {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tusker test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	p := &pki{dir: t.TempDir(), caKey: key, caCert: cert, serial: 1}
	p.write(t, "ca.crt", "CERTIFICATE", der)
	return p
}

func (p *pki) write(t *testing.T, name, typ string, der []byte) string {
	f := filepath.Join(p.dir, name)
	require.NoError(t, os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
	return f
}

// issue signs a certificate for pub (a new key when nil) and returns the cert and key files.
func (p *pki) issue(t *testing.T, name, cn string, server bool, pub *ecdsa.PublicKey) (string, string) {
	var keyFile string
	if pub == nil {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		der, err := x509.MarshalPKCS8PrivateKey(key)
		require.NoError(t, err)
		keyFile, pub = p.write(t, name+".key", "PRIVATE KEY", der), &key.PublicKey
	}
	p.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, pub, p.caKey)
	require.NoError(t, err)
	return p.write(t, name+".crt", "CERTIFICATE", der), keyFile
}

// TestZooKeeperTLS runs against ZooKeeper's TLS port (Netty, PEM key store, client certificates
// required), with Patroni's set_acls: x509 ACLs name the client certificate's subject.
func TestZooKeeperTLS(t *testing.T) {
	p := newPKI(t)
	srvCert, srvKey := p.issue(t, "server", "127.0.0.1", true, nil)
	z := harness.StartZooKeeperTLS(t, harness.ZooKeeperTLS{CertFile: srvCert, KeyFile: srvKey,
		CAFile: filepath.Join(p.dir, "ca.crt"), ClientAuth: true})

	// Our client certificate goes with the encrypted PKCS#8 key of internal/keypair's testdata.
	clear, err := os.ReadFile(keyTestdata + "client-clear.key")
	require.NoError(t, err)
	blk, _ := pem.Decode(clear)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	require.NoError(t, err)
	cliCert, _ := p.issue(t, "client", "tusker", false, &k.(*ecdsa.PrivateKey).PublicKey)
	otherCert, otherKey := p.issue(t, "other", "intruder", false, nil)
	ca := filepath.Join(p.dir, "ca.crt")
	acls := map[string][]string{"CN=tusker": {"ALL"}}

	open := func(mod func(*Options)) *Backend {
		o := Options{Hosts: []string{z.Addr}, UseSSL: true, CACert: ca, Cert: cliCert,
			Key: keyTestdata + "client-pkcs8.key", KeyPassword: "s3cret", SetACLs: acls,
			Scope: "tls", Name: "a", TTL: 10 * time.Second, RetryTimeout: 3 * time.Second}
		if mod != nil {
			mod(&o)
		}
		b, err := New(o)
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	ctx := ctxT(t)
	a := open(nil)
	require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
	ok, err := a.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, a.RenewLeader(ctx))
	require.NoError(t, a.SetConfig(ctx, []byte(`{"ttl":10}`), 0))
	c, err := a.Cluster(ctx)
	require.NoError(t, err)
	require.Equal(t, "a", c.LeaderName())
	require.NotNil(t, c.Member("a"))

	// The znodes carry the x509 ACL, as Patroni's set_acls makes them.
	require.NoError(t, a.run(ctx, "checking ACLs", func() error {
		s, err := a.current()
		if err != nil {
			return err
		}
		acl, _, err := s.conn.GetACL("/service/tls/leader")
		if err != nil {
			return err
		}
		require.Equal(t, []zk.ACL{{Perms: zk.PermAll, Scheme: "x509", ID: "CN=tusker"}}, acl)
		return nil
	}))

	// Another certificate from the same CA connects, but the ACL keeps it out.
	intruder := open(func(o *Options) { o.Name, o.Cert, o.Key, o.KeyPassword = "b", otherCert, otherKey, "" })
	_, err = intruder.Cluster(ctx)
	require.ErrorIs(t, err, zk.ErrNoAuth)
	require.ErrorIs(t, intruder.SetConfig(ctx, []byte(`{}`), -1), zk.ErrNoAuth)

	// verify: false talks to a server no configured CA vouches for; verify on refuses it.
	no := false
	lax := open(func(o *Options) { o.CACert, o.Verify = "", &no })
	_, err = lax.Cluster(ctx)
	require.NoError(t, err)
	wrongCA := newPKI(t)
	strict := open(func(o *Options) {
		o.CACert, o.RetryTimeout = filepath.Join(wrongCA.dir, "ca.crt"), time.Second
	})
	_, err = strict.Cluster(ctx)
	require.ErrorIs(t, err, dcs.ErrUnreachable, "an unverified server is unreachable")

	// Without a client certificate the server refuses the handshake.
	anon := open(func(o *Options) { o.Cert, o.Key, o.KeyPassword, o.RetryTimeout = "", "", "", time.Second })
	_, err = anon.Cluster(ctx)
	require.ErrorIs(t, err, dcs.ErrUnreachable)

	// A wrong key password fails New, naming the files.
	_, err = New(Options{Hosts: []string{z.Addr}, UseSSL: true, CACert: ca, Cert: cliCert,
		Key: keyTestdata + "client-pkcs8.key", KeyPassword: "nope", Scope: "tls", Name: "x"})
	require.ErrorContains(t, err, "client-pkcs8.key")
}
