// Package ctl is tuskerctl, the operator's command line: patronictl's commands, flags, prompts and
// output formats. It reads the cluster from the DCS and acts through the members' REST APIs (or,
// for the configuration and as a fallback for switchover and failover, on the DCS directly).
package ctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/dcs/backend"
)

// dcsTimeout bounds every DCS call, so that an unreachable store is reported within seconds.
const dcsTimeout = 5 * time.Second

// Env is what one run of tuskerctl sees of the outside world. OSEnv gives the real one; tests
// replace streams, terminal detection, the store and the editor.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Environ        []string // KEY=VALUE, as os.Environ
	// StdinTTY and StdoutTTY say whether the streams are terminals: edit-config opens an editor
	// only on a terminal, and list --watch clears the screen only there.
	StdinTTY, StdoutTTY bool
	Version             string
	Now                 func() time.Time
	// OpenDCS opens the store of one cluster; nil uses dcs/backend with the configuration.
	OpenDCS func(cfg *config.Config, scope string) (dcs.DCS, error)
	// Editor edits a file in place (edit-config); nil runs $VISUAL, $EDITOR or vi on the terminal.
	Editor func(ctx context.Context, path string) error
	// ReadPassword reads a secret without echo; nil reads a line of Stdin with echo off when it
	// is a terminal.
	ReadPassword func(prompt string) (string, error)
	// HTTPClient talks to the members' REST APIs; nil builds one from the configuration's ctl
	// (and restapi) TLS settings.
	HTTPClient *http.Client
}

// OSEnv is the environment of the tuskerctl process.
func OSEnv(version string) Env {
	return Env{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Environ: os.Environ(),
		StdinTTY: isTerminal(os.Stdin), StdoutTTY: isTerminal(os.Stdout), Version: version,
	}
}

// Main runs tuskerctl with args (without the program name) and returns the exit status.
func Main(ctx context.Context, args []string, env Env) int {
	a := newApp(ctx, env)
	defer a.close()
	root := a.rootCommand()
	root.SetArgs(args)
	_, err := root.ExecuteContextC(ctx)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = &opError{errors.New("interrupted")}
		}
		a.printError(err)
	}
	return ExitCode(err)
}

// app is one run: the parsed global flags and, loaded on first use, the configuration, the
// stores and the REST client.
type app struct {
	env    Env
	ctx    context.Context
	in     *bufio.Reader
	out    io.Writer
	errOut io.Writer

	configFile string
	dcsURL     string
	insecure   bool

	cfg       *config.Config
	cfgErr    error
	cfgLoaded bool
	stores    map[string]dcs.DCS
	api       *apiClient
}

func newApp(ctx context.Context, env Env) *app {
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	return &app{env: env, ctx: ctx, in: bufio.NewReader(env.Stdin), out: env.Stdout, errOut: env.Stderr,
		stores: map[string]dcs.DCS{}}
}

func (a *app) close() {
	for _, s := range a.stores {
		_ = s.Close()
	}
}

func (a *app) getenv(k string) string {
	for i := len(a.env.Environ) - 1; i >= 0; i-- {
		if key, v, ok := strings.Cut(a.env.Environ[i], "="); ok && key == k {
			return v
		}
	}
	return ""
}

func (a *app) printError(err error) {
	msg := err.Error()
	fmt.Fprintf(a.errOut, "tuskerctl: %s\n", msg)
	if ExitCode(err) == ExitUsage && !strings.Contains(msg, "--help") {
		fmt.Fprintln(a.errOut, "Run 'tuskerctl --help' (or 'tuskerctl COMMAND --help') for usage.")
	}
}

// defaultConfigPath is patronictl's default, click's application directory for "patroni".
func (a *app) defaultConfigPath() string {
	dir := a.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := a.getenv("HOME")
		if home == "" {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "patroni", "patronictl.yaml")
}

// config loads the configuration once: -c, else $PATRONICTL_CONFIG_FILE, else patronictl's
// default file if it exists; -d (or $DCS_URL) replaces its DCS section and -k turns off
// certificate checks, as in patronictl.
func (a *app) config() (*config.Config, error) {
	if !a.cfgLoaded {
		a.cfgLoaded = true
		a.cfg, a.cfgErr = a.loadConfig()
	}
	return a.cfg, a.cfgErr
}

