package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// minimal is the smallest valid configuration.
const minimal = `
scope: batman
name: node1
restapi:
  listen: 127.0.0.1:8008
etcd3:
  host: 127.0.0.1:2379
postgresql:
  listen: 127.0.0.1:5432
  data_dir: /var/lib/postgresql/data
`

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// loadYAML loads minimal merged with extra (a second file of a directory) and no environment.
func loadYAML(t *testing.T, extra string) (*Config, error) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "00-base.yml", minimal)
	if extra != "" {
		writeFile(t, dir, "10-test.yml", extra)
	}
	return LoadWithEnv(dir, nil)
}

// problemsOf returns the problems of a *ValidationError (failing the test for any other error).
func problemsOf(t *testing.T, err error) []string {
	t.Helper()
	require.Error(t, err)
	var verr *ValidationError
	require.True(t, errors.As(err, &verr), "not a *ValidationError: %v", err)
	return verr.Problems
}

func TestLoadPatroniFile(t *testing.T) {
	c, err := LoadWithEnv("testdata/postgres0.yml", nil)
	require.NoError(t, err)

	assert.Equal(t, "testdata/postgres0.yml", c.Source)
	assert.Equal(t, "batman", c.Scope)
	assert.Equal(t, "/service/", c.Namespace)
	assert.Equal(t, "postgresql0", c.Name)
	assert.Equal(t, Log{Level: "INFO", Type: "plain"}, c.Log)

	assert.Equal(t, "127.0.0.1:8008", c.RestAPI.Listen)
	assert.Equal(t, "127.0.0.1:8008", c.RestAPI.ConnectAddress)
	require.NotNil(t, c.RestAPI.Authentication)
	assert.Equal(t, Auth{Username: "username", Password: "password"}, *c.RestAPI.Authentication)

	require.NotNil(t, c.Etcd3)
	assert.Equal(t, []string{"127.0.0.1:2379", "127.0.0.2:2379", "127.0.0.3:2379"}, c.Etcd3.Hosts)
	assert.Equal(t, "http", c.Etcd3.Protocol)

	dcs := c.Bootstrap.DCS
	assert.Equal(t, 30, dcs.TTL)
	assert.Equal(t, 10, dcs.LoopWait)
	assert.Equal(t, 10, dcs.RetryTimeout)
	assert.Equal(t, int64(1048576), dcs.MaximumLagOnFailover)
	assert.Equal(t, 120, dcs.PrimaryStartTimeout, "master_start_timeout is an alias")
	assert.False(t, dcs.CheckTimeline)
	assert.False(t, dcs.Pause)
	assert.True(t, dcs.PostgreSQL.UsePgRewind)
	assert.True(t, dcs.PostgreSQL.UseSlots)
	assert.Equal(t, []string{"host replication replicator 127.0.0.1/32 md5", "host all all 0.0.0.0/0 md5"},
		dcs.PostgreSQL.PgHBA)
	assert.Equal(t, "hot_standby", dcs.PostgreSQL.Parameters["wal_level"])
	assert.Equal(t, "on", dcs.PostgreSQL.Parameters["hot_standby"])
	assert.Equal(t, 100, dcs.PostgreSQL.Parameters["max_connections"])
	assert.Equal(t, 0.9, dcs.PostgreSQL.Parameters["checkpoint_completion_target"])
	assert.Equal(t, "1800s", dcs.PostgreSQL.Parameters["archive_timeout"])
	assert.Len(t, dcs.PostgreSQL.Parameters, 15)
	// Raw keeps the whole subtree, unknown keys included.
	assert.Equal(t, false, dcs.Raw["synchronous_mode"])
	assert.Equal(t, map[string]any{"permanent_logical_1": map[string]any{
		"type": "logical", "database": "foo", "plugin": "pgoutput"}}, dcs.Raw["slots"])
	assert.Equal(t, 120, dcs.Raw["master_start_timeout"])

	assert.Equal(t, []string{"--encoding=UTF8", "--data-checksums", "--locale=en_US.UTF-8"}, c.Bootstrap.Initdb)
	assert.Equal(t, []string{"host replication replicator 127.0.0.1/32 md5", "host all all 0.0.0.0/0 md5"},
		c.Bootstrap.PgHBA)
	assert.Equal(t, "/usr/local/bin/setup_cluster.sh", c.Bootstrap.PostBootstrap)

	pg := c.PostgreSQL
	assert.Equal(t, "127.0.0.1,::1:5432", pg.Listen)
	hosts, port, err := c.ListenHosts()
	require.NoError(t, err)
	assert.Equal(t, []string{"127.0.0.1", "::1"}, hosts)
	assert.Equal(t, 5432, port)
	assert.Equal(t, "127.0.0.1:5432", pg.ConnectAddress)
	assert.Equal(t, "data/postgresql0", pg.DataDir)
	assert.Equal(t, "data/postgresql0", pg.ConfigDir, "config_dir defaults to data_dir")
	assert.Equal(t, "/usr/lib/postgresql/16/bin", pg.BinDir)
	assert.Equal(t, "/tmp/pgpass0", pg.Pgpass)
	assert.Equal(t, Authentication{
		Superuser:   Auth{Username: "postgres", Password: "zalando"},
		Replication: Auth{Username: "replicator", Password: "rep-pass"},
		Rewind:      Auth{Username: "rewind_user", Password: "rewind_password"},
	}, pg.Authentication)
	assert.Equal(t, map[string]any{
		"unix_socket_directories":    "..",
		"shared_buffers":             "128MB",
		"max_connections":            100,
		"log_min_duration_statement": 250,
		"jit":                        "off",
		"random_page_cost":           1.1,
		"my_extension.enabled":       true,
	}, pg.Parameters)
	assert.Equal(t, []string{"local all all trust", "host replication replicator all md5", "host all all all md5"},
		pg.PgHBA)
	assert.Equal(t, 90, pg.PgCtlTimeout)
	require.NotNil(t, pg.UsePgRewind)
	assert.False(t, *pg.UsePgRewind)
	assert.False(t, c.EffectiveUsePgRewind(dcs), "the local use_pg_rewind overrides the dynamic one")
	assert.True(t, pg.RemoveDataDirectoryOnRewindFailure)
	assert.False(t, pg.RemoveDataDirectoryOnDivergedTimelines)
	assert.Equal(t, Callbacks{OnStart: "/usr/local/bin/callback.sh", OnRoleChange: "/usr/local/bin/callback.sh"}, pg.Callbacks)
	assert.Equal(t, "automatic", c.Watchdog.Mode)
	assert.Equal(t, "/dev/watchdog", c.Watchdog.Device)
	assert.Equal(t, 5, c.Watchdog.EffectiveSafetyMargin(30))

	assert.Equal(t, Tags{
		CloneFrom: true,
		Extra:     map[string]any{"nostream": false, "datacenter": "eu-west-1a", "rack": 7},
	}, c.Tags)
	assert.True(t, c.Tags.Eligible())

	assert.Equal(t, []string{
		"log.dir",
		"log.file_num",
		"log.file_size",
		"log.format",
		"log.traceback_level",
		"postgresql.authentication.superuser.sslmode",
		"postgresql.proxy_address",
		"tags.nostream",
	}, c.Unimplemented)
	assert.Empty(t, dcs.Unimplemented())
	assert.Equal(t, map[string]PermanentSlot{"permanent_logical_1": {Type: "logical", Database: "foo", Plugin: "pgoutput"}}, dcs.Slots)
}

