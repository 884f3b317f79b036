package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReplicaMethodsDecoded(t *testing.T) {
	c, err := loadYAML(t, `postgresql:
  create_replica_methods: [pgbackrest, wal_g, basebackup]
  pgbackrest:
    command: /usr/bin/pgbackrest --stanza=main --delta restore
    keep_data: true
    no_params: true
  wal_g:
    no_leader: yes
    envdir: /etc/wal-g
    retries: 3
  basebackup:
  - verbose
  - max-rate: 100M
  recovery_conf:
    restore_command: pgbackrest --stanza=main archive-get %f "%p"
    recovery_min_apply_delay: 0
`)
	require.NoError(t, err)
	assert.Empty(t, c.Unimplemented, "the methods' sections are known")
	pg := c.PostgreSQL
	require.Len(t, pg.CreateReplicaMethods, 3)
	assert.Equal(t, ReplicaMethod{Name: "pgbackrest", Command: "/usr/bin/pgbackrest --stanza=main --delta restore",
		KeepData: true, NoParams: true, Params: []MethodParam{{"keep_data", "True"}, {"no_params", "True"}}}, pg.CreateReplicaMethods[0])
	assert.Equal(t, ReplicaMethod{Name: "wal_g", Command: "wal_g", NoLeader: true,
		Params: []MethodParam{{"no_leader", "True"}, {"envdir", "/etc/wal-g"}, {"retries", "3"}}}, pg.CreateReplicaMethods[1],
		"a method without a command runs its name, as Patroni does")
	assert.True(t, pg.CreateReplicaMethods[2].Builtin())
	assert.True(t, pg.CreateReplicaMethods[1].WorksWithoutLeader())
	assert.False(t, ReplicaMethod{Name: BasebackupMethod, NoLeader: true}.WorksWithoutLeader(), "basebackup needs a server to copy")
	assert.Equal(t, []string{"--verbose", "--max-rate=100M"}, pg.Basebackup)
	assert.Equal(t, map[string]any{"restore_command": `pgbackrest --stanza=main archive-get %f "%p"`, "recovery_min_apply_delay": 0}, pg.RecoveryConf)

	c, err = loadYAML(t, "postgresql:\n  create_replica_methods: pgbackrest, basebackup\n  basebackup: {checkpoint: fast, progress: true, no-sync: false}\n")
	require.NoError(t, err)
	assert.Equal(t, "pgbackrest", c.PostgreSQL.CreateReplicaMethods[0].Command)
	assert.Equal(t, []string{"--checkpoint=fast", "--progress"}, c.PostgreSQL.Basebackup, "map form; false leaves the option out")
}

// TestReplicaMethodArgs: the arguments are Patroni's, quirks included, so that a script written
// for Patroni sees the same command line.
func TestReplicaMethodArgs(t *testing.T) {
	m := ReplicaMethod{Name: "x", Command: "x", NoLeader: true,
		Params: []MethodParam{{"no_leader", "True"}, {"role", "mine"}, {"envdir", "/e"}}}
	assert.Equal(t, []string{"--no_leader=True", "--role=replica", "--envdir=/e", "--scope=s", "--datadir=/d",
		"--connstring=host=h"}, m.Args("s", "/d", "host=h"), "role replaced in place, the others appended")
	m.NoParams = true
	m.Params = append(m.Params, MethodParam{"no_params", "True"}, MethodParam{"keep_data", "False"})
	assert.Equal(t, []string{"--role=mine", "--envdir=/e"}, m.Args("s", "/d", "host=h"), "no_params: nothing added, flags dropped")

	b := BootstrapMethod{Params: []MethodParam{{"target", "2026-12-01 10:00:00+00"}}}
	assert.Equal(t, []string{"--scope=s", "--datadir=/d", "--target=2026-12-01 10:00:00+00"}, b.Args("s", "/d"))
	b.NoParams = true
	assert.Equal(t, []string{"--target=2026-12-01 10:00:00+00"}, b.Args("s", "/d"))
}

