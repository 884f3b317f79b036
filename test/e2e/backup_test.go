package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tusker-ha/tusker/test/harness"
)

// The backup tests run Debian's pgBackRest with a repository on local disk: archive_command
// through pgBackRest, replicas created with `pgbackrest restore` (create_replica_methods), a
// cluster bootstrapped from a backup to a point in time (bootstrap.method), a replica restored
// with no leader running (no_leader), and a replica that fetches from the archive the WAL the
// primary no longer has (recovery_conf).

// backRest is a pgBackRest repository and the wrapper scripts the tusker configurations call.
type backRest struct {
	t      *testing.T
	dir    string
	conf   string
	stanza string
	bin    string
	// Scripts: push and get run as archive_command and restore_command (in the data directory);
	// replica and pitr are methods that restore into the --datadir they are given.
	push, get, replica, pitr string
}

func newBackRest(t *testing.T, stanza string) *backRest {
	t.Helper()
	bin, err := exec.LookPath("pgbackrest")
	require.NoError(t, err, "pgBackRest not found: run `make deps` (install-deps.sh installs it)")
	dir := t.TempDir()
	b := &backRest{t: t, dir: dir, conf: filepath.Join(dir, "pgbackrest.conf"), stanza: stanza, bin: bin}
	conf := fmt.Sprintf("[global]\nrepo1-path=%s/repo\nlog-path=%s/log\nlock-path=%s/lock\nspool-path=%s/spool\n"+
		"log-level-console=warn\nlog-level-file=info\nstart-fast=y\nrepo1-retention-full=2\n", dir, dir, dir, dir)
	require.NoError(t, os.WriteFile(b.conf, []byte(conf), 0o600))
	base := fmt.Sprintf("%s --config=%s --stanza=%s", bin, b.conf, stanza)
	for _, d := range []string{"log", "lock", "spool", "repo"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o700))
	}
	// archive-push and archive-get check the data directory; PostgreSQL runs both in it. The
	// backup command checks that archive_command names pgbackrest.
	b.push = b.script("pgbackrest-push.sh", base+` --pg1-path="$PWD" archive-push "$1"`)
	b.get = b.script("pgbackrest-get.sh", base+` --pg1-path="$PWD" archive-get "$1" "$2"`)
	// The methods get Patroni's --datadir (and, for pitr, --target).
	parse := `datadir=; target=
for a in "$@"; do case "$a" in --datadir=*) datadir="${a#--datadir=}";; --target=*) target="${a#--target=}";; esac; done
[ -n "$datadir" ] || { echo "no --datadir" >&2; exit 2; }
mkdir -p "$datadir" && chmod 700 "$datadir"
`
	b.replica = b.script("replica.sh", parse+base+` --pg1-path="$datadir" --type=standby restore`)
	b.pitr = b.script("pitr.sh", parse+`if [ -n "$target" ]; then
  exec `+base+` --pg1-path="$datadir" --type=time --target="$target" --target-action=promote restore
fi
exec `+base+` --pg1-path="$datadir" restore`)
	return b
}

func (b *backRest) script(name, body string) string {
	p := filepath.Join(b.dir, name)
	require.NoError(b.t, os.WriteFile(p, []byte("#!/bin/sh\nset -e\n"+body+"\n"), 0o755))
	return p
}

