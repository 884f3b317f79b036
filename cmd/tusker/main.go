// Command tusker is the high-availability supervisor of one PostgreSQL node: `tusker CONFIG.yml`,
// with Patroni's configuration dialect.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/dcs/backend"
	"github.com/tusker-ha/tusker/dcs/kubernetes"
	"github.com/tusker-ha/tusker/ha"
	"github.com/tusker-ha/tusker/internal/apiclient"
	"github.com/tusker-ha/tusker/internal/binpages"
	"github.com/tusker-ha/tusker/internal/sdnotify"
	"github.com/tusker-ha/tusker/postgres"
	"github.com/tusker-ha/tusker/restapi"
	"github.com/tusker-ha/tusker/rollout"
)

// version is stamped by the Makefile (-ldflags "-X main.version=...").
var version = "0.1.0-dev"

func main() {
	if filepath.Base(os.Args[0]) == ctlName {
		os.Exit(runCtl(os.Args[1:]))
	}
	setGCDefaults(os.Getenv)
	os.Exit(run(os.Args[1:]))
}

func usage() {
	fmt.Fprintf(os.Stderr, `usage: tusker [--validate-config] [CONFIG]
       tusker --version
       tusker --healthcheck [URL]

CONFIG is a Patroni-style YAML file or a directory of YAML files; PATRONI_* environment
variables override it (PATRONI_CONFIGURATION may hold the whole document).
--healthcheck GETs URL and exits 0 on 200: the container image's HEALTHCHECK. Without URL it
probes /liveness of the member beside it, at the port (and with the TLS settings) of the
configuration that tusker as PID 1 was started with.
`)
}

func run(args []string) int {
	fs := flag.NewFlagSet("tusker", flag.ContinueOnError)
	fs.Usage = usage
	showVersion := fs.Bool("version", false, "print the version and exit")
	validate := fs.Bool("validate-config", false, "check the configuration, report every problem, and exit")
	health := fs.Bool("healthcheck", false, "probe the REST API (default /liveness on this host) and exit 0 on 200")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Println("tusker", version)
		return 0
	}
	if *health {
		if fs.NArg() > 1 {
			usage()
			return 2
		}
		return healthcheck(fs.Arg(0))
	}
	if fs.NArg() > 1 {
		usage()
		return 2
	}
	path := fs.Arg(0)
	if path == "" && os.Getenv("PATRONI_CONFIGURATION") == "" && !*validate && !anyPatroniEnv() {
		usage()
		return 2
	}

	// The environment tusker was started with. The configuration is loaded from this copy, now
	// and on every reload, because the daemon takes the secrets among it out of its own
	// environment (scrubSecrets) so that no process it starts inherits them.
	env := os.Environ()
	cfg, err := config.LoadWithEnv(path, env)
	if *validate {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for _, k := range cfg.Unimplemented {
			fmt.Fprintf(os.Stderr, "note: %s is accepted but not implemented by tusker yet\n", k)
		}
		fmt.Println("configuration is valid")
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tusker:", err)
		return 1
	}

	if initMode() {
		// The daemon, init's child, needs the secrets too: it loads the configuration and
		// scrubs them itself.
		return runAsInit()
	}
	if os.Geteuid() == 0 {
		fmt.Fprintln(os.Stderr, "tusker: refusing to run as root: PostgreSQL does not run as root; run tusker as the user that owns the data directory (e.g. postgres)")
		return 1
	}
	return daemon(cfg, path, env)
}

// scrubSecrets removes the variables of env that hold secrets (config.IsSecretEnv) from the
// process's environment, which every child (PostgreSQL, its tools, callbacks, hooks) inherits,
// and returns their names. The configuration keeps what they said: it was loaded before.
func scrubSecrets(env []string) ([]string, error) {
	names := config.SecretEnvNames(env)
	for _, name := range names {
		if err := os.Unsetenv(name); err != nil {
			return names, fmt.Errorf("removing %s from the environment: %w", name, err)
		}
	}
	return names, nil
}

func anyPatroniEnv() bool {
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATRONI_") {
			return true
		}
	}
	return false
}

