package restapi

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tusker-ha/tusker/internal/keypair"
)

// TLSConfig is restapi's TLS settings (Patroni's certfile, keyfile, keyfile_password, cafile,
// ciphers and verify_client).
type TLSConfig struct {
	// CertFile is the server certificate (PEM), followed by any intermediates. Required.
	CertFile string
	// KeyFile is its private key (PEM); empty when CertFile holds the key too.
	KeyFile string
	// KeyFilePassword decrypts a key in the legacy encrypted PEM format ("Proc-Type:
	// 4,ENCRYPTED"). Encrypted PKCS#8 ("ENCRYPTED PRIVATE KEY") is not supported.
	KeyFilePassword string
	// CAFile holds the CAs (PEM) that client certificates are verified against; empty: the
	// system's roots.
	CAFile string
	// Ciphers restricts the TLS 1.2 suites (see parseCiphers); empty: Go's defaults.
	Ciphers string
	// VerifyClient is "" or "none" (no client certificates), "optional" (a client certificate,
	// when sent, must verify, and the management requests that change something need one) or
	// "required" (every connection needs a verified client certificate). Case-insensitive.
	VerifyClient string
}

// certCheckInterval is how often a TLS handshake may stat the certificate files to notice that
// they were replaced: cert-manager and similar tools rotate them in place or by swapping a
// symlink, and expect the server to pick the new ones up without a restart.
const certCheckInterval = time.Second

// tlsState serves the TLS configuration of a Server and reloads it when the files change.
type tlsState struct {
	cfg        TLSConfig
	keyFile    string // cfg.KeyFile, or cfg.CertFile when that holds the key
	clientAuth tls.ClientAuthType
	suites     []uint16
	log        *slog.Logger

	checkInterval time.Duration
	lastCheck     atomic.Int64 // unix nanoseconds of the last stat of the files

	mu      sync.Mutex                  // serializes loads and guards failed and lastErr
	failed  []fileStamp                 // the files as they were when an automatic reload last failed
	lastErr string                      // the last automatic reload error logged
	cur     atomic.Pointer[tlsMaterial] // nil until the first successful load
}

// tlsMaterial is one loaded generation of the certificate, key and CA pool.
type tlsMaterial struct {
	conf   *tls.Config // what a handshake uses
	leaf   *x509.Certificate
	stamps []fileStamp // the files it was loaded from
}

// fileStamp identifies the content of a file cheaply: a rewrite changes its modification time or
// size. os.Stat follows symlinks, so a swapped symlink shows the stamp of its new target.
type fileStamp struct {
	path  string
	mtime time.Time
	size  int64
}

// newTLSState checks the settings that do not depend on the files (verify_client, ciphers). It
// loads nothing yet.
func newTLSState(cfg TLSConfig, log *slog.Logger) (*tlsState, error) {
	t := &tlsState{cfg: cfg, keyFile: cfg.KeyFile, log: log, checkInterval: certCheckInterval}
	if cfg.CertFile == "" {
		return nil, errors.New("TLS needs a certfile")
	}
	if t.keyFile == "" {
		t.keyFile = cfg.CertFile
	}
	switch strings.ToLower(cfg.VerifyClient) {
	case "", "none":
		t.clientAuth = tls.NoClientCert
	case "optional":
		// A certificate that is sent must verify; requests that change something check that one
		// was (see Server.checkAccess), as Patroni does with ssl.CERT_OPTIONAL.
		t.clientAuth = tls.VerifyClientCertIfGiven
	case "required":
		t.clientAuth = tls.RequireAndVerifyClientCert
	default:
		return nil, fmt.Errorf("verify_client %q: want none, optional or required", cfg.VerifyClient)
	}
	suites, skipped, err := parseCiphers(cfg.Ciphers)
	if err != nil {
		return nil, fmt.Errorf("ciphers: %w", err)
	}
	if len(skipped) > 0 {
		log.Warn("restapi.ciphers: ignoring entries that cannot be enabled (TLS 1.3 suites are "+
			"always on; OpenSSL exclusions, DHE and insecure suites do not apply)", "ignored", skipped)
	}
	t.suites = suites
	if t.clientAuth != tls.NoClientCert && cfg.CAFile == "" {
		log.Warn("restapi.verify_client without cafile: client certificates are verified against the system's roots")
	}
	return t, nil
}

// verifiesClients reports whether verify_client asks for client certificates.
func (t *tlsState) verifiesClients() bool { return t.clientAuth != tls.NoClientCert }

// listenerConfig is the configuration of the TLS listener: each handshake gets the current
// generation from configForClient.
func (t *tlsState) listenerConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: t.configForClient}
}