// run runs a pgBackRest command against node n's PostgreSQL (over its Unix socket, as the OS user
// the tests run as, whom pg_hba maps to postgres).
func (b *backRest) run(c *harness.Cluster, n *harness.Node, args ...string) {
	b.t.Helper()
	all := append([]string{"--config=" + b.conf, "--stanza=" + b.stanza, "--pg1-path=" + n.DataDir,
		"--pg1-socket-path=" + c.SocketDir, fmt.Sprintf("--pg1-port=%d", n.PGPort), "--pg1-user=postgres"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, b.bin, all...).CombinedOutput()
	require.NoError(b.t, err, "pgbackrest %s: %s", strings.Join(args, " "), out)
}

// backupOf creates the stanza on n (once) and takes a full backup of it.
func (b *backRest) backupOf(c *harness.Cluster, n *harness.Node) {
	b.t.Helper()
	b.run(c, n, "stanza-create")
	b.run(c, n, "--type=full", "backup")
}

// archived switches WAL on the primary and waits until the segment is in the archive.
func archived(t *testing.T, n *harness.Node) {
	t.Helper()
	ctx := context.Background()
	seg, err := n.QueryString(ctx, "SELECT pg_walfile_name(pg_switch_wal())")
	require.NoError(t, err)
	require.NoError(t, harness.WaitFor(ctx, 60*time.Second, 200*time.Millisecond, func() error {
		last, err := n.QueryString(ctx, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
		if err != nil {
			return err
		}
		if last < seg {
			return fmt.Errorf("archived up to %q, want %q", last, seg)
		}
		return nil
	}))
}

// archiving is the dynamic configuration of a cluster that archives into b and whose replicas
// read the archive.
func (b *backRest) archiving(o *harness.ClusterOptions) {
	o.DCSParams = map[string]string{"archive_mode": "on", "archive_command": b.push + " %p"}
	o.DCSPostgreSQL = "recovery_conf:\n  restore_command: '" + b.get + ` %f "%p"'` + "\n"
}

func backupCluster(t *testing.T, nodes int, scope string, e *harness.Etcd, opts func(*harness.ClusterOptions)) *env {
	t.Helper()
	o := harness.ClusterOptions{Scope: scope, Nodes: nodes}
	opts(&o)
	return newClusterWith(t, e, o)
}

// withPG sets a node's postgresql lines (unindented YAML) and rewrites its configuration.
func withPG(t *testing.T, c *harness.Cluster, n *harness.Node, yaml string) {
	t.Helper()
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(yaml, "\n"), "\n") {
		b.WriteString("  " + l + "\n")
	}
	n.PGExtra = b.String()
	require.NoError(t, c.WriteConfig(n, c.Opts.ExtraLocal))
}

func waitNamedPrimary(t *testing.T, c *harness.Cluster, name string, timeout time.Duration) *harness.Node {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, harness.WaitFor(ctx, timeout, 200*time.Millisecond, func() error {
		p, err := c.Primary(ctx)
		if err != nil {
			return err
		}
		if p.Name != name {
			return fmt.Errorf("primary is %s, want %s", p.Name, name)
		}
		return nil
	}))
	return c.Node(name)
}

// requireLogLine fails unless one line of log holds every part.
func requireLogLine(t *testing.T, log string, parts ...string) {
	t.Helper()
	for _, l := range strings.Split(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return
		}
	}
	t.Fatalf("no log line holds %q", parts)
}

func hasRow(t *testing.T, n *harness.Node, id int) bool {
	t.Helper()
	v, err := n.QueryString(context.Background(), "SELECT count(*)::text FROM t WHERE id = $1", id)
	require.NoError(t, err)
	return v == "1"
}