func prefixAll(prefix string, l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = prefix + s
	}
	return out
}

func TestLoadDirectoryMerged(t *testing.T) {
	c, err := LoadWithEnv("testdata/confdir", nil)
	require.NoError(t, err)
	assert.Equal(t, "testdata/confdir", c.Source)
	assert.Equal(t, "batman", c.Scope, "kept from the first file")
	assert.Equal(t, "node2", c.Name, "the later file wins")
	assert.Equal(t, "0.0.0.0:8008", c.RestAPI.Listen)
	assert.Equal(t, "10.0.0.2:8008", c.RestAPI.ConnectAddress)
	assert.Equal(t, "10.0.0.2:5432", c.PostgreSQL.ConnectAddress)
	assert.Equal(t, "/var/lib/postgresql/data", c.PostgreSQL.DataDir)
	assert.Equal(t, map[string]any{"work_mem": "4MB"}, c.PostgreSQL.Parameters)
	assert.Equal(t, []string{"10.0.0.10:2379", "10.0.0.11:2379"}, c.Etcd3.Hosts, "comma-separated hosts")
	d := c.Bootstrap.DCS
	assert.Equal(t, [3]int{20, 2, 3}, [3]int{d.TTL, d.LoopWait, d.RetryTimeout}, "dcs maps are deep-merged")
	assert.Equal(t, map[string]any{"max_connections": 200, "shared_buffers": "2GB"}, d.PostgreSQL.Parameters)
	assert.Equal(t, 300, d.PrimaryStartTimeout, "unset keys keep tusker's defaults")
	assert.Empty(t, c.Unimplemented, "watchdog was removed by null in the later file")
	assert.Equal(t, DefaultPgpass("node2"), c.PostgreSQL.Pgpass)
}

func TestLoadDirectoryWithoutYAML(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "notes.txt", "scope: x\n")
	_, err := LoadWithEnv(dir, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no *.yml or *.yaml file")
}

func TestLoadMissingFile(t *testing.T) {
	_, err := LoadWithEnv(filepath.Join(t.TempDir(), "nope.yml"), nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestGarbageYAML(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "bad.yml", "scope: batman\nname: node1\nrestapi: [listen: 1\n  foo: bar\n")
	_, err := LoadWithEnv(p, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), p)
	assert.Regexp(t, `line [0-9]+`, err.Error())

	p = writeFile(t, dir, "tab.yml", "scope: batman\nrestapi:\n\tlisten: x\n")
	_, err = LoadWithEnv(p, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), p)
	assert.Contains(t, err.Error(), "line 3")

	// In a directory the offending file is named too.
	sub := t.TempDir()
	writeFile(t, sub, "00-ok.yml", minimal)
	bad := writeFile(t, sub, "50-bad.yaml", "a: b\n  c: d\n")
	_, err = LoadWithEnv(sub, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), bad)
	assert.Contains(t, err.Error(), "line 2")

	p = writeFile(t, dir, "list.yml", "- a\n- b\n")
	_, err = LoadWithEnv(p, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "top level must be a map")
}

func TestWrongTypesNameKeyPath(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"listen list", "restapi:\n  listen: [a, b]\n  connect_address: 127.0.0.1:8008\n", `restapi.listen: expected a string "host:port", got a list`},
		{"ttl word", "bootstrap:\n  dcs:\n    ttl: abc\n", `bootstrap.dcs.ttl: expected an integer number of seconds, got "abc"`},
		{"loop_wait float", "bootstrap:\n  dcs:\n    loop_wait: 1.5\n", `bootstrap.dcs.loop_wait: expected an integer number of seconds, got 1.5`},
		{"use_slots word", "bootstrap:\n  dcs:\n    postgresql:\n      use_slots: maybe\n", `bootstrap.dcs.postgresql.use_slots: expected a boolean`},
		{"lag map", "bootstrap:\n  dcs:\n    maximum_lag_on_failover: {a: 1}\n", `bootstrap.dcs.maximum_lag_on_failover: expected an integer number of bytes, got a map`},
		{"nofailover", "tags:\n  nofailover: perhaps\n", `tags.nofailover: expected a boolean (true/false, yes/no, on/off), got "perhaps"`},
		{"priority negative", "tags:\n  failover_priority: -1\n", `tags.failover_priority: must be an integer >= 0, got -1`},
		{"priority word", "tags:\n  failover_priority: high\n", `tags.failover_priority: expected an integer >= 0, got "high"`},
		{"parameter list", "postgresql:\n  parameters:\n    shared_preload_libraries: [a, b]\n", `postgresql.parameters.shared_preload_libraries: expected a string, number or boolean, got a list`},
		{"parameters list", "postgresql:\n  parameters: [a]\n", `postgresql.parameters: expected a map of parameter names to values, got a list`},
		{"hosts map", "etcd3:\n  hosts: {a: b}\n", `etcd3.hosts: expected a list of "host:port" or a comma-separated string, got a map`},
		{"host list", "etcd3:\n  host: [a]\n  hosts: [127.0.0.1:2379]\n", `etcd3.host: expected a string "host:port", got a list`},
		{"section scalar", "restapi: oops\n", `restapi: expected a map of settings, got "oops"`},
		{"pg_hba item", "bootstrap:\n  pg_hba:\n  - {a: b}\n", `bootstrap.pg_hba[0]: expected a string, got a map`},
		{"pg_hba string", "postgresql:\n  pg_hba: local all all trust\n", `postgresql.pg_hba: expected a list of pg_hba.conf lines, got "local all all trust"`},
		{"pg_ctl_timeout", "postgresql:\n  pg_ctl_timeout: soon\n", `postgresql.pg_ctl_timeout: expected an integer number of seconds, got "soon"`},
		{"use_pg_rewind", "postgresql:\n  use_pg_rewind: [true]\n", `postgresql.use_pg_rewind: expected a boolean`},
		{"superuser", "postgresql:\n  authentication:\n    superuser: postgres\n", `postgresql.authentication.superuser: expected a map of settings, got "postgres"`},
		{"name", "name: [a]\n", `name: expected a string, got a list`},
		{"tags list", "tags: [a]\n", `tags: expected a map of tags, got a list`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadYAML(t, tc.yaml)
			problems := problemsOf(t, err)
			require.Len(t, problems, 1, "%q", problems)
			assert.True(t, strings.HasPrefix(problems[0], tc.want), "got %q, want prefix %q", problems[0], tc.want)
			// The problem points at the file and line.
			assert.Regexp(t, `\(at .*10-test\.yml:[0-9]+\)$`, problems[0])
		})
	}
}

