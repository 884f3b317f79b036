// Package config holds tusker's configuration: Patroni's YAML dialect (a file or a directory of
// files), PATRONI_* environment overrides, defaults and validation with key paths.
package config

import "time"

// Config is the local configuration of one tusker node (Patroni's local YAML).
type Config struct {
	Scope     string `yaml:"scope"`
	Namespace string `yaml:"namespace"` // default "/service"
	Name      string `yaml:"name"`

	Log        Log         `yaml:"log"`
	RestAPI    RestAPI     `yaml:"restapi"`
	Ctl        Ctl         `yaml:"ctl"`
	Etcd3      *Etcd       `yaml:"etcd3"` // "etcd" is accepted as etcd v3 too and lands here
	Consul     *Consul     `yaml:"consul"`
	ZooKeeper  *ZooKeeper  `yaml:"zookeeper"`
	Kubernetes *Kubernetes `yaml:"kubernetes"`
	Bootstrap  Bootstrap   `yaml:"bootstrap"`
	PostgreSQL PostgreSQL  `yaml:"postgresql"`
	Tags       Tags        `yaml:"tags"`
	Watchdog   Watchdog    `yaml:"watchdog"`

	// Unimplemented lists (sorted, unique) the key paths present in the input that tusker accepts
	// but does not act on yet, and unknown keys: the top-most such key only (for example "consul",
	// "watchdog", "restapi.certfile", "bootstrap.dcs.synchronous_mode"); free-form names under
	// parameters and tags are never listed. The daemon logs them once at start.
	Unimplemented []string `yaml:"-"`
	// Source is the file or directory the configuration was read from ("PATRONI_CONFIGURATION"
	// or "environment" when it came from the environment alone).
	Source string `yaml:"-"`

	// sources maps key paths to where their value came from ("at file:line", "from PATRONI_X"),
	// so that Validate can point at the offending line.
	sources map[string]string
	// etcdKey is the section name the etcd settings were read from ("etcd3" or "etcd"), used in
	// validation messages; "" means etcd3.
	etcdKey string
}

// Log is the "log" section.
type Log struct {
	Level string `yaml:"level"` // DEBUG, INFO (default), WARNING, ERROR, CRITICAL; upper-cased by Load
	Type  string `yaml:"type"`  // plain (default) or json; lower-cased by Load
}

// RestAPI is the "restapi" section.
type RestAPI struct {
	Listen         string `yaml:"listen"`          // host:port, required
	ConnectAddress string `yaml:"connect_address"` // host:port, required; published in api_url
	Authentication *Auth  `yaml:"authentication"`

	// TLS: with CertFile (and KeyFile, default CertFile) the API serves HTTPS. CAFile verifies
	// client certificates as VerifyClient asks ("none", the default, "optional": required on
	// unsafe methods, "required": on every request). Ciphers is an OpenSSL-style cipher list
	// restricting the TLS 1.2 suites.
	CertFile        string `yaml:"certfile"`
	KeyFile         string `yaml:"keyfile"`
	KeyFilePassword string `yaml:"keyfile_password"`
	CAFile          string `yaml:"cafile"`
	Ciphers         string `yaml:"ciphers"`
	VerifyClient    string `yaml:"verify_client"`

	// Allowlist restricts the unsafe (management) requests to these hosts, IPs or CIDRs;
	// AllowlistIncludeMembers adds the hosts of the members' api_url.
	Allowlist               []string `yaml:"allowlist"`
	AllowlistIncludeMembers bool     `yaml:"allowlist_include_members"`

	// VerifyClientNames (tusker's) narrows verify_client to certificates whose common name or a
	// subject alternative name is in the list.
	VerifyClientNames []string `yaml:"verify_client_names"`
	// ProtectReads (tusker's) checks GET /patroni, /cluster, /history, /metrics, /config and
	// /failsafe like unsafe requests; health checks stay open. Off by default, as in Patroni.
	ProtectReads bool `yaml:"protect_reads"`

	HTTPExtraHeaders  map[string]string `yaml:"http_extra_headers"`
	HTTPSExtraHeaders map[string]string `yaml:"https_extra_headers"` // added with TLS only
	// ServerTokens is the Server header: "Original" (Patroni's default; tusker sends "tusker"
	// without a version there too), "Minimal" ("tusker/<version>") or "ProductOnly" ("tusker").
	ServerTokens string `yaml:"server_tokens"`
}

