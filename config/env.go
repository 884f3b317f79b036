package config

import (
	"slices"
	"sort"
	"strings"
)

// EnvConfiguration is the variable holding a whole YAML configuration; when set it replaces the
// configuration file and the other PATRONI_* variables are ignored.
const EnvConfiguration = "PATRONI_CONFIGURATION"

const envPrefix = "PATRONI_"

// Parameters Patroni reads from PATRONI_<SECTION>_<PARAM> (section 3.2 of the reference). The
// ones tusker does not implement still land in the tree so that they are reported.
//
// Every key of restapi, ctl and log can be set from the environment, so their lists are the
// decoder's keys (the catalog) plus the Patroni parameters tusker does not implement; a new key
// that takes a list or a map must still be named in applyEnv to be read as YAML. The other lists
// stay written out: Patroni reads only some postgresql keys from the environment, and the generic
// DCS rule applies its suffixes to any section name. keys_test.go holds all of them to the
// catalog.
var (
	envRestAPI = sectionParams("restapi", "REQUEST_QUEUE_SIZE", "THREAD_POOL_SIZE")
	envCtl     = sectionParams("ctl")
	envLog     = sectionParams("log", "TRACEBACK_LEVEL", "FORMAT", "DATEFORMAT", "STATIC_FIELDS",
		"MAX_QUEUE_SIZE", "DIR", "MODE", "FILE_NUM", "FILE_SIZE", "LOGGERS", "DEDUPLICATE_HEARTBEAT_LOGS")
	envPostgreSQL = []string{"LISTEN", "CONNECT_ADDRESS", "PROXY_ADDRESS", "CONFIG_DIR", "DATA_DIR",
		"PGPASS", "BIN_DIR"}
	envRaft  = []string{"DATA_DIR", "SELF_ADDR", "PARTNER_ADDRS", "PASSWORD", "BIND_ADDR"}
	envRoles = []string{"SUPERUSER", "REPLICATION", "REWIND"}
	envAuth  = []string{"USERNAME", "PASSWORD", "SSLMODE", "SSLKEY", "SSLPASSWORD", "SSLCERT",
		"SSLROOTCERT", "SSLCRL", "SSLCRLDIR", "SSLNEGOTIATION", "GSSENCMODE", "CHANNEL_BINDING"}
	// Suffixes of the generic DCS rule PATRONI_<DCS>_<SUFFIX> -> <dcs>.<suffix>.
	envDCSSuffixes = []string{"HOST", "HOSTS", "PORT", "USE_PROXIES", "PROTOCOL", "SRV", "SRV_SUFFIX",
		"URL", "PROXY", "CACERT", "CERT", "KEY", "VERIFY", "TOKEN", "CHECKS", "DC", "CONSISTENCY",
		"REGISTER_SERVICE", "SERVICE_CHECK_INTERVAL", "SERVICE_CHECK_TLS_SERVER_NAME", "SERVICE_TAGS",
		"NAMESPACE", "CONTEXT", "USE_ENDPOINTS", "SCOPE_LABEL", "ROLE_LABEL", "POD_IP", "PORTS", "LABELS",
		"BYPASS_API_SERVICE", "RETRIABLE_HTTP_CODES", "KEY_PASSWORD", "USE_SSL", "SET_ACLS", "GROUP",
		"DATABASE", "LEADER_LABEL_VALUE", "FOLLOWER_LABEL_VALUE", "STANDBY_LEADER_LABEL_VALUE",
		"TMP_ROLE_LABEL", "AUTH_DATA", "BOOTSTRAP_LABELS", "SCHEME", "USE_LEASES"}
	// DCS suffixes whose value is YAML (a list or a map) rather than a plain string.
	envDCSStructured = []string{"HOSTS", "PORTS", "LABELS", "CHECKS", "SERVICE_TAGS",
		"RETRIABLE_HTTP_CODES", "AUTH_DATA", "BOOTSTRAP_LABELS", "SET_ACLS"}
	// Section names the generic DCS rule must not claim.
	envNotDCS = []string{"RESTAPI", "CTL", "POSTGRESQL", "LOG", "RAFT", "SUPERUSER", "REPLICATION",
		"REWIND", "THREAD"}
)