func TestLaxForms(t *testing.T) {
	c, err := loadYAML(t, `
etcd3: null
etcd:
  host: 10.0.0.1:2379
  hosts: "10.0.0.2:2379, 10.0.0.3:2379"
  url: https://10.0.0.4:2379
  username: root
  password: "1234"
bootstrap:
  dcs:
    ttl: "20"
    loop_wait: 5.0
    retry_timeout: '4'
    maximum_lag_on_failover: "0"
    check_timeline: yes
    pause: "on"
    primary_start_timeout: 0
    master_start_timeout: 99
    postgresql:
      use_pg_rewind: "true"
      use_slots: off
tags:
  nosync: "no"
  noloadbalance: 1
  clonefrom: "Y"
  failover_priority: "3"
postgresql:
  pg_ctl_timeout: "30"
  use_pg_rewind: "yes"
  remove_data_directory_on_diverged_timelines: "on"
`)
	require.NoError(t, err)
	require.NotNil(t, c.Etcd3)
	assert.Equal(t, []string{"10.0.0.2:2379", "10.0.0.3:2379", "10.0.0.1:2379", "10.0.0.4:2379"}, c.Etcd3.Hosts)
	assert.Equal(t, "https", c.Etcd3.Protocol, "taken from the url")
	assert.Equal(t, "1234", c.Etcd3.Password)
	d := c.Bootstrap.DCS
	assert.Equal(t, 20, d.TTL)
	assert.Equal(t, 5, d.LoopWait)
	assert.Equal(t, 4, d.RetryTimeout)
	assert.Equal(t, int64(0), d.MaximumLagOnFailover)
	assert.True(t, d.CheckTimeline)
	assert.True(t, d.Pause)
	assert.Equal(t, 0, d.PrimaryStartTimeout, "primary_start_timeout wins over master_start_timeout")
	assert.True(t, d.PostgreSQL.UsePgRewind)
	assert.False(t, d.PostgreSQL.UseSlots)
	assert.False(t, c.Tags.NoSync)
	assert.True(t, c.Tags.NoLoadBalance)
	assert.True(t, c.Tags.CloneFrom)
	require.NotNil(t, c.Tags.FailoverPriority)
	assert.Equal(t, 3, *c.Tags.FailoverPriority)
	assert.Equal(t, 30, c.PostgreSQL.PgCtlTimeout)
	require.NotNil(t, c.PostgreSQL.UsePgRewind)
	assert.True(t, *c.PostgreSQL.UsePgRewind)
	assert.True(t, c.PostgreSQL.RemoveDataDirectoryOnDivergedTimelines)
	// The base file's etcd3 section was removed by null, so only "etcd" remains.
	assert.Empty(t, c.Unimplemented)
}

func TestYAMLAnchorsAndMergeKeys(t *testing.T) {
	c, err := loadYAML(t, `
x-common: &common
  loop_wait: 2
  retry_timeout: 3
bootstrap:
  dcs:
    <<: *common
    ttl: 10
    retry_timeout: 4
`)
	require.NoError(t, err)
	d := c.Bootstrap.DCS
	assert.Equal(t, [3]int{10, 2, 4}, [3]int{d.TTL, d.LoopWait, d.RetryTimeout})
	assert.Equal(t, []string{"x-common"}, c.Unimplemented)
}

func TestEtcdAndEtcd3Folded(t *testing.T) {
	c, err := loadYAML(t, "etcd:\n  hosts: [127.0.0.1:2379, 10.0.0.9:2379]\n  protocol: https\n")
	require.NoError(t, err)
	assert.Equal(t, []string{"127.0.0.1:2379", "10.0.0.9:2379"}, c.Etcd3.Hosts)
	assert.Equal(t, "https", c.Etcd3.Protocol)
}

func TestOtherDCSSections(t *testing.T) {
	dir := t.TempDir()
	noEtcd := func(dcs string) string {
		return strings.Replace(minimal, "etcd3:\n  host: 127.0.0.1:2379\n", dcs, 1)
	}
	p := writeFile(t, dir, "two.yml", noEtcd("consul:\n  host: 127.0.0.1:8500\nkubernetes:\n  namespace: db\n"))
	_, err := LoadWithEnv(p, nil)
	prefixes(t, problemsOf(t, err), "kubernetes: only one DCS section may be configured, found consul and kubernetes (at "+p)

	p = writeFile(t, dir, "raft.yml", noEtcd("raft:\n  data_dir: /x\n"))
	_, err = LoadWithEnv(p, nil)
	assert.Equal(t, []string{"raft: this DCS is not supported by tusker (supported: etcd3, consul, zookeeper, kubernetes)"}, problemsOf(t, err))

	p = writeFile(t, dir, "none.yml", noEtcd(""))
	_, err = LoadWithEnv(p, nil)
	problems := problemsOf(t, err)
	require.Len(t, problems, 1)
	assert.True(t, strings.HasPrefix(problems[0], "etcd3: required"), problems[0])

	p = writeFile(t, dir, "both.yml", minimal+"zookeeper:\n  hosts: [a:2181]\n")
	_, err = LoadWithEnv(p, nil)
	problems = problemsOf(t, err)
	require.Len(t, problems, 1)
	assert.True(t, strings.HasPrefix(problems[0], "zookeeper: only one DCS section may be configured, found etcd3 and zookeeper"), problems[0])

	p = writeFile(t, dir, "consul.yml", noEtcd(`consul:
  url: https://consul.example:8501
  token: secret
  verify: false
  dc: dc2
  consistency: stale
  checks: [serfHealth]
  register_service: true
  service_tags: [pg, prod]
  service_check_interval: 7s
`))
	c, err := LoadWithEnv(p, nil)
	require.NoError(t, err)
	require.Equal(t, "consul", c.DCSName())
	addr, scheme, err := c.Consul.Address()
	require.NoError(t, err)
	assert.Equal(t, "consul.example:8501", addr)
	assert.Equal(t, "https", scheme)
	assert.False(t, *c.Consul.Verify)
	assert.Equal(t, 7*time.Second, c.Consul.ServiceCheckInterval)
	assert.Equal(t, []string{"pg", "prod"}, c.Consul.ServiceTags)
	assert.Equal(t, "stale", c.Consul.Consistency)
	assert.Empty(t, c.Unimplemented)

	c, err = LoadWithEnv(writeFile(t, dir, "consul2.yml", noEtcd("consul:\n  host: agent\n  port: 8600\n")), nil)
	require.NoError(t, err)
	addr, scheme, _ = c.Consul.Address()
	assert.Equal(t, "agent:8600", addr)
	assert.Equal(t, "http", scheme)

	p = writeFile(t, dir, "zk.yml", noEtcd(`zookeeper:
  hosts: ['zk1:2181', 'zk2:2181']
  use_ssl: true
  set_acls:
    CN=principal1: [ALL]
    'digest:admin:abc=': [READ, write]
  auth_data:
    digest: admin:pw
`))
	c, err = LoadWithEnv(p, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"zk1:2181", "zk2:2181"}, c.ZooKeeper.Hosts)
	assert.Equal(t, map[string][]string{"CN=principal1": {"ALL"}, "digest:admin:abc=": {"READ", "write"}}, c.ZooKeeper.SetACLs)
	assert.Equal(t, map[string]string{"digest": "admin:pw"}, c.ZooKeeper.AuthData)

	p = writeFile(t, dir, "k8s.yml", noEtcd(`kubernetes:
  namespace: db
  labels: {app: pg}
  use_endpoints: true
  ports: [{name: postgresql, port: 5432}]
`))
	_, err = LoadWithEnv(p, nil)
	prefixes(t, problemsOf(t, err), "kubernetes.pod_ip: required with use_endpoints")
	c, err = LoadWithEnv(p, []string{"PATRONI_KUBERNETES_POD_IP=10.0.0.5", "PATRONI_KUBERNETES_RETRIABLE_HTTP_CODES=[429, 503]",
		"PATRONI_KUBERNETES_USE_LEASES=false", "PATRONI_KUBERNETES_BOOTSTRAP_LABELS={init: 'true'}"})
	require.NoError(t, err)
	k := c.Kubernetes
	assert.Equal(t, "10.0.0.5", k.PodIP)
	assert.Equal(t, []int{429, 503}, k.RetriableHTTPCodes)
	assert.Equal(t, []KubePort{{Name: "postgresql", Port: 5432}}, k.Ports)
	assert.Equal(t, map[string]string{"app": "pg"}, k.Labels)
	assert.Equal(t, map[string]string{"init": "true"}, k.BootstrapLabels)

	_, err = LoadWithEnv(writeFile(t, dir, "bad.yml", noEtcd(`kubernetes:
  use_endpoints: true
  use_leases: true
  pod_ip: 10.0.0.1
  ports: [{name: pg, port: 70000}]
  retriable_http_codes: [5000]
`)), nil)
	prefixes(t, problemsOf(t, err),
		"kubernetes.use_leases: cannot be combined with kubernetes.use_endpoints: choose where the leader lock lives",
		"kubernetes.ports[0].port: expected a port number 1-65535, got 70000",
		"kubernetes.retriable_http_codes[0]: expected an HTTP status code, got 5000")
	_, err = LoadWithEnv(writeFile(t, dir, "badc.yml", noEtcd("consul:\n  consistency: eventual\n  service_check_interval: soon\n")), nil)
	problems = problemsOf(t, err)
	require.Len(t, problems, 2, strings.Join(problems, "\n"))
	assert.Contains(t, problems[0], "consul.service_check_interval: expected a duration")
	assert.Contains(t, problems[1], `consul.consistency: expected default, consistent or stale, got "eventual"`)
}