// TestReplicasFromBackup: create_replica_methods [pgbackrest, basebackup] makes a replica with
// `pgbackrest restore`, which then reads the archive and streams; a method that fails is cleaned
// up after and the next one (basebackup) is used.
func TestReplicasFromBackup(t *testing.T) {
	br := newBackRest(t, "e2e")
	e := backupCluster(t, 3, "backup", nil, br.archiving)
	c := e.c
	ctx := context.Background()
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	require.NoError(t, n1.Start())
	waitNamedPrimary(t, c, "n1", 90*time.Second)
	require.NoError(t, n1.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text)"))
	insert(t, n1, 1)
	br.backupOf(c, n1)
	insert(t, n1, 2) // after the backup: the replicas get it from the archive or the stream

	withPG(t, c, n2, "create_replica_methods: [pgbackrest, basebackup]\npgbackrest:\n  command: "+br.replica+"\n")
	broken := br.script("broken.sh", `for a in "$@"; do case "$a" in --datadir=*) d="${a#--datadir=}";; esac; done
echo "args: $*" >&2; mkdir -p "$d" && echo junk > "$d/junk" && exit 3`)
	withPG(t, c, n3, "create_replica_methods:\n- broken\n- basebackup\nbroken:\n  command: "+broken+"\n  retries: 2\n")
	require.NoError(t, n2.Start())
	require.NoError(t, n3.Start())
	require.NoError(t, harness.WaitFor(ctx, 120*time.Second, 200*time.Millisecond, func() error {
		if err := c.Healthy(ctx); err != nil {
			return err
		}
		if !n2.Running() || !n3.Running() {
			return fmt.Errorf("a node exited")
		}
		return nil
	}))
	insert(t, n1, 3)
	for _, n := range []*harness.Node{n2, n3} {
		for id := 1; id <= 3; id++ {
			waitRow(t, n, id)
		}
	}
	log2, log3 := n2.Log(), n3.Log()
	requireLogLine(t, log2, `msg="replica created"`, "method=pgbackrest")
	require.NotContains(t, log2, "cloning data directory with pg_basebackup", "n2 came from the backup")
	requireLogLine(t, log3, `msg="replica creation method failed"`, "method=broken")
	require.Contains(t, log3, "--retries=2", "the section's keys are passed as --key=value")
	requireLogLine(t, log3, `msg="replica created"`, "method=basebackup")
	_, err := os.Stat(filepath.Join(n3.DataDir, "junk"))
	require.True(t, os.IsNotExist(err), "what the failed method left is removed before basebackup: %v", err)
	// Both stream from n1 through their slots.
	s, err := n1.QueryString(ctx, "SELECT string_agg(application_name, ',' ORDER BY application_name) FROM pg_stat_replication WHERE state = 'streaming'")
	require.NoError(t, err)
	require.Equal(t, "n2,n3", s)
}

// TestBootstrapFromBackupToPointInTime: a new cluster is bootstrapped from another cluster's
// pgBackRest backup, recovered to a point in time: the rows committed before the target are
// there, the one after is not, and the new cluster takes replicas and writes. Both ways of
// giving the recovery settings: the method's recovery_conf (pgbackrest restore's own settings
// removed), and keep_existing_recovery_conf with pgbackrest restore --type=time.
func TestBootstrapFromBackupToPointInTime(t *testing.T) {
	br := newBackRest(t, "src")
	src := backupCluster(t, 1, "src", nil, br.archiving)
	ctx := context.Background()
	n := src.c.Nodes[0]
	require.NoError(t, n.Start())
	waitNamedPrimary(t, src.c, "n1", 90*time.Second)
	require.NoError(t, n.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text)"))
	insert(t, n, 1)
	br.backupOf(src.c, n)
	insert(t, n, 2)
	time.Sleep(1100 * time.Millisecond)
	target, err := n.QueryString(ctx, "SELECT now()::text")
	require.NoError(t, err)
	time.Sleep(1100 * time.Millisecond)
	insert(t, n, 3)
	archived(t, n)
	src.c.Stop(30 * time.Second)

	get := br.get + ` %f "%p"`
	for _, tc := range []struct{ name, method string }{
		{"recovery_conf", "method: pitr\npitr:\n  command: " + br.pitr + "\n  recovery_conf:\n    restore_command: '" + get +
			"'\n    recovery_target_time: '" + target + "'\n    recovery_target_action: promote\n"},
		{"keep_existing_recovery_conf", "method: pitr\npitr:\n  command: " + br.pitr + "\n  keep_existing_recovery_conf: true\n" +
			"  target: '" + target + "'\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := backupCluster(t, 2, "dst-"+strings.ReplaceAll(tc.name, "_", "-"), src.etcd, func(o *harness.ClusterOptions) {
				o.Bootstrap = tc.method
			})
			c := dst.c
			require.NoError(t, c.Nodes[0].Start())
			p := waitNamedPrimary(t, c, "n1", 120*time.Second)
			require.True(t, hasRow(t, p, 1), "a row of the backup")
			require.True(t, hasRow(t, p, 2), "a row committed before the target, replayed from the archive")
			require.False(t, hasRow(t, p, 3), "the row committed after the target")
			require.Contains(t, p.Log(), "the restored data directory finished its recovery")
			auto, err := os.ReadFile(filepath.Join(p.DataDir, "postgresql.auto.conf"))
			require.NoError(t, err)
			require.NotContains(t, string(auto), "recovery_target", "a primary keeps no recovery target")
			require.NoError(t, c.Nodes[1].Start())
			require.NoError(t, harness.WaitFor(ctx, 90*time.Second, 200*time.Millisecond, func() error { return c.Healthy(ctx) }))
			insert(t, p, 4)
			waitRow(t, c.Nodes[1], 4)
			waitRow(t, c.Nodes[1], 2)
		})
	}
}

