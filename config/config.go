// Package config holds tusker's configuration: Patroni's YAML dialect (a file or a directory of
// files), PATRONI_* environment overrides, defaults and validation with key paths.
package config

import "time"

// Config is the local configuration of one tusker node (Patroni's local YAML). decode.go fills it
// and names every Patroni key it reads, with its type and bounds; nothing decodes into these
// structs by reflection, so they carry no yaml tags.
type Config struct {
	Scope     string
	Namespace string // default "/service"
	Name      string

	Log        Log
	RestAPI    RestAPI
	Ctl        Ctl
	Etcd3      *Etcd // "etcd" is accepted as etcd v3 too and lands here
	Consul     *Consul
	ZooKeeper  *ZooKeeper
	Kubernetes *Kubernetes
	Bootstrap  Bootstrap
	PostgreSQL PostgreSQL
	Tags       Tags
	Watchdog   Watchdog

	// Unimplemented lists (sorted, unique) the key paths present in the input that tusker accepts
	// but does not act on yet, and unknown keys: the top-most such key only (for example "consul",
	// "watchdog", "restapi.certfile", "bootstrap.dcs.synchronous_mode"); free-form names under
	// parameters and tags are never listed. The daemon logs them once at start.
	Unimplemented []string
	// Source is the file or directory the configuration was read from ("PATRONI_CONFIGURATION"
	// or "environment" when it came from the environment alone).
	Source string

	// sources maps key paths to where their value came from ("at file:line", "from PATRONI_X"),
	// so that Validate can point at the offending line.
	sources map[string]string
	// etcdKey is the section name the etcd settings were read from ("etcd3" or "etcd"), used in
	// validation messages; "" means etcd3.
	etcdKey string
}

// Log is the "log" section.
type Log struct {
	Level string // DEBUG, INFO (default), WARNING, ERROR, CRITICAL; upper-cased by Load
	Type  string // plain (default) or json; lower-cased by Load
}

// RestAPI is the "restapi" section.
type RestAPI struct {
	Listen         string // host:port, required
	ConnectAddress string // host:port, required; published in api_url
	Authentication *Auth

	// TLS: with CertFile (and KeyFile, default CertFile) the API serves HTTPS. CAFile verifies
	// client certificates as VerifyClient asks ("none", the default, "optional": required on
	// unsafe methods, "required": on every request). Ciphers is an OpenSSL-style cipher list
	// restricting the TLS 1.2 suites.
	CertFile        string
	KeyFile         string
	KeyFilePassword string
	CAFile          string
	Ciphers         string
	VerifyClient    string

	// Allowlist restricts the unsafe (management) requests to these hosts, IPs or CIDRs;
	// AllowlistIncludeMembers adds the hosts of the members' api_url.
	Allowlist               []string
	AllowlistIncludeMembers bool

	// VerifyClientNames (tusker's) narrows verify_client to certificates whose common name or a
	// subject alternative name is in the list.
	VerifyClientNames []string
	// ProtectReads (tusker's) checks GET /patroni, /cluster, /history, /metrics, /config and
	// /failsafe like unsafe requests; health checks stay open. Off by default, as in Patroni.
	ProtectReads bool

	HTTPExtraHeaders  map[string]string
	HTTPSExtraHeaders map[string]string // added with TLS only
	// ServerTokens is the Server header: "Original" (Patroni's default; tusker sends "tusker"
	// without a version there too), "Minimal" ("tusker/<version>") or "ProductOnly" ("tusker").
	ServerTokens string
}

// Ctl is the "ctl" section: how tuskerctl (and patronictl) reach the members' REST APIs.
type Ctl struct {
	Insecure        bool // do not verify the server certificates
	CACert          string
	CertFile        string
	KeyFile         string
	KeyFilePassword string
	Authentication  *Auth
}

// Auth is a username/password pair.
type Auth struct {
	Username string
	Password string
}

// Etcd is the "etcd3" (or "etcd") section. Host, Hosts and URL are folded into Hosts ("h:p"
// each, deduplicated); Protocol is "http" (default) or "https", also taken from the scheme of
// url (or of a host given as a URL) when protocol is not set.
type Etcd struct {
	Hosts    []string
	Protocol string
	Username string
	Password string
	CACert   string
	Cert     string
	Key      string
}