func newLogger(cfg *config.Config) *slog.Logger {
	level, err := cfg.Log.SlogLevel()
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if strings.EqualFold(cfg.Log.Type, "json") {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	return slog.New(h).With("member", cfg.Name, "scope", cfg.Scope)
}

func daemon(cfg *config.Config, path string, env []string) int {
	log := newLogger(cfg)
	slog.SetDefault(log)
	notifier, ok := prepareProcess(cfg, env, log)
	if !ok {
		return 1
	}
	reload := func() (*config.Config, error) { return config.LoadWithEnv(path, env) }

	dyn := cfg.Bootstrap.DCS
	store, err := backend.Open(cfg, backend.Options{Logger: log})
	if err != nil {
		log.Error("cannot use the DCS", "err", err)
		return 1
	}
	defer store.Close()

	pg, err := postgres.New(ha.PostgresConfig(cfg, dyn, log))
	if err != nil {
		log.Error("cannot manage PostgreSQL", "err", err)
		return 1
	}
	defer pg.Close()

	node, api, ok := newNodeAndAPI(cfg, store, pg, reload, log)
	if !ok {
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// SIGHUP re-reads the configuration (as Patroni does) and reloads postgres.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go reloadOnSIGHUP(ctx, hup, cfg, reload, node, api, log)

	apiErr := make(chan error, 1)
	apiCtx, apiStop := context.WithCancel(context.Background())
	defer apiStop()
	go func() { apiErr <- api.ListenAndServe(apiCtx) }()
	if !apiListening(apiErr, cfg, log) {
		return 1
	}

	// On Kubernetes, the leader rolls the StatefulSet's pods onto a new revision (runRollout).
	rolloutCtx, rolloutStop := context.WithCancel(ctx)
	rolled := make(chan struct{})
	go func() { defer close(rolled); runRollout(rolloutCtx, store, cfg, node, log) }()
	defer func() { rolloutStop(); <-rolled }()

	// Start-up code and data pages of the binary stay mapped after use; releasing them keeps an
	// idle member's RSS at what it runs (internal/binpages says why that is safe).
	trimCtx, trimStop := context.WithCancel(ctx)
	trimmed := make(chan struct{})
	go func() { defer close(trimmed); binpages.Run(trimCtx, binpages.DefaultSchedule, log) }()
	defer func() { trimStop(); <-trimmed }()

	// systemd hears STOPPING=1 as soon as the signal arrives (ctx), or when the loop gives up.
	notifyCtx, notifyStop := context.WithCancel(ctx)
	notified := make(chan struct{})
	go func() {
		defer close(notified)
		if notifier != nil {
			notifySystemd(notifyCtx, notifier, node.Status, log)
		}
	}()
	runErr := node.Run(ctx)
	notifyStop()
	<-notified
	apiStop()
	apiRunErr := <-apiErr
	return exitStatus(runErr, apiRunErr, log)
}

// prepareProcess readies the process before anything is started: the secrets and systemd's
// notification settings leave the environment before any child can inherit them. It logs why
// when the daemon cannot go on (ok false).
func prepareProcess(cfg *config.Config, env []string, log *slog.Logger) (notifier *sdnotify.Notifier, ok bool) {
	// Before any child starts. Reloads read the copy taken at start (env), so they still see them.
	scrubbed, err := scrubSecrets(env)
	if err != nil {
		log.Error("cannot keep secrets out of the processes tusker starts", "err", err)
		return nil, false
	}
	if len(scrubbed) > 0 {
		log.Info("secret variables removed from the environment of the processes tusker starts", "variables", strings.Join(scrubbed, ","))
	}
	// Taken out of the environment before any child starts (PostgreSQL would notify by itself).
	notifier, err = sdnotify.FromEnv()
	if err != nil {
		log.Error("systemd notification settings", "err", err)
		return nil, false
	}
	log.Info("starting tusker", "version", version, "config", cfg.Source)
	for _, k := range cfg.Unimplemented {
		log.Warn("configuration key accepted but not implemented yet; ignoring it", "key", k)
	}
	return notifier, true
}

// newNodeAndAPI builds the HA node over the DCS and PostgreSQL, and the REST API server that
// answers for it; nothing runs yet. It logs why when they cannot be built (ok false).
func newNodeAndAPI(cfg *config.Config, store dcs.DCS, pg *postgres.Postgres, reload func() (*config.Config, error),
	log *slog.Logger) (node *ha.Node, api *restapi.Server, ok bool) {
	// Requests to the other members' REST APIs carry the CA and client certificate of the ctl
	// (else restapi) section, so that members with TLS and verify_client still hear each other.
	peerClient, err := apiclient.New(apiclient.FromConfig(cfg))
	if err != nil {
		log.Error("cannot build the client for the members' REST APIs", "err", err)
		return nil, nil, false
	}
	if cfg.RestAPI.ProtectReads {
		peerClient = apiclient.WithAuth(peerClient, apiclient.Auth(cfg))
	}
	node = ha.NewNode(ha.Options{Config: cfg, DCS: store, PG: pg, Logger: log, Version: version,
		PeerClient:   peerClient,
		ReloadConfig: reload})

	api = restapi.New(apiConfig(cfg, log, node), node.Status)
	if err := api.Check(); err != nil {
		log.Error("REST API configuration", "err", err)
		return nil, nil, false
	}
	return node, api, true
}

// reloadOnSIGHUP re-reads the configuration on every SIGHUP until ctx ends (the daemon runs it in
// its own goroutine). A configuration that no longer loads is reported and the running one kept.
func reloadOnSIGHUP(ctx context.Context, hup <-chan os.Signal, cfg *config.Config,
	reload func() (*config.Config, error), node *ha.Node, api *restapi.Server, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			nc, err := reload()
			if err != nil {
				log.Error("SIGHUP: the configuration does not load; keeping the running one", "err", err)
				continue
			}
			log.Info("SIGHUP: configuration re-read", "config", nc.Source)
			node.UpdateConfig(nc)
			// Certificates also reload by themselves when their files change; SIGHUP makes it
			// immediate. Other restapi settings need a restart.
			if cfg.RestAPI.CertFile == "" {
				continue
			}
			if err := api.ReloadTLS(); err != nil {
				log.Error("SIGHUP: reloading the REST API certificates failed; keeping the old ones", "err", err)
			}
		}
	}
}

