// Package restapi serves tusker's REST API, compatible with Patroni's: the health checks that
// HAProxy and Kubernetes probes call (/primary, /replica, /read-only, /health, /liveness,
// /readiness...), /patroni, /cluster and /history, and the management endpoints (/switchover,
// /failover, /restart, /reload, /reinitialize, /config, /failsafe) through an ha.Manager.
//
// Every health and monitoring request answers from the latest ha.Status the HA loop published: its
// handler never runs SQL, never talks to the DCS and never waits for the loop. The JSON bodies are marshalled once per
// published Status and reused by every request until the next one.
package restapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tusker-ha/tusker/ha"
)

// Server timeouts: a slow or idle client cannot hold a connection or a goroutine for long.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second // management requests extend theirs (managementTimeout)
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 64 << 10
	shutdownTimeout   = 5 * time.Second
)

// Config configures the REST API server.
type Config struct {
	Listen string // host:port
	Logger *slog.Logger

	// Now is the clock for /liveness and for checking scheduled times; default time.Now.
	Now func() time.Time

	// Manager carries out the management endpoints (/switchover, /failover, /restart, /reload,
	// /reinitialize, /config, /failsafe). When nil they answer 501.
	Manager ha.Manager

	// Auth, when set, is required (HTTP Basic) on every management request that changes
	// something (restapi.authentication).
	Auth *BasicAuth

	// Metrics, when set, is gathered after Patroni's patroni_* metrics on /metrics (tusker's own:
	// HA loop, DCS latency, lease age, role changes, process).
	Metrics prometheus.Gatherer

	// Name, Scope and Version identify this node in the "patroni" object of /patroni while no
	// Status has been published yet (afterwards the Status' own fields are used). Optional.
	// Version also goes into the Server header with ServerTokens "Minimal".
	Name, Scope, Version string

	// TLS, when set, makes Serve and ListenAndServe serve HTTPS (restapi.certfile and the
	// related keys). nil: plain HTTP.
	TLS *TLSConfig

	// Allowlist restricts the management requests that change something to clients whose address
	// is one of these IPs, in one of these CIDRs, or an address of one of these host names
	// (resolved in the background, cached for a minute). AllowlistIncludeMembers also admits the
	// hosts of the members' api_url in the latest Status' cluster. Both unset: no restriction.
	Allowlist               []string
	AllowlistIncludeMembers bool

	// With neither Auth, an allowlist nor verify_client, unsafe requests are accepted only from
	// this host (loopback, or a source address that is the one the request arrived at) and from
	// the members' api_url and conn_url hosts: Patroni accepts them from anyone.

	// ClientNames (restapi.verify_client_names), with verify_client, narrows the client
	// certificates unsafe requests accept to those whose common name or a subject alternative
	// name is one of these.
	ClientNames []string

	// ProtectReads (restapi.protect_reads) checks GET /patroni, /cluster, /history, /metrics,
	// /config and /failsafe like the requests that change something; the health checks stay
	// open.
	ProtectReads bool

	// HTTPExtraHeaders are added to every response, HTTPSExtraHeaders too when the request came
	// over TLS (restapi.http_extra_headers and https_extra_headers).
	HTTPExtraHeaders, HTTPSExtraHeaders map[string]string

	// ServerTokens chooses the Server header: "", "Original" and "ProductOnly" send "tusker",
	// "Minimal" sends "tusker/<Version>". Case-insensitive.
	ServerTokens string
}

// BasicAuth is a username and password.
type BasicAuth struct{ Username, Password string }

// Server is the REST API server. Its handler is safe for concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	status func() *ha.Status

	handler           http.Handler
	metrics           http.Handler
	readHeaderTimeout time.Duration            // readHeaderTimeout; tests shorten it
	readTimeout       time.Duration            // readTimeout; tests shorten it
	writeTimeout      time.Duration            // writeTimeout; tests shorten it
	managementTimeout time.Duration            // managementTimeout; tests shorten it
	cache             atomic.Pointer[snapshot] // bodies for the latest Status seen by a request
	initial           *snapshot                // bodies used while status() returns nil

	setupErr      error      // what is wrong in the Config; Check, Serve and ListenAndServe return it
	tls           *tlsState  // nil without Config.TLS
	allow         *allowlist // the configured allowlist, else the default one (nil for none)
	senders       *allowlist // resolves the host names of POST /failsafe senders
	authFails     authLimiter
	hdrs, hdrsTLS []header // the first headers of every response, over plain HTTP and over TLS
}