// TestFailedBootstrapMethodStartsClean: a bootstrap method that fails leaves nothing behind: the
// data directory it half wrote is removed, the initialize key released, and the next attempt
// starts from an empty directory.
func TestFailedBootstrapMethodStartsClean(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "attempted")
	script := filepath.Join(dir, "make-cluster.sh")
	// First attempt: a partial data directory and a failure. Second: initdb, as a method would.
	body := fmt.Sprintf(`#!/bin/sh
for a in "$@"; do case "$a" in --datadir=*) d="${a#--datadir=}";; esac; done
if [ ! -e %[1]s ]; then touch %[1]s; mkdir -p "$d"; echo junk > "$d/junk"; exit 1; fi
[ ! -e "$d/junk" ] || { echo "the failed attempt was not cleaned up" >&2; exit 9; }
exec %[2]s/initdb -D "$d" -U postgres --auth-local=peer --auth-host=scram-sha-256 >/dev/null
`, marker, harness.PGBinDir(t))
	require.NoError(t, os.WriteFile(script, []byte(body), 0o755))
	e := backupCluster(t, 1, "failboot", nil, func(o *harness.ClusterOptions) {
		o.Bootstrap = "method: mine\nmine:\n  command: " + script + "\n" +
			"users:\n  app:\n    password: app-pw\n    options: [createdb, 'connection limit 7']\n"
	})
	require.NoError(t, e.c.Nodes[0].Start())
	p := waitNamedPrimary(t, e.c, "n1", 120*time.Second)
	log := p.Log()
	require.Contains(t, log, "bootstrap failed: removing the partial data directory and the initialize key")
	_, err := os.Stat(marker)
	require.NoError(t, err, "the first attempt ran")
	ctx := context.Background()
	require.NoError(t, p.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text)"))
	insert(t, p, 1)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.etcd.Endpoint}, DialTimeout: 2 * time.Second})
	require.NoError(t, err)
	defer cli.Close()
	resp, err := cli.Get(ctx, "/service/failboot/initialize")
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	require.NotEmpty(t, string(resp.Kvs[0].Value), "the second attempt wrote the system identifier")
	// bootstrap.users (Patroni 3): the role exists with its options.
	role, err := p.QueryString(ctx, "SELECT rolcanlogin::text || rolcreatedb::text || rolconnlimit::text FROM pg_roles WHERE rolname = 'app'")
	require.NoError(t, err)
	require.Equal(t, "truetrue7", role)
}

