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
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
	Name, Scope, Version string
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
	return s
}

// Handler returns the HTTP handler of the API; the caller may mount it in its own server.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves the API on l until ctx ends, then shuts down gracefully: it stops accepting, lets
// running requests finish (for at most 5 s) and closes l. It returns nil after a shutdown caused
// by ctx, or the error that stopped serving otherwise.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
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
	s.log.Info("REST API listening", "addr", l.Addr().String())

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

// ListenAndServe listens on Config.Listen and serves until ctx ends (see Serve).
func (s *Server) ListenAndServe(ctx context.Context) error {
	if s.cfg.Listen == "" {
		return errors.New("restapi: no listen address")
	}
	var lc net.ListenConfig // TCP keep-alive is on by default for accepted connections
	l, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("restapi: %w", err)
	}
	return s.Serve(ctx, l)
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
