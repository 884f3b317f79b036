package config

import (
	"bufio"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// keyPages are the pages whose key tables document the local configuration: configuration.md,
// and the DCS pages it leaves the consul, zookeeper and kubernetes keys to (dcs-etcd.md repeats
// the etcd3 keys).
var keyPages = []string{"configuration.md", "dcs-etcd.md", "dcs-consul.md", "dcs-zookeeper.md", "dcs-kubernetes.md"}

// docAliases are sections the documentation describes under another name: "etcd" is read as
// "etcd3" and documented once, as "`etcd3` (or `etcd`)".
var docAliases = map[string]string{"etcd": "etcd3"}

var (
	backticked = regexp.MustCompile("`([^`]*)`")
	keyToken   = regexp.MustCompile(`^\.?[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)
)

// docKeys returns the key paths in the first cell of the key tables of a Markdown page, with the
// page:line of each. A key table has "Key" as its first header cell and a default column (the
// Bounds table and the tables of what tusker writes into the DCS have none); rows cut off from
// their header by a paragraph are no table, as a Markdown renderer sees them. In the dynamic
// configuration section the keys are relative to bootstrap.dcs. A cell may name more keys than
// one: "`a.b.c`, `.d`" (a.b.d), "`a.b`, `a.c`", "`a.b` (also `c`)" (a.c, a sibling).
func docKeys(t *testing.T, page string) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "docs", page))
	require.NoError(t, err)
	defer f.Close()
	var lines []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		lines = append(lines, sc.Text())
	}
	out := map[string]string{}
	prefix, inKeyTable, inTable, inFence := "", false, false, false
	for i, line := range lines {
		at := page + ":" + strconv.Itoa(i+1)
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if inFence {
			continue // "# ..." in a code block is a comment, no heading
		}
		if strings.HasPrefix(line, "#") {
			if level := len(line) - len(strings.TrimLeft(line, "#")); level <= 2 {
				prefix = ""
				if strings.HasPrefix(strings.TrimSpace(line[level:]), "Dynamic configuration") {
					prefix = "bootstrap.dcs."
				}
			}
			continue
		}
		if !strings.HasPrefix(line, "|") {
			inTable, inKeyTable = false, false
			continue
		}
		cells := strings.Split(line, "|")
		if !inTable {
			inTable = true
			header := strings.ToLower(line)
			inKeyTable = strings.TrimSpace(cells[1]) == "Key" && strings.Contains(header, "default") &&
				i+1 < len(lines) && strings.HasPrefix(lines[i+1], "|---")
			continue
		}
		if !inKeyTable || strings.HasPrefix(line, "|---") {
			continue
		}
		first := ""
		for _, m := range backticked.FindAllStringSubmatch(cells[1], -1) {
			tok := m[1]
			require.Regexp(t, keyToken, tok, "%s: cannot read %q as a key path", at, cells[1])
			var key string
			switch {
			case first == "":
				require.False(t, strings.HasPrefix(tok, "."), "%s: %q starts with a relative key", at, cells[1])
				key = prefix + tok
				first = key
			case strings.HasPrefix(tok, "."):
				key = parentPath(first) + tok
			case !strings.Contains(tok, "."):
				key = joinPath(parentPath(first), tok)
			default:
				key = prefix + tok
			}
			out[key] = at
		}
	}
	return out
}

func parentPath(p string) string {
	if i := strings.LastIndex(p, "."); i >= 0 {
		return p[:i]
	}
	return ""
}

func TestKnownKeysCatalog(t *testing.T) {
	keys := knownKeys()
	assert.True(t, slices.IsSorted(keys))
	assert.Equal(t, keys, slices.Compact(slices.Clone(keys)))
	for _, k := range []string{"name", "restapi.listen", "restapi.authentication.username",
		"postgresql.authentication.rewind.password", "postgresql.callbacks.on_start", "postgresql.parameters",
		"bootstrap.dcs.ttl", "bootstrap.dcs.postgresql.use_slots", "tags.nofailover", "kubernetes.ports",
		"kubernetes.labels", "etcd.hosts", "etcd3.hosts", "watchdog.safety_margin"} {
		assert.Contains(t, keys, k)
	}
	for _, k := range []string{"restapi", "restapi.authentication", "bootstrap.dcs", "tags", "kubernetes.bypass_api_service"} {
		assert.NotContains(t, keys, k, "a section or a key the decoder reports as not implemented")
	}
	for _, k := range []string{"postgresql.recovery_conf", "bootstrap.dcs.postgresql.recovery_conf",
		"postgresql.create_replica_methods", "postgresql.basebackup", "bootstrap.method"} {
		assert.Contains(t, keys, k)
	}
	assert.True(t, isKnownSection("bootstrap.dcs"))
	assert.False(t, isKnownSection("postgresql.parameters"))
	assert.Empty(t, keyCatalog().unimpl)

	// Building the catalog must not leak into real decoding: an empty configuration still
	// reports nothing as unimplemented.
	d := newDecoder()
	decodeConfig(d, &node{kind: nullNode})
	assert.Empty(t, d.unimplementedList())
	assert.Empty(t, d.problems)
}

// TestEveryIntegerKeyIsBounded: an integer key whose handler is not an intKey row would reach a
// duration, a port or a count with no range check in Validate.
func TestEveryIntegerKeyIsBounded(t *testing.T) {
	c := keyCatalog()
	require.NotEmpty(t, c.integers)
	for _, k := range c.integers {
		assert.True(t, c.checked[k], "%s is decoded as an integer without an intKey row (intkeys.go): its range is never checked", k)
	}
	for _, k := range []string{"bootstrap.dcs.ttl", "bootstrap.dcs.master_start_timeout", "postgresql.pg_ctl_timeout",
		"watchdog.safety_margin", "tags.failover_priority", "consul.port", "bootstrap.dcs.maximum_lag_on_syncnode"} {
		assert.True(t, c.checked[k], k)
	}
}

// TestDocumentedKeysMatchCatalog holds the documentation's key tables to the decoder: every key
// it documents is one tusker implements, and every key tusker implements is documented.
func TestDocumentedKeysMatchCatalog(t *testing.T) {
	documented := map[string]string{}
	for _, page := range keyPages {
		for k, at := range docKeys(t, page) {
			documented[k] = at
		}
	}
	require.NotEmpty(t, documented)
	known := map[string]bool{}
	for _, k := range knownKeys() {
		known[k] = true
	}
	alias := func(k string) string {
		section, rest, _ := strings.Cut(k, ".")
		if to, ok := docAliases[section]; ok {
			return to + "." + rest
		}
		return k
	}
	for from, to := range docAliases {
		assert.Equal(t, prefixAll(to+".", keysUnder(from)), prefixAll(to+".", keysUnder(to)),
			"%s is documented as another name for %s, so it must have the same keys", from, to)
	}

	var notImplemented, notDocumented []string
	for k, at := range documented {
		if !known[k] && !isKnownSection(k) {
			notImplemented = append(notImplemented, k+" ("+at+")")
		}
	}
	for k := range known {
		if _, ok := documented[alias(k)]; !ok {
			notDocumented = append(notDocumented, k)
		}
	}
	slices.Sort(notImplemented)
	slices.Sort(notDocumented)
	assert.Empty(t, notImplemented, "documented keys the decoder does not implement (config/decode.go, config/dcs.go)")
	assert.Empty(t, notDocumented, "keys the decoder implements that no key table documents (docs/%s)",
		strings.Join(keyPages, ", docs/"))
}

// keysUnder returns the catalog keys of a section, without the section's name.
func keysUnder(section string) []string {
	var out []string
	for _, k := range knownKeys() {
		if rest, ok := strings.CutPrefix(k, section+"."); ok {
			out = append(out, rest)
		}
	}
	return out
}

// patroniOnlyKeys are the key paths PATRONI_* variables (but the DCS ones, see dcsSuffixes) land
// on that tusker does not implement on purpose: the decoder reports them, or the section holding
// them, as not implemented. A variable that lands anywhere else outside the catalog fails the
// test, so that a key renamed in the decoder, or a variable added to env.go, cannot go unnoticed.
func patroniOnlyKeys() []string {
	keys := []string{
		"thread_pool_size", "thread_stack_size", "raft",
		"restapi.request_queue_size", "restapi.thread_pool_size",
		"postgresql.proxy_address", "postgresql.bin_name",
		"log.traceback_level", "log.format", "log.dateformat", "log.static_fields", "log.max_queue_size",
		"log.dir", "log.mode", "log.file_num", "log.file_size", "log.loggers", "log.deduplicate_heartbeat_logs",
	}
	for _, role := range []string{"superuser", "replication", "rewind"} {
		for _, k := range []string{"sslmode", "sslkey", "sslpassword", "sslcert", "sslrootcert", "sslcrl",
			"sslcrldir", "sslnegotiation", "gssencmode", "channel_binding"} {
			keys = append(keys, "postgresql.authentication."+role+"."+k)
		}
	}
	return keys
}

// dcsSections are the sections the generic rule PATRONI_<DCS>_<SUFFIX> is checked for.
var dcsSections = []string{"etcd", "etcd3", "consul", "zookeeper", "kubernetes"}

// dcsSuffixes says, for every suffix of the generic DCS rule, which DCS sections implement it.
// The rule applies every suffix to every section, as Patroni's does, so PATRONI_CONSUL_LABELS
// sets consul.labels: in the other sections the key must be reported as not implemented. A suffix
// no section implements is a Patroni key tusker does not (its owner in the comment).
var dcsSuffixes = map[string]string{
	"HOST": "etcd etcd3 consul", "HOSTS": "etcd etcd3 zookeeper", "PORT": "consul",
	"URL": "etcd etcd3 consul", "PROTOCOL": "etcd etcd3", "SCHEME": "consul",
	// Patroni's keys of etcd that tusker does not implement.
	"USE_PROXIES": "", "SRV": "", "SRV_SUFFIX": "", "PROXY": "",
	"CACERT": "etcd etcd3 consul zookeeper kubernetes", "CERT": "etcd etcd3 consul zookeeper",
	"KEY": "etcd etcd3 consul zookeeper", "KEY_PASSWORD": "zookeeper", "VERIFY": "consul zookeeper",
	"TOKEN": "consul", "CHECKS": "consul", "DC": "consul", "CONSISTENCY": "consul",
	"REGISTER_SERVICE": "consul", "SERVICE_CHECK_INTERVAL": "consul",
	"SERVICE_CHECK_TLS_SERVER_NAME": "consul", "SERVICE_TAGS": "consul",
	"USE_SSL": "zookeeper", "SET_ACLS": "zookeeper", "AUTH_DATA": "zookeeper",
	"NAMESPACE": "kubernetes", "CONTEXT": "kubernetes", "USE_ENDPOINTS": "kubernetes",
	"USE_LEASES": "kubernetes", "SCOPE_LABEL": "kubernetes", "ROLE_LABEL": "kubernetes",
	"LEADER_LABEL_VALUE": "kubernetes", "FOLLOWER_LABEL_VALUE": "kubernetes",
	"STANDBY_LEADER_LABEL_VALUE": "kubernetes", "TMP_ROLE_LABEL": "kubernetes",
	"POD_IP": "kubernetes", "PORTS": "kubernetes", "LABELS": "kubernetes",
	"BOOTSTRAP_LABELS": "kubernetes", "RETRIABLE_HTTP_CODES": "kubernetes",
	// Patroni's keys of kubernetes and citus that tusker does not implement.
	"BYPASS_API_SERVICE": "", "GROUP": "", "DATABASE": "",
}

// envVar is a variable applyEnv reads; dcs and suffix are set for the generic DCS rule.
type envVar struct{ name, dcs, suffix string }

// envVariables returns every PATRONI_* variable applyEnv reads into a key (one name for the
// open-ended PATRONI_POSTGRESQL_BIN_<PROGRAM>).
func envVariables() []envVar {
	var vars []envVar
	for _, n := range []string{"NAME", "NAMESPACE", "SCOPE", "THREAD_POOL_SIZE", "THREAD_STACK_SIZE",
		"LOGLEVEL", "LOGFORMAT", "LOG_DATEFMT", "POSTGRESQL_BIN_PG_CTL"} {
		vars = append(vars, envVar{name: envPrefix + n})
	}
	add := func(section string, params ...string) {
		for _, p := range params {
			vars = append(vars, envVar{name: envPrefix + section + "_" + p})
		}
	}
	add("RESTAPI", envRestAPI...)
	add("RESTAPI", "USERNAME", "PASSWORD")
	add("CTL", envCtl...)
	add("CTL", "USERNAME", "PASSWORD")
	add("POSTGRESQL", envPostgreSQL...)
	add("LOG", envLog...)
	add("RAFT", envRaft...)
	for _, role := range envRoles {
		add(role, envAuth...)
	}
	add("ETCD", "USERNAME", "PASSWORD")
	add("ETCD3", "USERNAME", "PASSWORD")
	for _, dcs := range dcsSections {
		for _, suffix := range envDCSSuffixes {
			vars = append(vars, envVar{envPrefix + strings.ToUpper(dcs) + "_" + suffix, dcs, suffix})
		}
	}
	return vars
}

// leafPaths returns the paths of the values (anything but a map) in the tree.
func leafPaths(path string, n *node) []string {
	if n.kind != mapNode {
		return []string{path}
	}
	var out []string
	for _, k := range n.keys {
		out = append(out, leafPaths(joinPath(path, k), n.m[k])...)
	}
	return out
}

// TestEnvVariablesLandOnKnownKeys holds env.go to the catalog: every variable it reads sets a
// key the decoder implements, or one that the test names as not implemented on purpose and that
// the decoder then reports.
func TestEnvVariablesLandOnKnownKeys(t *testing.T) {
	known := map[string]bool{}
	for _, k := range knownKeys() {
		known[k] = true
	}
	patroniOnly := map[string]bool{}
	for _, k := range patroniOnlyKeys() {
		require.False(t, patroniOnly[k], "%s is listed twice", k)
		require.False(t, known[k], "%s is in the catalog: it is no Patroni-only key", k)
		patroniOnly[k] = true
	}
	assert.ElementsMatch(t, envDCSSuffixes, slices.Collect(maps.Keys(dcsSuffixes)),
		"dcsSuffixes must say which sections implement each suffix of envDCSSuffixes")

	used := map[string]bool{}
	var stray []string
	for _, v := range envVariables() {
		root := newMapNode("")
		applyEnv(root, map[string]string{v.name: "x"})
		paths := leafPaths("", root)
		if !assert.Len(t, paths, 1, "%s must set one key", v.name) {
			continue
		}
		path := paths[0]
		d := newDecoder()
		decodeConfig(d, root)
		unimpl := d.unimplementedList()
		wantKnown := known[path]
		if v.dcs != "" {
			wantKnown = slices.Contains(strings.Fields(dcsSuffixes[v.suffix]), v.dcs)
		}
		switch {
		case wantKnown && known[path] && len(unimpl) == 0:
		case wantKnown:
			stray = append(stray, v.name+" -> "+path+": not in the catalog")
		case v.dcs != "" && slices.Equal(unimpl, []string{path}):
		case v.dcs == "" && len(unimpl) == 1 && patroniOnly[unimpl[0]] &&
			(unimpl[0] == path || strings.HasPrefix(path, unimpl[0]+".")):
			used[unimpl[0]] = true
		default:
			stray = append(stray, v.name+" -> "+path+" (reported as not implemented: "+strings.Join(unimpl, ", ")+")")
		}
	}
	assert.Empty(t, stray, "variables that do not set the key they should (see patroniOnlyKeys and dcsSuffixes)")
	var unused []string
	for k := range patroniOnly {
		if !used[k] {
			unused = append(unused, k)
		}
	}
	slices.Sort(unused)
	assert.Empty(t, unused, "patroniOnlyKeys no variable lands on (remove them)")
}