func TestBootstrapMethodDecoded(t *testing.T) {
	c, err := loadYAML(t, `bootstrap:
  method: pitr
  pitr:
    command: /usr/local/bin/restore.sh
    keep_existing_recovery_conf: true
    datadir: /ignored
    target_time: "2026-12-01 10:00:00"
    delta: true
    recovery_conf:
      recovery_target_action: promote
      recovery_target_time: "2026-12-01 10:00:00"
`)
	require.NoError(t, err)
	require.NotNil(t, c.Bootstrap.Custom)
	assert.Equal(t, BootstrapMethod{Name: "pitr", Command: "/usr/local/bin/restore.sh", KeepExistingRecoveryConf: true,
		RecoveryConf: map[string]any{"recovery_target_action": "promote", "recovery_target_time": "2026-12-01 10:00:00"},
		Params:       []MethodParam{{"target_time", "2026-12-01 10:00:00"}, {"delta", "True"}}}, *c.Bootstrap.Custom,
		"datadir is reserved: never passed on")
	assert.Empty(t, c.Unimplemented)
}

// TestBadMethods: what Patroni would silently ignore or write into a broken file is refused.
func TestBadMethods(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"bootstrap:\n  method: pitr\n", `bootstrap.method: "pitr" names no section bootstrap.pitr`},
		{"bootstrap:\n  method: pitr\n  pitr:\n    no_params: true\n", "bootstrap.pitr.command: required"},
		{"bootstrap:\n  method: pitr\n  pitr:\n    command: x\n    recovery_conf:\n      restore_command: \"a\\nb\"\n",
			"bootstrap.pitr.recovery_conf.restore_command: must not contain a line break"},
		{"bootstrap:\n  method: pitr\n  pitr:\n    command: x\n    opts: [a, b]\n", "bootstrap.pitr.opts: expected a value to pass as --key=value"},
		{"postgresql:\n  basebackup:\n  - pgdata: /x\n", `postgresql.basebackup[0]: pg_basebackup option "pgdata" is not allowed`},
		{"postgresql:\n  basebackup:\n  - compress: gzip\n", `postgresql.basebackup[0]: "--compress=gzip": only server-side compression`},
		{"postgresql:\n  recovery_conf:\n    \"bad name\": x\n", `postgresql.recovery_conf."bad name": not a valid PostgreSQL parameter name`},
		{"postgresql:\n  create_replica_methods: [\"\"]\n", "postgresql.create_replica_methods[0]: empty method name"},
		{"bootstrap:\n  dcs:\n    postgresql:\n      recovery_conf:\n        restore_command: \"a\\rb\"\n",
			"bootstrap.dcs.postgresql.recovery_conf.restore_command: must not contain a line break"},
	} {
		t.Run(tc.yaml, func(t *testing.T) {
			_, err := loadYAML(t, tc.yaml)
			checkProblems(t, problemsOf(t, err), "", tc.want)
		})
	}
	_, err := loadYAML(t, "postgresql:\n  basebackup:\n  - compress: server-zstd\n")
	require.NoError(t, err, "server-side compression makes a data directory")
	c, err := loadYAML(t, "bootstrap:\n  method: initdb\n")
	require.NoError(t, err)
	assert.Nil(t, c.Bootstrap.Custom)
}

// TestRoleOptionNeverPanics: text whose upper case has another length in bytes used to be cut
// at the wrong index.
func TestRoleOptionNeverPanics(t *testing.T) {
	for _, o := range []string{"valid until ȿȿȿȿȿȿ", "VALID UNTIL 'ıııı'", "valid\tuntil '2030-01-01'", "valid until"} {
		assert.NotPanics(t, func() { roleOption(o) }, o)
	}
	got, ok := roleOption("valid\tuntil '2030-01-01'")
	assert.True(t, ok)
	assert.Equal(t, "VALID UNTIL '2030-01-01'", got)
}
