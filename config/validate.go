package config

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// ValidationError lists every problem found in a configuration, one per line, each starting with
// the key path ("restapi.listen: ...", "bootstrap.dcs.loop_wait: ..."). Use errors.As to get the
// list.
type ValidationError struct {
	// Source is where the configuration came from (file, directory, "PATRONI_CONFIGURATION",
	// "environment", "dynamic configuration"); empty for Config.Validate.
	Source   string
	Problems []string
}

func (e *ValidationError) Error() string {
	if e.Source == "" {
		return strings.Join(e.Problems, "\n")
	}
	noun := "problem"
	if len(e.Problems) != 1 {
		noun = "problems"
	}
	return fmt.Sprintf("invalid configuration in %s (%d %s):\n  %s", e.Source, len(e.Problems), noun,
		strings.Join(e.Problems, "\n  "))
}

// ReservedName cannot be used as a member name (Patroni uses it in synchronous_standby_names).
const ReservedName = "__patroni_strict_sync_replica_placeholder__"

// unsupportedDCS are Patroni's DCS sections tusker does not speak: Exhibitor (a ZooKeeper
// front-end; point zookeeper.hosts at the ensemble instead) and Raft (deprecated in Patroni).
var unsupportedDCS = []string{"exhibitor", "raft"}

// Validate checks the whole configuration (after defaults) and returns a *ValidationError that
// lists every problem, or nil.
func (c *Config) Validate() error {
	var problems []string
	add := func(path, format string, args ...any) {
		msg := path + ": " + fmt.Sprintf(format, args...)
		if src := c.sources[path]; src != "" {
			msg += " (" + src + ")"
		}
		problems = append(problems, msg)
	}

	// The sections in the order their problems are listed, which tests and users compare.
	c.validateGlobal(add)
	c.validateLog(add)
	c.validateRestAPI(add)
	c.validateRestAPITLS(add)
	c.validateDCS(add)
	c.validateBootstrap(add)
	c.validatePostgreSQL(add)
	c.validateTags(add)
	c.validateWatchdog(add)

	if len(problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: problems}
}

// validateGlobal checks the member and cluster names, which become keys in the DCS.
func (c *Config) validateGlobal(add func(path, format string, args ...any)) {
	switch {
	case strings.TrimSpace(c.Name) == "":
		add("name", "required: the unique name of this member")
	case c.Name == ReservedName:
		add("name", "%q is reserved", ReservedName)
	case strings.Contains(c.Name, "/"):
		add("name", "%q must not contain \"/\" (it is a key in the DCS)", c.Name)
	}
	switch {
	case strings.TrimSpace(c.Scope) == "":
		add("scope", "required: the name of the cluster")
	case strings.Contains(c.Scope, "/"):
		add("scope", "%q must not contain \"/\" (it is a key in the DCS)", c.Scope)
	}
}

// validateLog checks the log section: a bad level or type would otherwise quietly fall back to the
// defaults (info, plain).
func (c *Config) validateLog(add func(path, format string, args ...any)) {
	if _, err := c.Log.SlogLevel(); err != nil {
		add("log.level", "%v", err)
	}
	if t := strings.ToLower(c.Log.Type); t != "" && t != "plain" && t != "json" {
		add("log.type", "expected plain or json, got %q", c.Log.Type)
	}
}

// validateRestAPI checks the addresses and credentials of the restapi section; its TLS, allowlist
// and header settings are validateRestAPITLS's.
func (c *Config) validateRestAPI(add func(path, format string, args ...any)) {
	if c.RestAPI.Listen == "" {
		add("restapi.listen", `required: the "host:port" the REST API listens on`)
	} else if _, _, err := SplitHostPort(c.RestAPI.Listen); err != nil {
		add("restapi.listen", "%v", err)
	}
	c.checkConnectAddress(add, "restapi.connect_address", c.RestAPI.ConnectAddress, "restapi.listen",
		validHostPort(c.RestAPI.Listen))
	if a := c.RestAPI.Authentication; a != nil {
		if a.Username == "" {
			add("restapi.authentication.username", "required when restapi.authentication is set")
		}
		if a.Password == "" {
			add("restapi.authentication.password", "required when restapi.authentication is set")
		}
	}
}