// prefixes checks that problems are exactly want, each up to its "(at file:line)" suffix.
func prefixes(t *testing.T, problems []string, want ...string) {
	t.Helper()
	require.Len(t, problems, len(want), strings.Join(problems, "\n"))
	for i, w := range want {
		assert.True(t, strings.HasPrefix(problems[i], w), "problem %d: got %q, want prefix %q", i, problems[i], w)
	}
}

func TestMissingDataDir(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "c.yml", strings.Replace(minimal, "  data_dir: /var/lib/postgresql/data\n", "", 1))
	_, err := LoadWithEnv(p, nil)
	assert.Equal(t, []string{"postgresql.data_dir: required: the PostgreSQL data directory"}, problemsOf(t, err))
}

func TestLoopWaitRule(t *testing.T) {
	_, err := loadYAML(t, "bootstrap:\n  dcs:\n    ttl: 6\n    loop_wait: 2\n    retry_timeout: 3\n")
	problems := problemsOf(t, err)
	require.Len(t, problems, 1)
	assert.True(t, strings.HasPrefix(problems[0],
		"bootstrap.dcs.loop_wait: loop_wait + 2*retry_timeout must be <= ttl, got 2 + 2*3 = 8 > ttl 6"), problems[0])

	// Exactly on the limit is fine, and nothing is adjusted.
	c, err := loadYAML(t, "bootstrap:\n  dcs:\n    ttl: 8\n    loop_wait: 2\n    retry_timeout: 3\n")
	require.NoError(t, err)
	d := c.Bootstrap.DCS
	assert.Equal(t, [3]int{8, 2, 3}, [3]int{d.TTL, d.LoopWait, d.RetryTimeout})
}

func TestMultipleProblemsReportedTogether(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "c.yml", `
name: a/b
restapi:
  listen: 0.0.0.0:99999
raft:
  data_dir: x
bootstrap:
  dcs:
    ttl: 1
    loop_wait: 0
    retry_timeout: x
  initdb:
  - pgdata: /tmp/x
postgresql:
  listen: 127.0.0.1
tags:
  nofailover: true
  failover_priority: 2
`)
	_, err := LoadWithEnv(p, nil)
	problems := problemsOf(t, err)
	want := []string{
		"bootstrap.dcs.retry_timeout: expected an integer number of seconds",
		"bootstrap.initdb[0]: initdb option \"pgdata\" is not allowed",
		"tags.failover_priority: cannot be combined with tags.nofailover",
		"name: \"a/b\" must not contain \"/\"",
		"scope: required",
		"restapi.listen: \"0.0.0.0:99999\" is not host:port: port 99999 out of range 1-65535",
		"raft: this DCS is not supported by tusker",
		"bootstrap.dcs.ttl: must be at least 2 seconds, got 1",
		"bootstrap.dcs.loop_wait: must be at least 1 second, got 0",
		"postgresql.data_dir: required",
		"postgresql.listen: \"127.0.0.1\" is not \"host[,host...]:port\": missing port",
	}
	require.Len(t, problems, len(want), strings.Join(problems, "\n"))
	for i, w := range want {
		assert.True(t, strings.HasPrefix(problems[i], w), "problem %d: got %q, want prefix %q", i, problems[i], w)
	}
	// The message lists them one per line after a header naming the source.
	lines := strings.Split(err.Error(), "\n")
	assert.Contains(t, lines[0], p)
	assert.Len(t, lines, len(want)+1)
	for i, l := range lines[1:] {
		assert.Equal(t, "  "+problems[i], l)
	}
}