// TestReplicaWithoutLeaderFromBackup: every member's data is lost while the cluster exists; a
// member whose method has no_leader restores from the backup, replays the archive, and then wins
// the leader race: Patroni's "bootstrap (without leader)".
func TestReplicaWithoutLeaderFromBackup(t *testing.T) {
	br := newBackRest(t, "e2e")
	e := backupCluster(t, 1, "noleader", nil, br.archiving)
	c := e.c
	ctx := context.Background()
	n := c.Nodes[0]
	require.NoError(t, n.Start())
	waitNamedPrimary(t, c, "n1", 90*time.Second)
	require.NoError(t, n.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text)"))
	insert(t, n, 1)
	br.backupOf(c, n)
	insert(t, n, 2)
	archived(t, n)
	n.KillNode()
	require.NoError(t, os.RemoveAll(n.DataDir))

	withPG(t, c, n, "create_replica_methods: [pgbackrest]\npgbackrest:\n  command: "+br.replica+"\n  no_leader: true\n")
	require.NoError(t, n.Start())
	p := waitNamedPrimary(t, c, "n1", 120*time.Second)
	require.Contains(t, p.Log(), "no data and no leader: creating a replica with a method that needs no leader")
	requireLogLine(t, p.Log(), `msg="replica created"`, "method=pgbackrest")
	require.True(t, hasRow(t, p, 1))
	require.True(t, hasRow(t, p, 2), "replayed from the archive")
	insert(t, p, 3)
}

// TestRejoinFetchesWALFromArchive: a replica that was away while the primary recycled the WAL it
// needs catches up from the archive (recovery_conf's restore_command), with no new base backup.
func TestRejoinFetchesWALFromArchive(t *testing.T) {
	br := newBackRest(t, "e2e")
	e := backupCluster(t, 2, "rejoin", nil, func(o *harness.ClusterOptions) {
		br.archiving(o)
		o.DCSParams["wal_keep_size"] = "0"
		o.DCSParams["max_wal_size"] = "32MB"
		// The slot goes with the member key: the WAL the replica needs is then only in the
		// archive (with member_slots_ttl the primary would keep it: TestSlotsSurviveFailover).
		o.Dynamic += "member_slots_ttl: 0\n"
	})
	c := e.c
	ctx := context.Background()
	require.NoError(t, c.Start())
	p := e.waitHealthy(90 * time.Second)
	seed(t, c, p)
	br.backupOf(c, p) // archiving works
	r := others(c, p)[0]
	r.Signal(15)
	require.True(t, r.WaitExit(60*time.Second))
	// The replica's member key and with it its slot are gone; WAL is recycled past its position.
	require.NoError(t, harness.WaitFor(ctx, 30*time.Second, 200*time.Millisecond, func() error {
		s, err := p.QueryString(ctx, "SELECT count(*)::text FROM pg_replication_slots")
		if err != nil {
			return err
		}
		if s != "0" {
			return fmt.Errorf("%s slots left", s)
		}
		return nil
	}))
	oldest, err := p.QueryString(ctx, "SELECT min(name) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'")
	require.NoError(t, err)
	for i := 0; i < 4; i++ {
		require.NoError(t, p.Exec(ctx, "INSERT INTO t SELECT g, repeat('x', 1000) FROM generate_series($1::int, $1::int + 20000) g", 1000+i*100000))
		archived(t, p)
	}
	require.NoError(t, p.Exec(ctx, "CHECKPOINT"))
	require.NoError(t, p.Exec(ctx, "CHECKPOINT"))
	now, err := p.QueryString(ctx, "SELECT min(name) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'")
	require.NoError(t, err)
	require.Greater(t, now, oldest, "the primary recycled the WAL the replica stopped at")
	insert(t, p, 2)

	before := len(r.Log())
	require.NoError(t, r.Start())
	waitRow(t, r, 2)
	require.NoError(t, harness.WaitFor(ctx, 60*time.Second, 200*time.Millisecond, func() error { return c.Healthy(ctx) }))
	after := r.Log()[before:]
	require.Contains(t, after, "restored log file", "the replica read WAL from the archive")
	require.NotContains(t, after, "pg_basebackup", "no new base backup")
}