func (a *app) loadConfig() (*config.Config, error) {
	path := a.configFile
	if path == "" {
		path = a.getenv("PATRONICTL_CONFIG_FILE")
	}
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("configuration file (-c/--config-file or PATRONICTL_CONFIG_FILE): %w", err)
		}
	} else if def := a.defaultConfigPath(); def != "" {
		if _, err := os.Stat(def); err == nil {
			path = def
		}
	}
	rawURL := a.dcsURL
	if rawURL == "" {
		rawURL = a.getenv("DCS_URL")
	}
	env := a.env.Environ
	var u *DCSURL
	if rawURL != "" {
		var err error
		if u, err = ParseDCSURL(rawURL); err != nil {
			if errors.Is(err, errUnsupportedDCS) {
				return nil, err
			}
			return nil, &usageError{err}
		}
	}
	var setDCS func(*config.Config)
	if u != nil {
		// As patronictl: the URL replaces the whole DCS section (endpoints, protocol, credentials),
		// except that kubernetes:// keeps a configured kubernetes section (its namespace, labels).
		setDCS = func(c *config.Config) {
			k := c.Kubernetes
			c.Etcd3, c.Consul, c.ZooKeeper, c.Kubernetes = nil, nil, nil, nil
			switch u.Scheme {
			case "etcd3":
				c.Etcd3 = &config.Etcd{Hosts: u.Hosts}
			case "consul":
				c.Consul = &config.Consul{Host: u.Hosts[0]}
			case "zookeeper":
				c.ZooKeeper = &config.ZooKeeper{Hosts: u.Hosts}
			case "kubernetes":
				if k == nil {
					k = &config.Kubernetes{}
				}
				c.Kubernetes = k
			}
			if u.Namespace != "" {
				c.Namespace = u.Namespace
			}
		}
	}
	cfg, err := config.LoadCtlWith(path, env, setDCS)
	if err != nil {
		if path == "" && u == nil {
			return nil, usagef("no configuration: pass -c CONFIG, set PATRONICTL_CONFIG_FILE, create %s, or pass -d etcd3://HOST:PORT",
				a.defaultConfigPath())
		}
		return nil, fmt.Errorf("loading the configuration: %w", err)
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "/service"
	}
	if a.insecure {
		cfg.Ctl.Insecure = true
	}
	return cfg, nil
}

// dcsAddress names the store in messages: its endpoints as the client dials them.
func dcsAddress(cfg *config.Config) string {
	switch {
	case cfg == nil:
	case cfg.Etcd3 != nil:
		proto := cfg.Etcd3.Protocol
		if proto == "" {
			proto = "http"
		}
		eps := make([]string, len(cfg.Etcd3.Hosts))
		for i, h := range cfg.Etcd3.Hosts {
			eps[i] = proto + "://" + h
		}
		return strings.Join(eps, ",")
	case cfg.Consul != nil:
		if addr, scheme, err := cfg.Consul.Address(); err == nil {
			return "consul " + scheme + "://" + addr
		}
	case cfg.ZooKeeper != nil:
		return "zookeeper " + strings.Join(cfg.ZooKeeper.Hosts, ",")
	case cfg.Kubernetes != nil:
		ns := cfg.Kubernetes.Namespace
		if ns == "" {
			ns = "default"
		}
		return "the Kubernetes API (namespace " + ns + ")"
	}
	return "(no DCS configured)"
}

// store opens (once) the DCS view of one cluster.
func (a *app) store(scope string) (dcs.DCS, error) {
	if s, ok := a.stores[scope]; ok {
		return s, nil
	}
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	var s dcs.DCS
	if a.env.OpenDCS != nil {
		s, err = a.env.OpenDCS(cfg, scope)
	} else {
		s, err = backend.Open(cfg, backend.Options{Scope: scope, Name: "tuskerctl", TTL: 30 * time.Second,
			RetryTimeout: dcsTimeout, Logger: slog.New(slog.DiscardHandler)})
	}
	if err != nil {
		return nil, fmt.Errorf("opening the DCS at %s: %w", dcsAddress(cfg), err)
	}
	a.stores[scope] = s
	return s, nil
}