func TestEnvOverrides(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "c.yml", minimal+"log:\n  level: DEBUG\n")
	tlsPem := writeFile(t, dir, "tls.pem", "")
	env := []string{
		"HOME=/root",
		"PATRONI_NAME=envnode",
		"PATRONI_NAMESPACE=/envns",
		"PATRONI_SCOPE=envscope",
		"PATRONI_RESTAPI_LISTEN=0.0.0.0:9008",
		"PATRONI_RESTAPI_CONNECT_ADDRESS=10.1.1.1:9008",
		"PATRONI_RESTAPI_USERNAME=admin",
		"PATRONI_RESTAPI_PASSWORD=secret",
		"PATRONI_POSTGRESQL_LISTEN=0.0.0.0:6432",
		"PATRONI_POSTGRESQL_CONNECT_ADDRESS=10.1.1.1:6432",
		"PATRONI_POSTGRESQL_DATA_DIR=/data/pg",
		"PATRONI_POSTGRESQL_BIN_DIR=/usr/pgsql/bin",
		"PATRONI_POSTGRESQL_CONFIG_DIR=/etc/pg",
		"PATRONI_POSTGRESQL_PGPASS=/run/pgpass",
		"PATRONI_SUPERUSER_USERNAME=su",
		"PATRONI_SUPERUSER_PASSWORD=supass",
		"PATRONI_REPLICATION_USERNAME=repl",
		"PATRONI_REPLICATION_PASSWORD=replpass",
		"PATRONI_REWIND_USERNAME=rw",
		"PATRONI_REWIND_PASSWORD=rwpass",
		"PATRONI_LOG_LEVEL=warning",
		"PATRONI_LOG_TYPE=json",
		"PATRONI_ETCD3_HOSTS=['10.2.0.1:2379', '10.2.0.2:2379']",
		"PATRONI_ETCD3_PROTOCOL=https",
		"PATRONI_ETCD3_USERNAME=etcduser",
		"PATRONI_ETCD3_PASSWORD=etcdpass",
		"PATRONI_ETCD3_CACERT=/ca.pem",
		"PATRONI_ETCD3_CERT=/cert.pem",
		"PATRONI_ETCD3_KEY=/key.pem",
		"PATRONI_RESTAPI_CERTFILE=" + tlsPem,
		"PATRONI_RESTAPI_ALLOWLIST=[10.0.0.0/8, db.example.com]",
		"PATRONI_RESTAPI_HTTP_EXTRA_HEADERS={X-Frame-Options: SAMEORIGIN}",
		"PATRONI_CTL_INSECURE=true",
		"PATRONI_CTL_USERNAME=ctluser",
		"PATRONI_SUPERUSER_SSLMODE=require",
		"PATRONI_EMPTY_HOST=",
	}
	c, err := LoadWithEnv(p, env)
	require.NoError(t, err)
	assert.Equal(t, "envnode", c.Name)
	assert.Equal(t, "/envns", c.Namespace)
	assert.Equal(t, "envscope", c.Scope)
	assert.Equal(t, RestAPI{Listen: "0.0.0.0:9008", ConnectAddress: "10.1.1.1:9008",
		Authentication: &Auth{Username: "admin", Password: "secret"}, CertFile: tlsPem,
		Allowlist:        []string{"10.0.0.0/8", "db.example.com"},
		HTTPExtraHeaders: map[string]string{"X-Frame-Options": "SAMEORIGIN"}}, c.RestAPI)
	assert.Equal(t, Ctl{Insecure: true, Authentication: &Auth{Username: "ctluser"}}, c.Ctl)
	pg := c.PostgreSQL
	assert.Equal(t, "0.0.0.0:6432", pg.Listen)
	assert.Equal(t, "10.1.1.1:6432", pg.ConnectAddress)
	assert.Equal(t, "/data/pg", pg.DataDir)
	assert.Equal(t, "/usr/pgsql/bin", pg.BinDir)
	assert.Equal(t, "/etc/pg", pg.ConfigDir)
	assert.Equal(t, "/run/pgpass", pg.Pgpass)
	assert.Equal(t, Authentication{
		Superuser:   Auth{Username: "su", Password: "supass"},
		Replication: Auth{Username: "repl", Password: "replpass"},
		Rewind:      Auth{Username: "rw", Password: "rwpass"},
	}, pg.Authentication)
	assert.Equal(t, Log{Level: "WARNING", Type: "json"}, c.Log)
	assert.Equal(t, &Etcd{
		Hosts:    []string{"10.2.0.1:2379", "10.2.0.2:2379", "127.0.0.1:2379"}, // env hosts + file host
		Protocol: "https", Username: "etcduser", Password: "etcdpass",
		CACert: "/ca.pem", Cert: "/cert.pem", Key: "/key.pem",
	}, c.Etcd3)
	assert.Equal(t, []string{"postgresql.authentication.superuser.sslmode"}, c.Unimplemented)
}

func TestEnvOnlyConfiguration(t *testing.T) {
	env := []string{
		"PATRONI_NAME=pod-0",
		"PATRONI_SCOPE=demo",
		"PATRONI_RESTAPI_LISTEN=10.0.0.5:8008",
		"PATRONI_POSTGRESQL_LISTEN=10.0.0.5:5432",
		"PATRONI_POSTGRESQL_DATA_DIR=/home/postgres/pgdata",
		"PATRONI_ETCD_HOSTS=etcd-0:2379,etcd-1:2379",
		"PATRONI_ETCD_PROTOCOL=https",
		"PATRONI_ETCD_USERNAME=u",
		"PATRONI_ETCD_PASSWORD=p",
		"PATRONI_ETCD_CACERT=/ca",
		"PATRONI_ETCD_CERT=/c",
		"PATRONI_ETCD_KEY=/k",
	}
	c, err := LoadWithEnv("", env)
	require.NoError(t, err)
	assert.Equal(t, "environment", c.Source)
	assert.Equal(t, "pod-0", c.Name)
	assert.Equal(t, "10.0.0.5:8008", c.RestAPI.ConnectAddress, "defaults to the listen address")
	assert.Equal(t, "10.0.0.5:5432", c.PostgreSQL.ConnectAddress, "defaults to the listen address")
	assert.Equal(t, &Etcd{Hosts: []string{"etcd-0:2379", "etcd-1:2379"}, Protocol: "https",
		Username: "u", Password: "p", CACert: "/ca", Cert: "/c", Key: "/k"}, c.Etcd3)

	// A single host from PATRONI_ETCD3_HOST.
	env = append(env[:5], "PATRONI_ETCD3_HOST=127.0.0.1:2379")
	c, err = LoadWithEnv("", env)
	require.NoError(t, err)
	assert.Equal(t, &Etcd{Hosts: []string{"127.0.0.1:2379"}, Protocol: "http"}, c.Etcd3)

	// Not enough variables: every missing key is reported.
	_, err = LoadWithEnv("", []string{"PATRONI_NAME=x"})
	problems := problemsOf(t, err)
	assert.Contains(t, problems, "scope: required: the name of the cluster")
	assert.Contains(t, problems, "postgresql.data_dir: required: the PostgreSQL data directory")
}

func TestEnvWrongTypeNamesVariable(t *testing.T) {
	_, err := LoadWithEnv("", []string{
		"PATRONI_NAME=x", "PATRONI_SCOPE=y",
		"PATRONI_RESTAPI_LISTEN=127.0.0.1:8008",
		"PATRONI_POSTGRESQL_LISTEN=127.0.0.1:5432",
		"PATRONI_POSTGRESQL_DATA_DIR=/d",
		"PATRONI_ETCD3_HOSTS={a: b}",
	})
	// "etcd3.hosts: required" is not repeated: the key already has a problem.
	assert.Equal(t, []string{
		`etcd3.hosts: expected a list of "host:port" or a comma-separated string, got a map (from PATRONI_ETCD3_HOSTS)`,
	}, problemsOf(t, err))
}

