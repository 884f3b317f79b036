package zookeeper

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tusker-ha/tusker/internal/keypair"
)

// tlsConfig builds the client TLS configuration from use_ssl's companions: cacert (system roots
// when empty), cert and key (the key may be in cert's file, and encrypted with key_password), and
// verify (default true: the server's chain and name are checked).
func tlsConfig(o Options) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CACert != "" {
		pem, err := os.ReadFile(o.CACert)
		if err != nil {
			return nil, fmt.Errorf("zookeeper cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("zookeeper cacert %s: no PEM certificate in it", o.CACert)
		}
		cfg.RootCAs = pool
	}
	if o.Cert != "" {
		keyFile := o.Key
		if keyFile == "" {
			keyFile = o.Cert
		}
		pair, err := keypair.Load(o.Cert, keyFile, o.KeyPassword, "key_password")
		if err != nil {
			return nil, fmt.Errorf("zookeeper client certificate %s (key %s): %w", o.Cert, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	} else if o.Key != "" {
		return nil, fmt.Errorf("zookeeper key %s given without cert", o.Key)
	}
	if o.Verify != nil && !*o.Verify {
		cfg.InsecureSkipVerify = true
	}
	return cfg, nil
}

// tlsDialer dials and completes the TLS handshake within the client's connect timeout (the
// handshake too, so that a server that accepts but never answers cannot hold a reconnect).
func tlsDialer(cfg *tls.Config) zk.Dialer {
	return func(network, addr string, timeout time.Duration) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		d := &tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, fmt.Errorf("TLS connection to %s: %w", addr, err)
		}
		return c, nil
	}
}