// configForClient returns the configuration for a new connection, first reloading the files if
// they changed (checked at most once per checkInterval, by the first handshake after it).
func (t *tlsState) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	now := time.Now().UnixNano()
	last := t.lastCheck.Load()
	if now-last >= int64(t.checkInterval) && t.lastCheck.CompareAndSwap(last, now) {
		t.reloadIfChanged()
	}
	m := t.cur.Load()
	if m == nil {
		return nil, errors.New("restapi: no TLS certificate loaded")
	}
	return m.conf, nil
}

// reloadIfChanged reloads the files when their stamps differ from the loaded ones. On failure the
// current generation stays in use and the error is logged once per version of the files: a
// certificate written before its key is not an outage, the check after the key is written succeeds.
func (t *tlsState) reloadIfChanged() {
	stamps, err := t.stampFiles()
	t.mu.Lock()
	defer t.mu.Unlock()
	switch cur := t.cur.Load(); {
	case err != nil:
		t.logFailure(err)
	case cur != nil && sameStamps(stamps, cur.stamps):
	case t.failed != nil && sameStamps(stamps, t.failed): // this version already failed
	default:
		if err := t.loadLocked(); err != nil {
			t.failed = stamps
			t.logFailure(err)
		}
	}
}

// logFailure logs an automatic reload's error unless it repeats the last one. t.mu is held.
func (t *tlsState) logFailure(err error) {
	if msg := err.Error(); msg != t.lastErr {
		t.lastErr = msg
		t.log.Warn("REST API TLS files changed but cannot be loaded, keeping the loaded certificate", "err", err)
	}
}

// reload re-reads the files unconditionally; on error the current generation stays in use.
func (t *tlsState) reload() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.loadLocked()
}

// loadLocked reads the certificate, key and CA and makes them the current generation. t.mu is held.
func (t *tlsState) loadLocked() error {
	// Stamp before reading: a write between the stat and the read makes the next check reload again
	// rather than miss the change.
	stamps, err := t.stampFiles()
	if err != nil {
		return err
	}
	cert, err := keypair.Load(t.cfg.CertFile, t.keyFile, t.cfg.KeyFilePassword, "keyfile_password")
	if err != nil {
		return err
	}
	var pool *x509.CertPool
	if t.cfg.CAFile != "" {
		pem, err := os.ReadFile(t.cfg.CAFile)
		if err != nil {
			return fmt.Errorf("read cafile: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("cafile %s: no PEM certificate found", t.cfg.CAFile)
		}
	}
	m := &tlsMaterial{
		conf: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   t.clientAuth,
			ClientCAs:    pool,
			MinVersion:   tls.VersionTLS12,
			CipherSuites: t.suites,
			// HTTP/1.1 only, as Patroni: health checkers and patronictl speak it, and the
			// management handlers rely on per-connection deadlines.
			NextProtos: []string{"http/1.1"},
		},
		leaf:   cert.Leaf,
		stamps: stamps,
	}
	prev := t.cur.Swap(m)
	t.failed, t.lastErr = nil, ""
	t.lastCheck.Store(time.Now().UnixNano())
	msg := "REST API TLS certificate loaded"
	if prev != nil {
		msg = "REST API TLS certificate reloaded"
	}
	t.log.Info(msg, "certfile", t.cfg.CertFile, "serial", fmt.Sprintf("%X", m.leaf.SerialNumber),
		"subject", m.leaf.Subject.String(), "not_after", m.leaf.NotAfter)
	if time.Now().After(m.leaf.NotAfter) {
		t.log.Warn("REST API TLS certificate has expired", "certfile", t.cfg.CertFile, "not_after", m.leaf.NotAfter)
	}
	return nil
}

// stampFiles stats the certificate, key and CA files.
func (t *tlsState) stampFiles() ([]fileStamp, error) {
	paths := []string{t.cfg.CertFile}
	if t.keyFile != t.cfg.CertFile {
		paths = append(paths, t.keyFile)
	}
	if t.cfg.CAFile != "" {
		paths = append(paths, t.cfg.CAFile)
	}
	stamps := make([]fileStamp, 0, len(paths))
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("stat TLS file: %w", err)
		}
		stamps = append(stamps, fileStamp{path: p, mtime: fi.ModTime(), size: fi.Size()})
	}
	return stamps, nil
}

func sameStamps(a, b []fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].path != b[i].path || !a[i].mtime.Equal(b[i].mtime) || a[i].size != b[i].size {
			return false
		}
	}
	return true
}