// New returns a server answering from status, which must be cheap (an atomic pointer load) and
// returns nil until the HA loop has published its first Status.
func New(cfg Config, status func() *ha.Status) *Server {
	s := &Server{
		cfg: cfg, log: cfg.Logger, now: cfg.Now, status: status,
		readHeaderTimeout: readHeaderTimeout, readTimeout: readTimeout, writeTimeout: writeTimeout,
		managementTimeout: managementTimeout,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.status == nil {
		s.status = func() *ha.Status { return nil }
	}
	s.initial = s.newSnapshot(nil)
	s.metrics = s.newMetricsHandler(cfg.Metrics)
	s.handler = http.HandlerFunc(s.serveHTTP)
	s.setupErr = s.setup()
	return s
}

// setup checks the settings that need no file or network: they are errors of the Config, which
// New cannot return.
func (s *Server) setup() error {
	var errs []error
	var err error
	server := serverHeader(s.cfg.ServerTokens, s.cfg.Version, s.log)
	if s.hdrs, s.hdrsTLS, err = responseHeaders(server, s.cfg.HTTPExtraHeaders, s.cfg.HTTPSExtraHeaders); err != nil {
		errs = append(errs, err)
		// Answer with the Server header alone rather than with no header list at all.
		s.hdrs, s.hdrsTLS, _ = responseHeaders(server, nil, nil)
	}
	if len(s.cfg.Allowlist) > 0 || s.cfg.AllowlistIncludeMembers {
		if s.allow, err = newAllowlist(s.cfg.Allowlist, s.cfg.AllowlistIncludeMembers, s.log); err != nil {
			errs = append(errs, err)
			// A Handler mounted without Check refuses every checked request rather than
			// letting them all through.
			s.allow = &allowlist{denyAll: true}
		}
	}
	s.senders = &allowlist{names: newHostCache(s.log)}
	if s.cfg.TLS != nil {
		if s.tls, err = newTLSState(*s.cfg.TLS, s.log); err != nil {
			errs = append(errs, err)
		}
	}
	if len(s.cfg.ClientNames) > 0 && (s.tls == nil || !s.tls.verifiesClients()) {
		errs = append(errs, errors.New("verify_client_names needs certfile and verify_client optional or required"))
	}
	// Any access setting replaces the default (an invalid one included: it denies everything).
	if s.allow == nil && s.cfg.Auth == nil && (s.tls == nil || !s.tls.verifiesClients()) {
		s.allow = defaultAllowlist(s.log)
	}
	return errors.Join(errs...)
}

// Check reports what is wrong in the Config and loads the TLS certificate, key and CA, once;
// Serve and ListenAndServe call it first. A daemon may call it before it starts anything else,
// so that a bad restapi section stops it early.
func (s *Server) Check() error {
	if s.setupErr != nil {
		return fmt.Errorf("restapi: %w", s.setupErr)
	}
	if s.tls != nil && s.tls.cur.Load() == nil {
		if err := s.tls.reload(); err != nil {
			return fmt.Errorf("restapi: TLS: %w", err)
		}
	}
	return nil
}

// ReloadTLS re-reads the TLS certificate, key and CA file now. On error the loaded ones stay in
// use and the error is returned. Changed files are also picked up without it: the first TLS
// handshake at least a second after the previous check compares their modification times and
// sizes with the loaded ones'.
func (s *Server) ReloadTLS() error {
	if s.setupErr != nil {
		return fmt.Errorf("restapi: reload TLS: %w", s.setupErr)
	}
	if s.tls == nil {
		return errors.New("restapi: reload TLS: TLS is not configured")
	}
	if err := s.tls.reload(); err != nil {
		return fmt.Errorf("restapi: reload TLS certificate %s: %w", s.tls.cfg.CertFile, err)
	}
	return nil
}

// Handler returns the HTTP handler of the API; the caller may mount it in its own server.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves the API on l until ctx ends, then shuts down gracefully: it stops accepting, lets
// running requests finish (for at most 5 s) and closes l. With Config.TLS it serves HTTPS on l.
// It returns nil after a shutdown caused by ctx, or the error that stopped serving otherwise (l is
// closed then too, also when Check fails).
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	if err := s.Check(); err != nil {
		_ = l.Close()
		return err
	}
	if s.tls != nil {
		l = tls.NewListener(l, s.tls.listenerConfig())
	}
	if s.allow != nil {
		s.allow.prefetch()
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.readHeaderTimeout,
		ReadTimeout:       s.readTimeout,
		WriteTimeout:      s.writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	s.log.Info("REST API listening", "addr", l.Addr().String(), "tls", s.tls != nil)

	select {
	case err := <-errc:
		return fmt.Errorf("restapi: serve %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("REST API shutdown did not complete, closing connections", "err", err)
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("restapi: serve %s: %w", l.Addr(), err)
	}
	return nil
}

// ListenAndServe listens on Config.Listen and serves until ctx ends (see Serve). A host of "*" or
// "" ("*:8008", ":8008") listens on every address, IPv4 and IPv6. The configuration is checked
// (Check) before the port is bound.
func (s *Server) ListenAndServe(ctx context.Context) error {
	if s.cfg.Listen == "" {
		return errors.New("restapi: no listen address")
	}
	if err := s.Check(); err != nil {
		return err
	}
	addr := s.cfg.Listen
	if host, port, err := net.SplitHostPort(addr); err == nil && host == "*" {
		addr = net.JoinHostPort("", port) // Patroni's spelling of the wildcard; "tcp" is dual-stack
	}
	var lc net.ListenConfig // TCP keep-alive is on by default for accepted connections
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("restapi: listen on %s: %w", s.cfg.Listen, err)
	}
	s.warnCleartextAuth(l.Addr())
	return s.Serve(ctx, l)
}

// warnCleartextAuth warns when Basic authentication is served over plain HTTP on an address
// other hosts can reach: every unsafe request then carries the password in clear text.
func (s *Server) warnCleartextAuth(a net.Addr) {
	if s.cfg.Auth == nil || s.cfg.TLS != nil {
		return
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil && ap.Addr().IsLoopback() {
		return
	}
	s.log.Warn("restapi.authentication is configured but the REST API is plain HTTP on a non-loopback "+
		"address: passwords cross the network in clear text; configure restapi.certfile (TLS)", "listen", a.String())
}

// snapshotFor returns the cached bodies for st, building them on the first request after a new
// Status was published.
func (s *Server) snapshotFor(st *ha.Status) *snapshot {
	if st == nil {
		return s.initial
	}
	cur := s.cache.Load()
	if cur != nil && cur.st == st {
		return cur
	}
	snap := s.newSnapshot(st)
	// A slow request that loaded an older Status must not evict the bodies of a newer one.
	if s.status() == st {
		s.cache.Store(snap)
	}
	return snap
}