// validateBootstrap checks the bootstrap section: the dynamic configuration it seeds the DCS with
// (whose own checks name paths relative to bootstrap.dcs) and the initdb options.
func (c *Config) validateBootstrap(add func(path, format string, args ...any)) {
	for _, p := range c.Bootstrap.DCS.Validate() {
		path, msg, _ := strings.Cut(p, ": ")
		add("bootstrap.dcs."+path, "%s", msg)
	}
	c.validateBootstrapMethod(add)
	for i, a := range c.Bootstrap.Initdb {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			add(indexPath("bootstrap.initdb", i), "%q is not an initdb option (--name or --name=value)", a)
		} else if slices.Contains(disallowedInitdb, name) {
			add(indexPath("bootstrap.initdb", i), "initdb option %q is not allowed (tusker sets it itself)", name)
		}
	}
}

// validatePostgreSQL checks the postgresql section, bootstrap.pg_hba beside the other hba and ident
// lines (so that their problems are listed together), and the texts tusker writes into generated
// files (validateTexts).
func (c *Config) validatePostgreSQL(add func(path, format string, args ...any)) {
	pg := c.PostgreSQL
	if strings.TrimSpace(pg.DataDir) == "" {
		add("postgresql.data_dir", "required: the PostgreSQL data directory")
	}
	if pg.Listen == "" {
		add("postgresql.listen", `required: "host[,host...]:port" PostgreSQL listens on`)
	} else if _, _, err := parseListen(pg.Listen); err != nil {
		add("postgresql.listen", "%v", err)
	}
	_, _, listenErr := parseListen(pg.Listen)
	c.checkConnectAddress(add, "postgresql.connect_address", pg.ConnectAddress, "postgresql.listen", listenErr == nil)
	if pg.Authentication.Superuser.Username == "" {
		add("postgresql.authentication.superuser.username", "required")
	}
	if pg.Authentication.Replication.Username == "" {
		add("postgresql.authentication.replication.username", "required")
	}
	if pg.Authentication.Rewind.Password != "" && pg.Authentication.Rewind.Username == "" {
		add("postgresql.authentication.rewind.username", "required when rewind.password is set")
	}
	addKey := func(key, msg string) { add(key, "%s", msg) }
	checkInts(postgresqlInts, &pg, "postgresql.", addKey)
	parameterProblems("postgresql.parameters", pg.Parameters, addKey)
	linesProblems("postgresql.pg_hba", pg.PgHBA, addKey)
	linesProblems("bootstrap.pg_hba", c.Bootstrap.PgHBA, addKey)
	linesProblems("postgresql.pg_ident", pg.PgIdent, addKey)
	parameterProblems("postgresql.recovery_conf", pg.RecoveryConf, addKey)
	for i, o := range pg.Basebackup {
		// pg_basebackup compresses on the client unless told "server-": a compressed tar is no
		// data directory. Patroni refuses the same on PostgreSQL 15.
		if v, ok := strings.CutPrefix(o, "--compress="); ok && !strings.HasPrefix(v, "server") {
			add(indexPath("postgresql.basebackup", i), "%q: only server-side compression (server-gzip, server-lz4, server-zstd) can make a data directory", o)
		}
	}
	c.validateTexts(add)
}

// validateTags checks the tags that decide whether and how eagerly this member may be promoted.
func (c *Config) validateTags(add func(path, format string, args ...any)) {
	checkInts(tagsInts, &c.Tags, "tags.", func(key, msg string) { add(key, "%s", msg) })
	if c.Tags.FailoverPriority != nil && c.Tags.NoFailover {
		add("tags.failover_priority", "cannot be combined with tags.nofailover (set at most one of the two)")
	}
}

// validateWatchdog checks the watchdog's safety margin, which is subtracted from the lease.
func (c *Config) validateWatchdog(add func(path, format string, args ...any)) {
	checkInts(watchdogInts, &c.Watchdog, "watchdog.", func(key, msg string) { add(key, "%s", msg) })
}