// cluster reads one cluster from the DCS; a cluster without any key is reported as not found.
func (a *app) cluster(scope string) (*dcs.Cluster, error) {
	s, err := a.store(scope)
	if err != nil {
		return nil, err
	}
	c, err := s.Cluster(a.ctx)
	if err != nil {
		if errors.Is(err, dcs.ErrUnreachable) {
			return nil, fmt.Errorf("cannot reach the DCS at %s within %s: %w", dcsAddress(a.cfg), dcsTimeout, err)
		}
		return nil, fmt.Errorf("reading cluster %q from the DCS at %s: %w", scope, dcsAddress(a.cfg), err)
	}
	if !clusterExists(c) {
		return nil, a.notFound(scope)
	}
	return c, nil
}

func clusterExists(c *dcs.Cluster) bool {
	return c.Initialize != nil || c.Config != nil || c.Leader != nil || len(c.Members) > 0 ||
		c.Failover != nil || len(c.History) > 0
}

// notFound explains a missing cluster; when the name is a member of the configured cluster the
// user most likely left out CLUSTER before MEMBER, and the message says so.
func (a *app) notFound(scope string) error {
	msg := fmt.Sprintf("cluster %q not found in namespace %s", scope, a.cfg.Namespace)
	if own := a.cfg.Scope; own != "" && own != scope {
		if s, err := a.store(own); err == nil {
			if c, err := s.Cluster(a.ctx); err == nil && c.Member(scope) != nil {
				msg += fmt.Sprintf(" (%q is a member of cluster %q: the first argument is the cluster, e.g. %q)",
					scope, own, own+" "+scope)
			}
		}
	}
	return errors.New(msg)
}

// clusterName is CLUSTER when given, else the configuration's scope.
func (a *app) clusterName(args []string) (string, error) {
	if len(args) > 0 && args[0] != "" {
		return args[0], nil
	}
	cfg, err := a.config()
	if err != nil {
		return "", err
	}
	if cfg.Scope == "" {
		return "", usagef("no cluster name: pass CLUSTER or set scope in the configuration")
	}
	return cfg.Scope, nil
}

// client is the REST client for the members' APIs, built from the configuration once.
func (a *app) client() (*apiClient, error) {
	if a.api != nil {
		return a.api, nil
	}
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	c, err := newAPIClient(cfg, a.env.HTTPClient)
	if err != nil {
		return nil, err
	}
	a.api = c
	return c, nil
}

// now is the current time; timestamp is patronictl's prefix of result lines.
func (a *app) now() time.Time { return a.env.Now() }

func (a *app) timestamp() string { return a.now().Format("2006-01-02 15:04:05.000") }

// --- command wiring ---

const globalAnnotation = "tuskerctl_global"

// addGlobalFlags defines -c, -d and -k on a command. They are defined on the root and again on
// every subcommand (instead of once as persistent flags) so that they may be given before or
// after the command name, while query keeps patronictl's own -c (SQL) and -d (database): there
// they have their long names only.
func (a *app) addGlobalFlags(fs *pflag.FlagSet, short bool) {
	sh := func(s string) string {
		if short {
			return s
		}
		return ""
	}
	fs.StringVarP(&a.configFile, "config-file", sh("c"), a.configFile,
		"configuration file (default $PATRONICTL_CONFIG_FILE, else ~/.config/patroni/patronictl.yaml)")
	fs.StringVarP(&a.dcsURL, "dcs-url", sh("d"), a.dcsURL,
		"the DCS to use instead of the configuration's: etcd3://HOST:PORT[,HOST:PORT]/NAMESPACE (default $DCS_URL)")
	fs.BoolVarP(&a.insecure, "insecure", sh("k"), a.insecure, "do not verify the members' REST API certificates")
	fs.StringVar(&a.dcsURL, "dcs", a.dcsURL, "alias of --dcs-url")
	_ = fs.MarkHidden("dcs")
	for _, n := range []string{"config-file", "dcs-url", "insecure", "dcs"} {
		_ = fs.SetAnnotation(n, globalAnnotation, []string{"true"})
	}
}