func TestPatroniConfiguration(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "ignored.yml", "scope: from-file\n")
	doc := strings.Replace(minimal, "name: node1", "name: from-env-doc", 1)
	c, err := LoadWithEnv(p, []string{
		"PATRONI_CONFIGURATION=" + doc,
		"PATRONI_NAME=ignored",                 // disabled by PATRONI_CONFIGURATION
		"PATRONI_RESTAPI_LISTEN=1.2.3.4:1",     // idem
		"PATRONI_POSTGRESQL_DATA_DIR=/ignored", // idem
	})
	require.NoError(t, err)
	assert.Equal(t, "PATRONI_CONFIGURATION", c.Source)
	assert.Equal(t, "from-env-doc", c.Name)
	assert.Equal(t, "batman", c.Scope)
	assert.Equal(t, "127.0.0.1:8008", c.RestAPI.Listen)
	assert.Equal(t, "/var/lib/postgresql/data", c.PostgreSQL.DataDir)

	// With no path at all.
	c, err = LoadWithEnv("", []string{"PATRONI_CONFIGURATION=" + doc})
	require.NoError(t, err)
	assert.Equal(t, "from-env-doc", c.Name)

	// Garbage in the variable names it and the line.
	_, err = LoadWithEnv("", []string{"PATRONI_CONFIGURATION=scope: a\nname: [b\n"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "PATRONI_CONFIGURATION")
	assert.Contains(t, err.Error(), "line")
}

func TestLoadUsesProcessEnvironment(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "c.yml", minimal)
	t.Setenv("PATRONI_NAME", "from-process-env")
	t.Setenv("PATRONI_CONFIGURATION", "")
	c, err := Load(p)
	require.NoError(t, err)
	assert.Equal(t, "from-process-env", c.Name)
}

func TestInitdbForms(t *testing.T) {
	c, err := loadYAML(t, `
bootstrap:
  initdb:
  - data-checksums
  - encoding: UTF8
  - --auth-host=scram-sha-256
  - locale: en_US.UTF-8
  - wal-segsize: 64
`)
	require.NoError(t, err)
	assert.Equal(t, []string{"--data-checksums", "--encoding=UTF8", "--auth-host=scram-sha-256",
		"--locale=en_US.UTF-8", "--wal-segsize=64"}, c.Bootstrap.Initdb)

	c, err = loadYAML(t, "bootstrap:\n  initdb:\n    encoding: UTF8\n    data-checksums: true\n    nosync-off: false\n")
	require.NoError(t, err)
	assert.Equal(t, []string{"--encoding=UTF8", "--data-checksums"}, c.Bootstrap.Initdb, "map form, in file order")

	for _, opt := range disallowedInitdb {
		_, err = loadYAML(t, "bootstrap:\n  initdb:\n  - encoding: UTF8\n  - "+opt+"\n")
		problems := problemsOf(t, err)
		require.Len(t, problems, 1)
		assert.True(t, strings.HasPrefix(problems[0], `bootstrap.initdb[1]: initdb option "`+opt+`" is not allowed`),
			problems[0])
	}
	_, err = loadYAML(t, "bootstrap:\n  initdb:\n    pgdata: /x\n")
	problems := problemsOf(t, err)
	require.Len(t, problems, 1)
	assert.True(t, strings.HasPrefix(problems[0], `bootstrap.initdb.pgdata: initdb option "pgdata" is not allowed`),
		problems[0])

	_, err = loadYAML(t, "bootstrap:\n  initdb:\n  - {a: 1, b: 2}\n")
	problems = problemsOf(t, err)
	require.Len(t, problems, 1)
	assert.True(t, strings.HasPrefix(problems[0], `bootstrap.initdb[0]: expected one option`), problems[0])
}

func TestBootstrapKeys(t *testing.T) {
	c, err := loadYAML(t, "bootstrap:\n  method: wal_e\n  wal_e:\n    command: x\n  users:\n    admin: {password: pw, options: [createrole, 'connection limit 5', \"valid until '2030-01-01'\"]}\n"+
		"  post_init: /bin/init.sh\n")
	require.NoError(t, err)
	assert.Equal(t, "/bin/init.sh", c.Bootstrap.PostBootstrap, "post_init is the old name of post_bootstrap")
	assert.Empty(t, c.Unimplemented, "bootstrap.wal_e is the method's section")
	assert.Equal(t, []BootstrapUser{{Name: "admin", Password: "pw", Options: []string{"CREATEROLE", "CONNECTION LIMIT 5",
		"VALID UNTIL '2030-01-01'"}}}, c.Bootstrap.Users)
	_, err = loadYAML(t, "bootstrap:\n  users:\n    admin:\n      options: [\"createdb; DROP TABLE x\"]\n")
	checkProblems(t, problemsOf(t, err), "", `bootstrap.users.admin.options[0]: "createdb; DROP TABLE x" is not a role option`)
	require.NotNil(t, c.Bootstrap.Custom)
	assert.Equal(t, BootstrapMethod{Name: "wal_e", Command: "x"}, *c.Bootstrap.Custom)
	assert.Equal(t, DefaultDynamic(), c.Bootstrap.DCS, "no bootstrap.dcs: the defaults")
}

func TestTags(t *testing.T) {
	c, err := loadYAML(t, "tags:\n  failover_priority: 0\n  replicatefrom: node3\n  zone: a\n  weight: 2.5\n")
	require.NoError(t, err)
	require.NotNil(t, c.Tags.FailoverPriority)
	assert.False(t, c.Tags.Eligible(), "failover_priority 0 is nofailover")
	assert.Equal(t, map[string]any{"replicatefrom": "node3", "zone": "a", "weight": 2.5}, c.Tags.Extra)
	assert.Equal(t, map[string]any{"replicatefrom": "node3", "zone": "a", "weight": 2.5, "failover_priority": 0},
		c.Tags.Map())
	assert.Empty(t, c.Unimplemented, "user tags are not listed; replicatefrom is implemented")

	_, err = loadYAML(t, "tags:\n  nofailover: false\n  failover_priority: 1\n")
	problems := problemsOf(t, err)
	require.Len(t, problems, 1)
	assert.True(t, strings.HasPrefix(problems[0], "tags.failover_priority: cannot be combined with tags.nofailover"),
		problems[0])
}

func TestFreeFormKeysNotReported(t *testing.T) {
	c, err := loadYAML(t, `
postgresql:
  parameters:
    some_unknown_guc: 1
    pg_stat_statements.track: all
bootstrap:
  dcs:
    postgresql:
      parameters:
        another_unknown_guc: "x"
tags:
  anything: goes
`)
	require.NoError(t, err)
	assert.Empty(t, c.Unimplemented)
}

func TestNameRules(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{ReservedName, `name: "` + ReservedName + `" is reserved`},
		{"a/b", `name: "a/b" must not contain "/"`},
		{`""`, "name: required"},
	} {
		_, err := loadYAML(t, "name: "+tc.name+"\n")
		problems := problemsOf(t, err)
		require.Len(t, problems, 1, problems)
		assert.True(t, strings.HasPrefix(problems[0], tc.want), "got %q want %q", problems[0], tc.want)
	}
}