// IsSecretEnv reports whether the environment variable called name holds a secret that tusker
// reads and that no process it starts may inherit: PATRONI_CONFIGURATION (a whole configuration,
// passwords included) and every PATRONI_* variable whose name contains PASSWORD (the roles',
// the REST API's, ctl's, the DCS's, KEYFILE_PASSWORD, SSLPASSWORD, KEY_PASSWORD) or TOKEN (Consul's)
// or AUTH_DATA (ZooKeeper's digest credentials). Other PATRONI_* variables (names, addresses,
// paths) are no secret: callbacks may use them, as with Patroni.
func IsSecretEnv(name string) bool {
	rest, ok := strings.CutPrefix(name, envPrefix)
	if !ok {
		return false
	}
	if name == EnvConfiguration {
		return true
	}
	rest = strings.ToUpper(rest)
	return strings.Contains(rest, "PASSWORD") || strings.Contains(rest, "TOKEN") || strings.Contains(rest, "AUTH_DATA")
}

// SecretEnvNames returns the names of the variables in env ("KEY=value" entries) that
// IsSecretEnv reports, in the order of env, each once.
func SecretEnvNames(env []string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if IsSecretEnv(name) && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// envMap turns "K=V" entries into a map (later entries win).
func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// applyEnv sets the PATRONI_* variables over the tree (the environment wins over the file).
// Empty variables are ignored, as Patroni does.
func applyEnv(root *node, env map[string]string) {
	names := make([]string, 0, len(env))
	for k := range env {
		if strings.HasPrefix(k, envPrefix) && k != EnvConfiguration {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	lower := strings.ToLower
	for _, name := range names {
		value := env[name]
		if strings.TrimSpace(value) == "" {
			continue
		}
		src := "from " + name
		str := stringNode(value, src)
		rest := strings.TrimPrefix(name, envPrefix)
		switch rest {
		case "NAME", "NAMESPACE", "SCOPE", "THREAD_POOL_SIZE", "THREAD_STACK_SIZE":
			root.setPath(str, lower(rest))
			continue
		case "LOGLEVEL", "LOGFORMAT", "LOG_DATEFMT": // legacy names
			key := map[string]string{"LOGLEVEL": "LEVEL", "LOGFORMAT": "FORMAT", "LOG_DATEFMT": "DATEFORMAT"}[rest]
			if env[envPrefix+"LOG_"+key] == "" {
				root.setPath(str, "log", lower(key))
			}
			continue
		}
		section, param, ok := strings.Cut(rest, "_")
		if !ok || param == "" {
			continue
		}
		switch {
		case section == "RESTAPI" && (param == "USERNAME" || param == "PASSWORD"):
			root.setPath(str, "restapi", "authentication", lower(param))
		case section == "RESTAPI" && slices.Contains(envRestAPI, param):
			v := str
			if param == "ALLOWLIST" || param == "VERIFY_CLIENT_NAMES" || strings.HasSuffix(param, "_EXTRA_HEADERS") {
				v = structuredEnv(name, value)
			}
			root.setPath(v, "restapi", lower(param))
		case section == "CTL" && (param == "USERNAME" || param == "PASSWORD"):
			root.setPath(str, "ctl", "authentication", lower(param))
		case section == "CTL" && slices.Contains(envCtl, param):
			root.setPath(str, "ctl", lower(param))
		case section == "POSTGRESQL" && slices.Contains(envPostgreSQL, param):
			root.setPath(str, "postgresql", lower(param))
		case section == "POSTGRESQL" && strings.HasPrefix(param, "BIN_"):
			root.setPath(str, "postgresql", "bin_name", lower(strings.TrimPrefix(param, "BIN_")))
		case section == "LOG" && slices.Contains(envLog, param):
			root.setPath(str, "log", lower(param))
		case section == "RAFT" && slices.Contains(envRaft, param):
			root.setPath(str, "raft", lower(param))
		case slices.Contains(envRoles, section) && slices.Contains(envAuth, param):
			root.setPath(str, "postgresql", "authentication", lower(section), lower(param))
		case (section == "ETCD" || section == "ETCD3") && (param == "USERNAME" || param == "PASSWORD"):
			root.setPath(str, lower(section), lower(param))
		case !slices.Contains(envNotDCS, section) && slices.Contains(envDCSSuffixes, param):
			v := str
			if slices.Contains(envDCSStructured, param) {
				v = structuredEnv(name, value)
			}
			root.setPath(v, lower(section), lower(param))
		}
	}
}

// structuredEnv parses a variable holding a YAML list or map ("[a:1, b:2]", "a: b"); anything
// else (including a comma-separated "h1:2379,h2:2379") stays a plain string.
func structuredEnv(name, value string) *node {
	n, err := parseYAML(name, []byte(value), true)
	if err == nil && (n.kind == listNode || n.kind == mapNode) {
		return n
	}
	return stringNode(strings.TrimSpace(value), "from "+name)
}