// validateTexts checks the values tusker writes into a line of a generated file, or into a DCS
// key or URL others read: postgresql.conf (listen_addresses, hba_file under config_dir, and
// primary_conninfo with the member name, the replication credentials and the passfile's path), the
// passfile (the credentials) and the member key (the connect addresses). A line break in one of
// them would break that file or add a line of its own.
func (c *Config) validateTexts(add func(path, format string, args ...any)) {
	pg := c.PostgreSQL
	a := pg.Authentication
	texts := []struct{ key, v string }{
		{"name", c.Name}, {"scope", c.Scope}, {"namespace", c.Namespace},
		{"restapi.listen", c.RestAPI.Listen}, {"restapi.connect_address", c.RestAPI.ConnectAddress},
		{"postgresql.listen", pg.Listen}, {"postgresql.connect_address", pg.ConnectAddress},
		{"postgresql.data_dir", pg.DataDir}, {"postgresql.bin_dir", pg.BinDir}, {"postgresql.pgpass", pg.Pgpass},
		{"postgresql.authentication.superuser.username", a.Superuser.Username},
		{"postgresql.authentication.superuser.password", a.Superuser.Password},
		{"postgresql.authentication.replication.username", a.Replication.Username},
		{"postgresql.authentication.replication.password", a.Replication.Password},
		{"postgresql.authentication.rewind.username", a.Rewind.Username},
		{"postgresql.authentication.rewind.password", a.Rewind.Password},
	}
	if pg.ConfigDir != pg.DataDir { // the default: data_dir is reported once
		texts = append(texts, struct{ key, v string }{"postgresql.config_dir", pg.ConfigDir})
	}
	for _, t := range texts {
		if msg := textProblem(t.v); msg != "" {
			add(t.key, "%s", msg)
		}
	}
}

func validHostPort(s string) bool {
	_, _, err := SplitHostPort(s)
	return err == nil
}

// checkConnectAddress checks a connect address. When it is empty because the listen address is
// missing or invalid, only the listen address is reported.
func (c *Config) checkConnectAddress(add func(string, string, ...any), path, addr, listenPath string, listenOK bool) {
	if addr == "" {
		if !listenOK {
			return
		}
		add(path, `required: the "host:port" other members and clients use to reach this one `+
			"(it defaults to %s only when that names a specific host, not 0.0.0.0, :: or *)", listenPath)
		return
	}
	host, _, err := SplitHostPort(addr)
	switch {
	case err != nil:
		add(path, "%v", err)
	case isWildcard(host):
		add(path, "%q must name a host others can connect to, not a wildcard address", addr)
	}
}

func (c *Config) validateDCS(add func(string, string, ...any)) {
	e := c.Etcd3
	key := c.etcdKey
	if key == "" {
		key = "etcd3"
	}
	var configured []string
	for _, s := range []struct {
		name string
		set  bool
	}{{key, e != nil}, {"consul", c.Consul != nil}, {"zookeeper", c.ZooKeeper != nil}, {"kubernetes", c.Kubernetes != nil}} {
		if s.set {
			configured = append(configured, s.name)
		}
	}
	if len(configured) > 1 {
		// Two stores would be two views of who leads: refuse rather than pick one.
		add(configured[1], "only one DCS section may be configured, found %s", strings.Join(configured, " and "))
	}
	c.validateOtherDCS(add)
	if len(configured) == 0 {
		named := false
		for _, u := range c.Unimplemented {
			if slices.Contains(unsupportedDCS, u) {
				add(u, "this DCS is not supported by tusker (supported: etcd3, consul, zookeeper, kubernetes)")
				named = true
			}
		}
		if !named {
			add("etcd3", `required: a DCS section (etcd3, consul, zookeeper or kubernetes; "etcd" is accepted as an alias of etcd3)`)
		}
		return
	}
	if e == nil {
		return
	}
	if len(e.Hosts) == 0 {
		add(key+".hosts", `required: at least one etcd endpoint "host:port" (%s.host, %s.hosts or %s.url)`, key, key, key)
	}
	for i, h := range e.Hosts {
		host, _, err := SplitHostPort(h)
		switch {
		case err != nil:
			add(indexPath(key+".hosts", i), "%v", err)
		case host == "":
			add(indexPath(key+".hosts", i), "%q has no host", h)
		}
	}
	if p := e.Protocol; p != "" && p != "http" && p != "https" {
		add(key+".protocol", "expected http or https, got %q", p)
	}
	if (e.Cert == "") != (e.Key == "") {
		add(key+".cert", "%s.cert and %s.key must be set together", key, key)
	}
	if e.Password != "" && e.Username == "" {
		add(key+".username", "required when %s.password is set", key)
	}
}