func TestDefaults(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	c, err := loadYAML(t, "name: \"node 1:x\"\n")
	require.NoError(t, err)
	assert.Equal(t, "/service", c.Namespace)
	assert.Equal(t, "127.0.0.1:8008", c.RestAPI.ConnectAddress)
	assert.Equal(t, "127.0.0.1:5432", c.PostgreSQL.ConnectAddress)
	assert.Equal(t, "", c.PostgreSQL.BinDir, "resolved at run time")
	assert.Equal(t, "/var/lib/postgresql/data", c.PostgreSQL.ConfigDir)
	assert.Equal(t, filepath.Join(home, ".tusker", "pgpass-node_1_x"), c.PostgreSQL.Pgpass)
	assert.Equal(t, "postgres", c.PostgreSQL.Authentication.Superuser.Username)
	assert.Equal(t, "replicator", c.PostgreSQL.Authentication.Replication.Username)
	assert.Equal(t, "", c.PostgreSQL.Authentication.Rewind.Username)
	assert.Equal(t, 60, c.PostgreSQL.PgCtlTimeout)
	assert.Equal(t, Log{Level: "INFO", Type: "plain"}, c.Log)
	assert.Equal(t, "http", c.Etcd3.Protocol)
	assert.Nil(t, c.PostgreSQL.UsePgRewind)
	assert.Equal(t, DefaultDynamic(), c.Bootstrap.DCS)
	assert.True(t, c.EffectiveUsePgRewind(c.Bootstrap.DCS), "tusker rewinds by default")

	// Wildcard listen addresses give no connect_address default.
	_, err = loadYAML(t, "restapi:\n  listen: 0.0.0.0:8008\npostgresql:\n  listen: '*:5432'\n")
	problems := problemsOf(t, err)
	require.Len(t, problems, 2, problems)
	assert.True(t, strings.HasPrefix(problems[0], "restapi.connect_address: required"), problems[0])
	assert.True(t, strings.HasPrefix(problems[1], "postgresql.connect_address: required"), problems[1])

	// The first specific host of a multi-host listen is used.
	c, err = loadYAML(t, "postgresql:\n  listen: 0.0.0.0,::1:5433\n")
	require.NoError(t, err)
	assert.Equal(t, "[::1]:5433", c.PostgreSQL.ConnectAddress)
}

func TestApplyDefaultsOnHandBuiltConfig(t *testing.T) {
	c := &Config{Name: "n", Scope: "s",
		RestAPI:    RestAPI{Listen: "127.0.0.1:8008"},
		Etcd3:      &Etcd{Hosts: []string{"127.0.0.1:2379"}},
		PostgreSQL: PostgreSQL{Listen: "127.0.0.1:5432", DataDir: "/d"},
	}
	require.Error(t, c.Validate(), "no defaults yet: ttl 0, pg_ctl_timeout 0, ...")
	c.ApplyDefaults()
	require.NoError(t, c.Validate())
	assert.Equal(t, DefaultDynamic(), c.Bootstrap.DCS)

	// A dynamic configuration set by hand is kept as it is.
	c.Bootstrap.DCS = Dynamic{TTL: 10, LoopWait: 2, RetryTimeout: 4}
	c.ApplyDefaults()
	assert.Equal(t, Dynamic{TTL: 10, LoopWait: 2, RetryTimeout: 4}, c.Bootstrap.DCS)
}

func TestConnectAddressValidation(t *testing.T) {
	_, err := loadYAML(t, "restapi:\n  connect_address: 0.0.0.0:8008\npostgresql:\n  connect_address: db1\n")
	problems := problemsOf(t, err)
	require.Len(t, problems, 2, problems)
	assert.True(t, strings.HasPrefix(problems[0], `restapi.connect_address: "0.0.0.0:8008" must name a host`), problems[0])
	assert.True(t, strings.HasPrefix(problems[1], `postgresql.connect_address: "db1" is not host:port`), problems[1])

	_, err = loadYAML(t, "etcd3:\n  hosts: [etcd1, 'etcd2:x']\n  protocol: ftp\n  cert: /c\n")
	problems = problemsOf(t, err)
	assert.Len(t, problems, 4, problems)
	assert.True(t, strings.HasPrefix(problems[0], `etcd3.hosts[0]: "etcd1" is not host:port`), problems[0])
	assert.True(t, strings.HasPrefix(problems[1], `etcd3.hosts[1]: "etcd2:x" is not host:port`), problems[1])
	assert.True(t, strings.HasPrefix(problems[2], `etcd3.protocol: expected http or https, got "ftp"`), problems[2])
	assert.True(t, strings.HasPrefix(problems[3], `etcd3.cert: etcd3.cert and etcd3.key must be set together`), problems[3])

	_, err = loadYAML(t, "restapi:\n  authentication:\n    username: u\n")
	problems = problemsOf(t, err)
	assert.Equal(t, []string{"restapi.authentication.password: required when restapi.authentication is set"}, problems)
}

func TestValidationErrorWithoutSource(t *testing.T) {
	c := &Config{}
	err := c.Validate()
	var verr *ValidationError
	require.True(t, errors.As(err, &verr))
	assert.Empty(t, verr.Source)
	assert.Equal(t, strings.Join(verr.Problems, "\n"), err.Error())
	for _, l := range strings.Split(err.Error(), "\n") {
		assert.Regexp(t, `^[a-z0-9_.\[\]]+: `, l)
	}
}

func TestEtcdSections(t *testing.T) {
	// Both sections: folded, etcd3 first and winning for single values.
	c, err := loadYAML(t, "etcd:\n  hosts: [127.0.0.1:2379, 10.0.0.9:2379]\n  protocol: https\n  username: e\n")
	require.NoError(t, err)
	assert.Equal(t, &Etcd{Hosts: []string{"127.0.0.1:2379", "10.0.0.9:2379"}, Protocol: "https", Username: "e"},
		c.Etcd3)

	c, err = loadYAML(t, "etcd3:\n  protocol: http\netcd:\n  protocol: https\n")
	require.NoError(t, err)
	assert.Equal(t, "http", c.Etcd3.Protocol)

	// Problems in an "etcd" section are named after it.
	_, err = loadYAML(t, "etcd3: null\netcd:\n  hosts: [nohost]\n")
	problems := problemsOf(t, err)
	require.Len(t, problems, 1, problems)
	assert.True(t, strings.HasPrefix(problems[0], `etcd.hosts[0]: "nohost" is not host:port`), problems[0])

	// A url whose scheme contradicts protocol.
	_, err = loadYAML(t, "etcd3:\n  protocol: http\n  url: https://10.0.0.1:2379\n")
	problems = problemsOf(t, err)
	require.Len(t, problems, 1, problems)
	assert.True(t, strings.HasPrefix(problems[0], `etcd3.url: scheme of "https://10.0.0.1:2379" conflicts with protocol "http"`),
		problems[0])

	// Hosts given as URLs set the protocol.
	c, err = loadYAML(t, "etcd3:\n  host: null\n  hosts: https://e1:2379,https://e2:2379\n")
	require.NoError(t, err)
	assert.Equal(t, &Etcd{Hosts: []string{"e1:2379", "e2:2379"}, Protocol: "https"}, c.Etcd3)
}