// Ctl is the "ctl" section: how tuskerctl (and patronictl) reach the members' REST APIs.
type Ctl struct {
	Insecure        bool   `yaml:"insecure"` // do not verify the server certificates
	CACert          string `yaml:"cacert"`
	CertFile        string `yaml:"certfile"`
	KeyFile         string `yaml:"keyfile"`
	KeyFilePassword string `yaml:"keyfile_password"`
	Authentication  *Auth  `yaml:"authentication"`
}

// Auth is a username/password pair.
type Auth struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// Etcd is the "etcd3" (or "etcd") section. Host, Hosts and URL are folded into Hosts ("h:p"
// each, deduplicated); Protocol is "http" (default) or "https", also taken from the scheme of
// url (or of a host given as a URL) when protocol is not set.
type Etcd struct {
	Hosts    []string `yaml:"hosts"`
	Protocol string   `yaml:"protocol"`
	Username string   `yaml:"username"`
	Password string   `yaml:"password"`
	CACert   string   `yaml:"cacert"`
	Cert     string   `yaml:"cert"`
	Key      string   `yaml:"key"`
}

// Bootstrap is the "bootstrap" section.
type Bootstrap struct {
	DCS           Dynamic  `yaml:"dcs"`
	Initdb        []string `yaml:"initdb"` // normalised to initdb arguments: "--encoding=UTF8", "--data-checksums"
	PgHBA         []string `yaml:"pg_hba"`
	PostBootstrap string   `yaml:"post_bootstrap"` // also "post_init"
}

// Dynamic is the dynamic (cluster-wide) configuration, the JSON value of the DCS "config" key and
// bootstrap.dcs in the local file. Raw keeps every key as read so that keys tusker does not know
// survive a round trip through the DCS: JSON (and json.Marshal) write Raw with the typed fields
// over it; ParseDynamic (and json.Unmarshal) fill both.
type Dynamic struct {
	TTL                  int   `json:"ttl"`                     // seconds, default 6
	LoopWait             int   `json:"loop_wait"`               // seconds, default 1
	RetryTimeout         int   `json:"retry_timeout"`           // seconds, default 2
	MaximumLagOnFailover int64 `json:"maximum_lag_on_failover"` // bytes, default 1048576
	CheckTimeline        bool  `json:"check_timeline"`
	PrimaryStartTimeout  int   `json:"primary_start_timeout"` // seconds, default 300
	// PrimaryRaceBackoff delays the leader race while the local WAL position still advances
	// (seconds, default 0).
	PrimaryRaceBackoff int  `json:"primary_race_backoff"`
	FailsafeMode       bool `json:"failsafe_mode"`
	Pause              bool `json:"pause"`

	// Synchronous replication: SynchronousMode is "off" (default), "on" or "quorum" (Patroni also
	// takes true/false); SynchronousNodeCount (default 1) is how many standbys acknowledge each
	// commit; MaximumLagOnSyncnode (bytes, -1 = off) keeps a standby that far behind the most
	// advanced one out of the synchronous set.
	SynchronousMode       string `json:"synchronous_mode"`
	SynchronousModeStrict bool   `json:"synchronous_mode_strict"`
	SynchronousNodeCount  int    `json:"synchronous_node_count"`
	MaximumLagOnSyncnode  int64  `json:"maximum_lag_on_syncnode"`

	PostgreSQL DynamicPostgreSQL `json:"postgresql"`

	Raw map[string]any `json:"-"`
}

// DynamicPostgreSQL is the "postgresql" subsection of the dynamic configuration.
type DynamicPostgreSQL struct {
	UsePgRewind bool           `json:"use_pg_rewind"` // default true (Patroni: false)
	UseSlots    bool           `json:"use_slots"`     // default true
	Parameters  map[string]any `json:"parameters"`
	PgHBA       []string       `json:"pg_hba"`
}

// TimingDurations returns ttl, loop_wait and retry_timeout as durations.
func (d Dynamic) TimingDurations() (ttl, loopWait, retryTimeout time.Duration) {
	return time.Duration(d.TTL) * time.Second, time.Duration(d.LoopWait) * time.Second,
		time.Duration(d.RetryTimeout) * time.Second
}