// apiListening gives the REST API a moment to fail to listen (apiErr is its ListenAndServe's
// result): a member nobody can reach must not start. It reports false, logged, when it failed.
func apiListening(apiErr <-chan error, cfg *config.Config, log *slog.Logger) bool {
	select {
	case err := <-apiErr:
		log.Error("REST API cannot listen", "listen", cfg.RestAPI.Listen, "err", err)
		return false
	case <-time.After(100 * time.Millisecond):
	}
	return true
}

// runRollout rolls the StatefulSet's pods onto a new revision when the DCS is Kubernetes and the
// StatefulSet leaves that to others (updateStrategy OnDelete): replicas first, then one
// switchover, then its own pod. It returns when ctx ends, or at once when rolling updates are off.
func runRollout(ctx context.Context, store dcs.DCS, cfg *config.Config, node *ha.Node, log *slog.Logger) {
	kb, ok := store.(*kubernetes.Backend)
	if !ok {
		return
	}
	r, err := rollout.New(rollout.Options{Config: kb.RestConfig(), Namespace: kb.Namespace(), Pod: cfg.Name,
		Status: node.Status, Switchover: node.Switchover, Logger: log})
	if err != nil {
		log.Warn("rolling updates are off", "err", err)
		return
	}
	r.Run(ctx)
}

// exitStatus reports how the daemon ended, once the loop (runErr) and the REST API (apiErr) have
// both stopped, and returns the process's exit code.
func exitStatus(runErr, apiErr error, log *slog.Logger) int {
	if apiErr != nil && !errors.Is(apiErr, context.Canceled) {
		log.Warn("REST API stopped with an error", "err", apiErr)
	}
	if runErr != nil {
		log.Error("stopping", "err", runErr)
		return 1
	}
	log.Info("stopped")
	return 0
}

// apiConfig maps the restapi section onto the REST API server's configuration.
func apiConfig(cfg *config.Config, log *slog.Logger, node *ha.Node) restapi.Config {
	r := cfg.RestAPI
	c := restapi.Config{Listen: r.Listen, Logger: log, Manager: node, Metrics: node.Metrics(),
		Name: cfg.Name, Scope: cfg.Scope, Version: version,
		Allowlist: r.Allowlist, AllowlistIncludeMembers: r.AllowlistIncludeMembers,
		ClientNames: r.VerifyClientNames, ProtectReads: r.ProtectReads,
		HTTPExtraHeaders: r.HTTPExtraHeaders, HTTPSExtraHeaders: r.HTTPSExtraHeaders, ServerTokens: r.ServerTokens}
	if a := r.Authentication; a != nil && a.Username != "" {
		c.Auth = &restapi.BasicAuth{Username: a.Username, Password: a.Password}
	}
	if r.CertFile != "" {
		c.TLS = &restapi.TLSConfig{CertFile: r.CertFile, KeyFile: r.KeyFile, KeyFilePassword: r.KeyFilePassword,
			CAFile: r.CAFile, Ciphers: r.Ciphers, VerifyClient: r.VerifyClient}
	}
	return c
}