// validateRestAPITLS checks the TLS, allowlist and header settings of the restapi section. Files
// are read when the server starts (and again on reload), so only their presence is checked here.
func (c *Config) validateRestAPITLS(add func(path, format string, args ...any)) {
	r := c.RestAPI
	if r.KeyFile != "" && r.CertFile == "" {
		add("restapi.keyfile", "set without restapi.certfile")
	}
	switch r.VerifyClient {
	case "", "none":
	case "optional", "required":
		if r.CAFile == "" {
			add("restapi.verify_client", "%q needs restapi.cafile to verify client certificates with", r.VerifyClient)
		}
		if r.CertFile == "" {
			add("restapi.verify_client", "%q needs TLS: set restapi.certfile", r.VerifyClient)
		}
	default:
		add("restapi.verify_client", "expected none, optional or required, got %q", r.VerifyClient)
	}
	for _, f := range []struct{ key, path string }{
		{"certfile", r.CertFile}, {"keyfile", r.KeyFile}, {"cafile", r.CAFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			add("restapi."+f.key, "%v", err)
		}
	}
	switch strings.ToLower(r.ServerTokens) {
	case "", "original", "minimal", "productonly":
	default:
		add("restapi.server_tokens", "expected Original, Minimal or ProductOnly, got %q", r.ServerTokens)
	}
	for i, a := range r.Allowlist {
		if strings.Contains(a, "/") {
			if _, err := netip.ParsePrefix(a); err != nil {
				add(fmt.Sprintf("restapi.allowlist[%d]", i), "%q is not a valid CIDR: %v", a, err)
			}
			continue
		}
		if strings.ContainsAny(a, " \t:") && net.ParseIP(a) == nil {
			add(fmt.Sprintf("restapi.allowlist[%d]", i), "%q is neither a host name, an IP address nor a CIDR", a)
		}
	}
	for _, h := range []struct {
		key string
		m   map[string]string
	}{{"http_extra_headers", r.HTTPExtraHeaders}, {"https_extra_headers", r.HTTPSExtraHeaders}} {
		for k, v := range h.m {
			if k == "" || strings.ContainsAny(k, " \t\r\n:") || strings.ContainsAny(v, "\r\n") {
				add("restapi."+h.key+"."+k, "not a valid HTTP header")
			}
		}
	}
}

// validateBootstrapMethod checks bootstrap.method: a method other than initdb needs its section
// with a command. Patroni falls back to initdb without a word in that case, which creates an
// empty cluster where a restore from a backup was asked for; tusker refuses to start instead.
func (c *Config) validateBootstrapMethod(add func(path, format string, args ...any)) {
	b := c.Bootstrap
	if b.Method == "" || b.Method == "initdb" {
		return
	}
	if msg := methodName(b.Method); msg != "" {
		add("bootstrap.method", "%s", msg)
		return
	}
	path := "bootstrap." + b.Method
	switch {
	case b.Custom == nil:
		add("bootstrap.method", "%q names no section %s (with its command)", b.Method, path)
	case strings.TrimSpace(b.Custom.Command) == "":
		add(path+".command", "required: the command that creates the data directory for bootstrap.method %q", b.Method)
	default:
		parameterProblems(path+".recovery_conf", b.Custom.RecoveryConf, func(key, msg string) { add(key, "%s", msg) })
	}
}