// PostgreSQL is the local "postgresql" section.
type PostgreSQL struct {
	Listen         string         `yaml:"listen"`          // "host[,host...]:port", required
	ConnectAddress string         `yaml:"connect_address"` // host:port, required; published in conn_url
	DataDir        string         `yaml:"data_dir"`        // required
	BinDir         string         `yaml:"bin_dir"`         // "" = resolved at run time (not by this package)
	ConfigDir      string         `yaml:"config_dir"`      // default data_dir
	Pgpass         string         `yaml:"pgpass"`          // default DefaultPgpass(name): $HOME/.tusker/pgpass-<name>
	Authentication Authentication `yaml:"authentication"`
	Parameters     map[string]any `yaml:"parameters"`
	PgHBA          []string       `yaml:"pg_hba"`
	PgIdent        []string       `yaml:"pg_ident"`       // pg_ident.conf lines after tusker's own map
	PgCtlTimeout   int            `yaml:"pg_ctl_timeout"` // seconds, default 60

	// Local overrides of dynamic keys (Patroni accepts these in the local section too).
	UsePgRewind                            *bool `yaml:"use_pg_rewind"`
	RemoveDataDirectoryOnRewindFailure     bool  `yaml:"remove_data_directory_on_rewind_failure"`
	RemoveDataDirectoryOnDivergedTimelines bool  `yaml:"remove_data_directory_on_diverged_timelines"`

	Callbacks  Callbacks `yaml:"callbacks"`
	PrePromote string    `yaml:"pre_promote"` // command; a non-zero exit blocks the promotion
	BeforeStop string    `yaml:"before_stop"` // command run before postgres is stopped
}

// Callbacks are the commands run after postgres events, as "<cmd> <action> <role> <scope>".
type Callbacks struct {
	OnStart      string `yaml:"on_start"`
	OnStop       string `yaml:"on_stop"`
	OnRestart    string `yaml:"on_restart"`
	OnReload     string `yaml:"on_reload"`
	OnRoleChange string `yaml:"on_role_change"`
}

// Watchdog is the "watchdog" section.
type Watchdog struct {
	Mode         string `yaml:"mode"`          // off, automatic (default), required; normalised by Load
	Device       string `yaml:"device"`        // default /dev/watchdog
	SafetyMargin *int   `yaml:"safety_margin"` // seconds; -1 means ttl/2; see EffectiveSafetyMargin
}

// EffectiveSafetyMargin is safety_margin for a lease of ttl seconds. Unset, it is Patroni's 5 s,
// but never more than ttl/2: with tusker's short default ttl (6 s) a 5 s margin would leave a 1 s
// device timeout that an ordinary slow DCS call could miss, resetting a healthy machine.
func (w Watchdog) EffectiveSafetyMargin(ttl int) int {
	if w.SafetyMargin != nil {
		return *w.SafetyMargin
	}
	return min(5, ttl/2)
}

// Authentication holds the three roles tusker uses.
type Authentication struct {
	Superuser   Auth `yaml:"superuser"`   // default username "postgres"
	Replication Auth `yaml:"replication"` // default username "replicator"
	Rewind      Auth `yaml:"rewind"`      // optional; superuser is used for pg_rewind when absent
}

// Tags are the member's tags. Extra holds user-defined tags (usable in ?tag_ filters).
type Tags struct {
	NoFailover       bool           `yaml:"nofailover"`
	NoLoadBalance    bool           `yaml:"noloadbalance"`
	CloneFrom        bool           `yaml:"clonefrom"`
	NoSync           bool           `yaml:"nosync"`
	FailoverPriority *int           `yaml:"failover_priority"` // 0 means nofailover; default 1
	SyncPriority     *int           `yaml:"sync_priority"`     // 0 means nosync; default 1
	Extra            map[string]any `yaml:"-"`
}

// Map returns the tags as published in the member key (only the set ones, like Patroni).
func (t Tags) Map() map[string]any {
	m := map[string]any{}
	for k, v := range t.Extra {
		m[k] = v
	}
	if t.NoFailover {
		m["nofailover"] = true
	}
	if t.NoLoadBalance {
		m["noloadbalance"] = true
	}
	if t.CloneFrom {
		m["clonefrom"] = true
	}
	if t.NoSync {
		m["nosync"] = true
	}
	if t.FailoverPriority != nil {
		m["failover_priority"] = *t.FailoverPriority
	}
	if t.SyncPriority != nil {
		m["sync_priority"] = *t.SyncPriority
	}
	return m
}

// Eligible reports whether the tags allow this member to become primary automatically.
func (t Tags) Eligible() bool {
	return !t.NoFailover && (t.FailoverPriority == nil || *t.FailoverPriority > 0)
}

// SyncMode is synchronous_mode normalised: "off", "on" or "quorum".
func (d Dynamic) SyncMode() string {
	switch d.SynchronousMode {
	case "on", "quorum":
		return d.SynchronousMode
	}
	return "off"
}

// Priority is the failover priority (higher preferred at equal WAL position).
func (t Tags) Priority() int {
	if t.FailoverPriority != nil {
		return *t.FailoverPriority
	}
	return 1
}