// command builds a subcommand whose body's errors exit 1 (opError); argument and flag errors
// caught before the body exit 2.
func (a *app) command(c *cobra.Command, run func(cmd *cobra.Command, args []string) error) *cobra.Command {
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if err := run(cmd, args); err != nil {
			if _, ok := errors.AsType[*usageError](err); ok {
				return err
			}
			return &opError{err}
		}
		return nil
	}
	a.addGlobalFlags(c.Flags(), c.Name() != "query")
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	return c
}

// groupFlag adds patronictl's --group (Citus); only group 0 (no Citus) is accepted.
func groupFlag(c *cobra.Command, group *int) {
	c.Flags().IntVar(group, "group", 0, "Citus group (accepted for compatibility; tusker manages no Citus groups)")
}

func checkGroup(group int) error {
	if group != 0 {
		return errors.New("Citus groups are not supported")
	}
	return nil
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "tuskerctl",
		Short: "Manage tusker (and Patroni) PostgreSQL clusters",
		Long: `tuskerctl manages tusker clusters with patronictl's commands, flags and formats.
It reads the cluster from the DCS (etcd) and acts through the members' REST APIs.

The configuration is the file given with -c, else $PATRONICTL_CONFIG_FILE, else
~/.config/patroni/patronictl.yaml; a member's own configuration file works too. Only its
DCS section (etcd3 or etcd), scope, namespace and ctl section are used. CLUSTER defaults to
the configuration's scope.

Exit status: 0 success, 1 the operation failed, was refused or aborted, 2 usage error.`,
		Version:          a.env.Version,
		SilenceErrors:    true,
		SilenceUsage:     true,
		TraverseChildren: true,
		Args:             cobra.ArbitraryArgs,
		// "lst" suggests list.
		SuggestionsMinimumDistance: 2,
		ValidArgsFunction:          cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
			}
			return usagef("%s", msg)
		},
	}
	root.SetIn(a.env.Stdin)
	root.SetOut(a.out)
	root.SetErr(a.errOut)
	root.SetVersionTemplate("tuskerctl version {{.Version}}\n")
	a.addGlobalFlags(root.Flags(), true)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	cobra.AddTemplateFunc("commandFlags", func(c *cobra.Command) string { return flagUsages(c, false) })
	cobra.AddTemplateFunc("globalFlags", func(c *cobra.Command) string { return flagUsages(c, true) })
	root.SetUsageTemplate(usageTemplate)

	root.AddCommand(
		a.listCommand(false), a.listCommand(true),
		a.switchoverCommand(false), a.switchoverCommand(true),
		a.restartCommand(), a.reloadCommand(), a.reinitCommand(), a.flushCommand(),
		a.pauseCommand(true), a.pauseCommand(false),
		a.editConfigCommand(), a.showConfigCommand(), a.historyCommand(),
		a.queryCommand(), a.removeCommand(), a.dsnCommand(), a.versionCommand(),
		a.demoteClusterCommand(), a.promoteClusterCommand(),
	)
	return root
}

// flagUsages lists a command's own flags, or the global ones, for the help text.
func flagUsages(c *cobra.Command, global bool) string {
	fs := pflag.NewFlagSet(c.Name(), pflag.ContinueOnError)
	c.LocalFlags().VisitAll(func(f *pflag.Flag) {
		_, isGlobal := f.Annotations[globalAnnotation]
		if isGlobal == global {
			fs.AddFlag(f)
		}
	})
	return strings.TrimRight(fs.FlagUsages(), "\n")
}

const usageTemplate = `Usage:{{if .Runnable}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} [command]{{end}}{{if gt (len .Aliases) 0}}

Aliases:
  {{.NameAndAliases}}{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{with commandFlags .}}

Flags:
{{.}}{{end}}{{with globalFlags .}}

Global Flags (before or after the command):
{{.}}{{end}}{{if .HasAvailableSubCommands}}

Use "{{.CommandPath}} [command] --help" for more information about a command.{{end}}
`