func TestEnvLegacyAndUnimplementedVariables(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "c.yml", minimal)
	c, err := LoadWithEnv(p, []string{
		"PATRONI_LOGLEVEL=debug",
		"PATRONI_POSTGRESQL_BIN_PG_CTL=/opt/pg_ctl",
		"PATRONI_CTL_INSECURE=true",
		"PATRONI_CITUS_GROUP=1",
		"PATRONI_THREAD_POOL_SIZE=10",
		"PATRONI_RAFT_SELF_ADDR=x:1",
		"PATRONI_WATCHDOG_MODE=off",       // not a Patroni variable: ignored
		"PATRONI_POSTGRESQL_PARAMETERS=x", // idem
		"PATRONI_SCOPE=   ",               // blank: ignored
	})
	require.NoError(t, err)
	assert.Equal(t, "DEBUG", c.Log.Level)
	assert.Equal(t, "batman", c.Scope)
	assert.Equal(t, []string{"citus", "postgresql.bin_name", "raft", "thread_pool_size"}, c.Unimplemented)

	// PATRONI_LOG_LEVEL wins over the legacy name.
	c, err = LoadWithEnv(p, []string{"PATRONI_LOGLEVEL=debug", "PATRONI_LOG_LEVEL=error"})
	require.NoError(t, err)
	assert.Equal(t, "ERROR", c.Log.Level)
}

func TestWatchdogAndHooks(t *testing.T) {
	base := "scope: s\nname: n\nrestapi: {listen: 127.0.0.1:8008}\netcd3: {host: 127.0.0.1:2379}\n" +
		"postgresql: {listen: 127.0.0.1:5432, data_dir: /d, pre_promote: /bin/fence, before_stop: '/bin/drain --now'}\n"
	for _, tc := range []struct {
		yaml, mode string
		margin     int // for ttl 6
		problem    string
	}{
		{yaml: "", mode: "automatic", margin: 3},
		{yaml: "watchdog: {mode: off}", mode: "off", margin: 3},
		{yaml: "watchdog: {mode: false}", mode: "off", margin: 3},
		{yaml: "watchdog: {mode: true}", mode: "automatic", margin: 3},
		{yaml: "watchdog: {mode: Required, safety_margin: -1}", mode: "required", margin: -1},
		{yaml: "watchdog: {mode: sometimes}", problem: `watchdog.mode: expected off, automatic or required, got "sometimes"`},
		{yaml: "watchdog: {safety_margin: soon}", problem: "watchdog.safety_margin: expected an integer"},
	} {
		t.Run(tc.yaml, func(t *testing.T) {
			c, err := LoadWithEnv(writeFile(t, t.TempDir(), "c.yml", base+tc.yaml), nil)
			if tc.problem != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.problem)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.mode, c.Watchdog.Mode)
			assert.Equal(t, tc.margin, c.Watchdog.EffectiveSafetyMargin(6))
			assert.Equal(t, "/bin/fence", c.PostgreSQL.PrePromote)
			assert.Equal(t, "/bin/drain --now", c.PostgreSQL.BeforeStop)
			assert.Empty(t, c.Unimplemented)
		})
	}
}

func TestRestAPISecurityAndCtlSections(t *testing.T) {
	dir := t.TempDir()
	cert := writeFile(t, dir, "cert.pem", "")
	key := writeFile(t, dir, "key.pem", "")
	ca := writeFile(t, dir, "ca.pem", "")
	c, err := loadYAML(t, `restapi:
  certfile: `+cert+`
  keyfile: `+key+`
  keyfile_password: hunter2
  cafile: `+ca+`
  ciphers: ECDHE-RSA-AES256-GCM-SHA384
  verify_client: Optional
  allowlist: 127.0.0.1, 10.0.0.0/8, ::1
  allowlist_include_members: true
  http_extra_headers: {X-Frame-Options: SAMEORIGIN}
  https_extra_headers: {Strict-Transport-Security: max-age=31536000}
  server_tokens: Minimal
ctl:
  insecure: yes
  cacert: /ca
  certfile: /c
  keyfile: /k
  authentication: {username: u, password: p}
`)
	require.NoError(t, err)
	r := c.RestAPI
	assert.Equal(t, cert, r.CertFile)
	assert.Equal(t, key, r.KeyFile)
	assert.Equal(t, "hunter2", r.KeyFilePassword)
	assert.Equal(t, ca, r.CAFile)
	assert.Equal(t, "ECDHE-RSA-AES256-GCM-SHA384", r.Ciphers)
	assert.Equal(t, "optional", r.VerifyClient)
	assert.Equal(t, []string{"127.0.0.1", "10.0.0.0/8", "::1"}, r.Allowlist)
	assert.True(t, r.AllowlistIncludeMembers)
	assert.Equal(t, map[string]string{"X-Frame-Options": "SAMEORIGIN"}, r.HTTPExtraHeaders)
	assert.Equal(t, map[string]string{"Strict-Transport-Security": "max-age=31536000"}, r.HTTPSExtraHeaders)
	assert.Equal(t, "Minimal", r.ServerTokens)
	assert.Equal(t, Ctl{Insecure: true, CACert: "/ca", CertFile: "/c", KeyFile: "/k",
		Authentication: &Auth{Username: "u", Password: "p"}}, c.Ctl)
	assert.Empty(t, c.Unimplemented)

	_, err = loadYAML(t, `restapi:
  keyfile: /nonexistent/key.pem
  verify_client: sometimes
  allowlist: [10.0.0.0/33, "bad host"]
  server_tokens: Full
  http_extra_headers: {"Bad Header": x}
`)
	p := problemsOf(t, err)
	for _, want := range []string{
		"restapi.keyfile: set without restapi.certfile",
		"restapi.keyfile: stat /nonexistent/key.pem: no such file or directory",
		`restapi.verify_client: expected none, optional or required, got "sometimes"`,
		`restapi.allowlist[0]: "10.0.0.0/33" is not a valid CIDR`,
		`restapi.allowlist[1]: "bad host" is neither a host name, an IP address nor a CIDR`,
		`restapi.server_tokens: expected Original, Minimal or ProductOnly, got "Full"`,
		"restapi.http_extra_headers.Bad Header: not a valid HTTP header",
	} {
		assert.True(t, slices.ContainsFunc(p, func(s string) bool { return strings.HasPrefix(s, want) }),
			"missing %q in %q", want, p)
	}

	_, err = loadYAML(t, "restapi:\n  verify_client: required\n")
	assert.Contains(t, strings.Join(problemsOf(t, err), "\n"),
		`restapi.verify_client: "required" needs restapi.cafile to verify client certificates with`)
}

func TestLoadCtl(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "ctl.yml", "etcd3:\n  hosts: 127.0.0.1:2379\nctl:\n  insecure: true\n")
	c, err := LoadCtl(p, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"127.0.0.1:2379"}, c.Etcd3.Hosts)
	assert.Equal(t, "/service", c.Namespace)
	assert.True(t, c.Ctl.Insecure)

	// A member's whole file is a ctl file too.
	c, err = LoadCtl(writeFile(t, dir, "member.yml", minimal), nil)
	require.NoError(t, err)
	assert.NotEmpty(t, c.Scope)

	_, err = LoadCtl(writeFile(t, dir, "nodcs.yml", "ctl:\n  insecure: 7\n"), nil)
	p2 := problemsOf(t, err)
	assert.Contains(t, strings.Join(p2, "\n"), "ctl.insecure: expected a boolean")
	assert.Contains(t, strings.Join(p2, "\n"), "etcd3: required")
}