// Bootstrap is the "bootstrap" section.
type Bootstrap struct {
	DCS           Dynamic
	Initdb        []string // normalised to initdb arguments: "--encoding=UTF8", "--data-checksums"
	PgHBA         []string
	PostBootstrap string // also "post_init"
	// Method is bootstrap.method ("" or "initdb": initdb); Custom is its section, nil for initdb
	// or when the section is missing (which Validate refuses).
	Method string
	Custom *BootstrapMethod
	// Users are created after the bootstrap (Patroni 3's bootstrap.users).
	Users []BootstrapUser
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

	// StandbyCluster, when Active, makes this cluster a standby of another (nil: none).
	StandbyCluster *StandbyCluster `json:"standby_cluster"`

	// Slots are the permanent replication slots (slots.go), IgnoreSlots the slots tusker never
	// touches, MemberSlotsTTL how long a member's slot outlives its member key (default 30 min).
	Slots          map[string]PermanentSlot `json:"slots"`
	IgnoreSlots    []SlotMatcher            `json:"ignore_slots"`
	MemberSlotsTTL time.Duration            `json:"member_slots_ttl"`

	Raw map[string]any `json:"-"`
}

// DynamicPostgreSQL is the "postgresql" subsection of the dynamic configuration.
type DynamicPostgreSQL struct {
	UsePgRewind bool           `json:"use_pg_rewind"` // default true (Patroni: false)
	UseSlots    bool           `json:"use_slots"`     // default true
	Parameters  map[string]any `json:"parameters"`
	PgHBA       []string       `json:"pg_hba"`
	// RecoveryConf are recovery settings for every replica; the local ones win.
	RecoveryConf map[string]any `json:"recovery_conf"`
}

// TimingDurations returns ttl, loop_wait and retry_timeout as durations.
func (d Dynamic) TimingDurations() (ttl, loopWait, retryTimeout time.Duration) {
	return time.Duration(d.TTL) * time.Second, time.Duration(d.LoopWait) * time.Second,
		time.Duration(d.RetryTimeout) * time.Second
}

// PostgreSQL is the local "postgresql" section.
type PostgreSQL struct {
	Listen         string // "host[,host...]:port", required
	ConnectAddress string // host:port, required; published in conn_url
	DataDir        string // required
	BinDir         string // "" = resolved at run time (not by this package)
	ConfigDir      string // default data_dir
	Pgpass         string // default DefaultPgpass(name): $HOME/.tusker/pgpass-<name>
	Authentication Authentication
	Parameters     map[string]any
	PgHBA          []string
	PgIdent        []string // pg_ident.conf lines after tusker's own map
	PgCtlTimeout   int      // seconds, default 60
	// RecoveryConf are recovery settings for a replica (restore_command, archive_cleanup_command,
	// recovery_min_apply_delay...); they win over the dynamic configuration's.
	RecoveryConf map[string]any
	// CreateReplicaMethods are the methods a replica is created with, in order (none:
	// basebackup alone); Basebackup the extra pg_basebackup options ("--max-rate=100M").
	CreateReplicaMethods []ReplicaMethod
	Basebackup           []string

	// Local overrides of dynamic keys (Patroni accepts these in the local section too).
	UsePgRewind                            *bool
	RemoveDataDirectoryOnRewindFailure     bool
	RemoveDataDirectoryOnDivergedTimelines bool

	Callbacks  Callbacks
	PrePromote string // command; a non-zero exit blocks the promotion
	BeforeStop string // command run before postgres is stopped
}

// Callbacks are the commands run after postgres events, as "<cmd> <action> <role> <scope>".
type Callbacks struct {
	OnStart      string
	OnStop       string
	OnRestart    string
	OnReload     string
	OnRoleChange string
}

// Watchdog is the "watchdog" section.
type Watchdog struct {
	Mode         string // off, automatic (default), required; normalised by Load
	Device       string // default /dev/watchdog
	SafetyMargin *int   // seconds; -1 means ttl/2; see EffectiveSafetyMargin
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
	Superuser   Auth // default username "postgres"
	Replication Auth // default username "replicator"
	Rewind      Auth // optional; superuser is used for pg_rewind when absent
}

// Tags are the member's tags. Extra holds user-defined tags (usable in ?tag_ filters).
type Tags struct {
	NoFailover       bool
	NoLoadBalance    bool
	CloneFrom        bool
	NoSync           bool
	FailoverPriority *int // 0 means nofailover; default 1
	SyncPriority     *int // 0 means nosync; default 1
	Extra            map[string]any
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
