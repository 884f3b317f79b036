package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"github.com/tusker-ha/tusker/patroni"

	"github.com/tusker-ha/tusker/test/harness"
)

func TestMain(m *testing.M) { harness.Main(m, nil) }

func testOutput() io.Writer {
	if testing.Verbose() {
		return os.Stderr
	}
	return io.Discard
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(testOutput(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type node struct {
	t    *testing.T
	name string
	cfg  Config
	pg   *Postgres
	port int
}

func (n *node) upstream() Upstream { return Upstream{Name: n.name, Host: "127.0.0.1", Port: n.port} }

func newNode(t *testing.T, root, name string) *node {
	t.Helper()
	port := harness.FreePort(t)
	cfg := Config{
		Name: name, Scope: "tusker-test",
		DataDir:        filepath.Join(root, name, "data"),
		BinDir:         harness.PGBinDir(t),
		Listen:         fmt.Sprintf("127.0.0.1:%d", port),
		ConnectAddress: fmt.Sprintf("127.0.0.1:%d", port),
		Superuser:      Auth{"tusker_admin", `su'per\pw`},
		Replication:    Auth{"replicator", "rep:pw"},
		Rewind:         Auth{"rewinder", "rw pw"},
		Parameters: map[string]string{
			"shared_buffers": "16MB", "fsync": "off", "synchronous_commit": "off", "full_page_writes": "on",
			"max_connections": "30", "max_wal_size": "64MB", "min_wal_size": "32MB",
			"wal_receiver_status_interval": "1s", "wal_retrieve_retry_interval": "500ms",
			"log_min_messages": "warning", "log_connections": "off", "wal_level": "logical",
		},
		Pgpass:       filepath.Join(root, name, "pgpass"),
		UseSlots:     true,
		PgCtlTimeout: 30 * time.Second,
		Logger:       testLogger().With("node", name),
		Output:       testOutput(),
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, name: name, cfg: cfg, pg: p, port: port}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := p.Stop(ctx, StopImmediate); err != nil {
			t.Errorf("cleanup stop of %s: %v", name, err)
		}
		p.Close()
	})
	return n
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func eventually(t *testing.T, what string, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not true after %v: %v", what, timeout, err)
}

func (n *node) exec(sql string, args ...any) {
	n.t.Helper()
	ctx := ctxT(n.t, 10*time.Second)
	conn, err := n.pg.Connect(ctx)
	if err != nil {
		n.t.Fatalf("%s: %v", n.name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		n.t.Fatalf("%s: %s: %v", n.name, sql, err)
	}
}

func (n *node) values() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := n.pg.Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT v FROM t ORDER BY id")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (n *node) waitRows(want ...string) {
	n.t.Helper()
	eventually(n.t, n.name+" sees rows "+strings.Join(want, ","), 20*time.Second, func() error {
		got, err := n.values()
		if err != nil {
			return err
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			return fmt.Errorf("rows %v", got)
		}
		return nil
	})
}

func (n *node) waitStreaming() State {
	n.t.Helper()
	var st State
	eventually(n.t, n.name+" streams", 20*time.Second, func() error {
		var err error
		st, err = n.pg.State(ctxT(n.t, 5*time.Second))
		if err != nil {
			return err
		}
		if !st.InRecovery || !st.Streaming {
			return fmt.Errorf("state %+v", st)
		}
		return nil
	})
	return st
}

func (n *node) state() State {
	n.t.Helper()
	st, err := n.pg.State(ctxT(n.t, 5*time.Second))
	if err != nil {
		n.t.Fatalf("%s: %v", n.name, err)
	}
	return st
}

func (n *node) controlData() ControlData {
	n.t.Helper()
	cd, err := n.pg.ControlData(ctxT(n.t, 10*time.Second))
	if err != nil {
		n.t.Fatalf("%s: %v", n.name, err)
	}
	return cd
}

func (n *node) slotActive(slot string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := n.pg.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var active bool
	if err := conn.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&active); err != nil {
		return fmt.Errorf("slot %s: %w", slot, err)
	}
	if !active {
		return fmt.Errorf("slot %s inactive", slot)
	}
	return nil
}

// keepSlots makes the physical slots names exist and drops every other inactive physical slot.
func (n *node) keepSlots(names ...string) {
	n.t.Helper()
	have, err := n.pg.Slots(ctxT(n.t, 5*time.Second))
	if err != nil {
		n.t.Fatal(err)
	}
	var ops []SlotOp
	for _, name := range names {
		if !slices.ContainsFunc(have, func(s SlotInfo) bool { return s.Name == name }) {
			ops = append(ops, SlotOp{Kind: CreateSlot, Name: name})
		}
	}
	for _, s := range have {
		if !s.Active && !s.Logical && !slices.Contains(names, s.Name) {
			ops = append(ops, SlotOp{Kind: DropSlot, Name: s.Name})
		}
	}
	if err := n.pg.ApplySlots(ctxT(n.t, 10*time.Second), ops); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) slots() []string {
	n.t.Helper()
	ctx := ctxT(n.t, 5*time.Second)
	conn, err := n.pg.Connect(ctx)
	if err != nil {
		n.t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT slot_name::text FROM pg_replication_slots ORDER BY 1")
	if err != nil {
		n.t.Fatal(err)
	}
	s, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		n.t.Fatal(err)
	}
	return s
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCluster walks one three-node cluster through bootstrap, cloning, streaming, slots,
// promotion, divergence and rewind, stop modes, fencing and adoption.
func TestCluster(t *testing.T) {
	root := t.TempDir()
	n1, n2, n3 := newNode(t, root, "node-1"), newNode(t, root, "node-2"), newNode(t, root, "node-3")

	// --- bootstrap node-1
	if st := n1.pg.DataDirState(); st != DataDirEmpty {
		t.Fatalf("fresh data dir state %v", st)
	}
	if err := n1.pg.Initdb(ctxT(t, 60*time.Second), []string{"--encoding=UTF8", "--data-checksums", "--no-sync"}); err != nil {
		t.Fatal(err)
	}
	if st := n1.pg.DataDirState(); st != DataDirValid {
		t.Fatalf("after initdb: data dir state %v", st)
	}
	cd := n1.controlData()
	if cd.State != "shut down" || !cd.CleanShutdown() || cd.Timeline != 1 || !cd.DataChecksums || cd.CheckpointLSN <= 0 ||
		cd.RedoLSN <= 0 || len(cd.SystemIdentifier) < 10 || cd.MaxConnections <= 0 {
		t.Fatalf("control data after initdb: %+v", cd)
	}
	if ok, why := n1.pg.CanRewind(ctxT(t, 10*time.Second)); !ok {
		t.Fatalf("CanRewind with data checksums: %s", why)
	}
	if n1.pg.Running() || n1.pg.PostmasterPID() != 0 {
		t.Fatal("running before start")
	}
	if err := n1.pg.Start(ctxT(t, 60*time.Second), StartOptions{Role: Primary}); err != nil {
		t.Fatal(err)
	}
	if !n1.pg.Running() || n1.pg.PostmasterPID() <= 0 {
		t.Fatal("not running after start")
	}
	st := n1.state()
	if st.InRecovery || st.Timeline != 1 || st.WALPosition <= 0 || st.ServerVersion < 150000 || st.ServerVersion >= 160000 ||
		time.Since(st.PostmasterStartTime) > time.Minute || st.Streaming || st.PendingRestart {
		t.Fatalf("primary state %+v", st)
	}
	if err := n1.pg.Start(ctxT(t, 10*time.Second), StartOptions{Role: Primary}); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second start: %v", err)
	}
	if !strings.Contains(readFile(t, filepath.Join(n1.cfg.DataDir, baseConfName)), "initdb") {
		t.Error("initdb's postgresql.conf was not kept as postgresql.base.conf")
	}
	if conf := readFile(t, filepath.Join(n1.cfg.DataDir, "postgresql.conf")); !strings.HasPrefix(conf, headerMarker) ||
		!strings.Contains(conf, fmt.Sprintf("port = '%d'", n1.port)) {
		t.Errorf("generated postgresql.conf:\n%s", conf)
	}

	// --- roles (twice: idempotent)
	for i := 0; i < 2; i++ {
		if err := n1.pg.CreateRoles(ctxT(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	{ // the replication role logs in with replication=database and runs IDENTIFY_SYSTEM
		ctx := ctxT(t, 10*time.Second)
		cc, err := pgconn.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=replicator dbname=postgres replication=database sslmode=disable", n1.port))
		if err != nil {
			t.Fatal(err)
		}
		cc.Password = "rep:pw"
		conn, err := pgconn.ConnectConfig(ctx, cc)
		if err != nil {
			t.Fatalf("replicator login: %v", err)
		}
		res, err := conn.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
		conn.Close(ctx)
		if err != nil || len(res) != 1 || len(res[0].Rows) != 1 || string(res[0].Rows[0][0]) != cd.SystemIdentifier {
			t.Fatalf("IDENTIFY_SYSTEM as replicator: %v %+v", err, res)
		}
		// the rewind role can call what pg_rewind needs
		rc, err := pgx.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=rewinder dbname=postgres sslmode=disable password='rw pw'", n1.port))
		if err != nil {
			t.Fatalf("rewinder login: %v", err)
		}
		var n int
		err = rc.QueryRow(ctx, "SELECT count(*) FROM pg_ls_dir('.', true, false)").Scan(&n)
		rc.Close(ctx)
		if err != nil || n == 0 {
			t.Fatalf("rewinder pg_ls_dir: %d %v", n, err)
		}
	}
	n1.exec("CREATE TABLE t (id serial PRIMARY KEY, v text)")
	n1.exec("INSERT INTO t (v) VALUES ('one')")

	// --- slots on node-1 for its replicas; an extra one is dropped again
	n1.keepSlots(SlotName("node-2"), SlotName("node-3"), "extra_slot")
	if got := strings.Join(n1.slots(), ","); got != "extra_slot,node_2,node_3" {
		t.Fatalf("slots %s", got)
	}
	n1.keepSlots("node_2", "node_3")
	if got := strings.Join(n1.slots(), ","); got != "node_2,node_3" {
		t.Fatalf("slots after dropping extra: %s", got)
	}

	// --- node-2 and node-3: clone and stream from node-1
	for _, n := range []*node{n2, n3} {
		if err := n.pg.Basebackup(ctxT(t, 60*time.Second), n1.upstream()); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(n.cfg.DataDir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("clone data dir mode: %v %v", fi.Mode(), err)
		}
		if !n.pg.StandbySignal() {
			t.Fatal("a fresh clone is not marked as a standby's (standby.signal)")
		}
		if n.pg.DataDirState() != DataDirValid {
			t.Fatal("clone not valid")
		}
		up := n1.upstream()
		if err := n.pg.Start(ctxT(t, 60*time.Second), StartOptions{Role: Replica, Upstream: &up}); err != nil {
			t.Fatal(err)
		}
	}
	if conf := readFile(t, filepath.Join(n2.cfg.DataDir, "postgresql.conf")); !strings.Contains(conf,
		fmt.Sprintf("primary_conninfo = 'host=127.0.0.1 port=%d user=replicator passfile=%s application_name=node-2 sslmode=prefer'", n1.port, n2.cfg.Pgpass)) ||
		!strings.Contains(conf, "primary_slot_name = 'node_2'") {
		t.Errorf("replica postgresql.conf:\n%s", conf)
	}
	if _, err := os.Stat(filepath.Join(n2.cfg.DataDir, "standby.signal")); err != nil {
		t.Error("no standby.signal on the replica")
	}
	st = n2.waitStreaming()
	if st.UpstreamHost != "127.0.0.1" || st.Timeline != 1 || st.WALPosition <= 0 {
		t.Errorf("replica state %+v", st)
	}
	n3.waitStreaming()
	n1.exec("INSERT INTO t (v) VALUES ('two')")
	n2.waitRows("one", "two")
	n3.waitRows("one", "two")
	testSlotOps(t, n1, n2)
	eventually(t, "node-2 knows the upstream's position (latest_end_lsn)", 10*time.Second, func() error {
		if st := n2.state(); st.LatestEndLSN <= 0 {
			return fmt.Errorf("latest_end_lsn %d", st.LatestEndLSN)
		}
		return nil
	})
	eventually(t, "slot node_2 active on node-1", 10*time.Second, func() error { return n1.slotActive("node_2") })
	eventually(t, "node-1 lists node-2 in pg_stat_replication", 10*time.Second, func() error {
		for _, r := range n1.state().Replication {
			if r.ApplicationName == "node-2" && r.State == "streaming" && r.Usename == "replicator" && r.ClientAddr == "127.0.0.1" && r.FlushLSN > 0 {
				return nil
			}
		}
		return fmt.Errorf("replication rows %+v", n1.state().Replication)
	})

	// --- node-3 stops (as a plain replica) before node-2 is promoted; node-2 must have replayed
	// everything node-3 has, so node-3 can later follow node-2 without a rewind.
	if err := n3.pg.Stop(ctxT(t, 30*time.Second), StopSmart); err != nil {
		t.Fatal(err)
	}
	cd3 := n3.controlData()
	if cd3.State != "shut down in recovery" || cd3.MinRecoveryEndLSN <= 0 {
		t.Fatalf("node-3 control data after stop: %+v", cd3)
	}
	eventually(t, "node-2 replayed node-3's WAL", 10*time.Second, func() error {
		if r := n2.state().ReplayLSN; r < cd3.MinRecoveryEndLSN {
			return fmt.Errorf("replay %s < %s", patroni.FormatLSN(r), patroni.FormatLSN(cd3.MinRecoveryEndLSN))
		}
		return nil
	})

	// --- promote node-2 (timeline 2) while node-1 keeps running and writing: divergence
	if err := n2.pg.Promote(ctxT(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	st = n2.state()
	if st.InRecovery || st.Timeline != 2 {
		t.Fatalf("promoted state %+v", st)
	}
	if _, err := os.Stat(filepath.Join(n2.cfg.DataDir, "standby.signal")); !os.IsNotExist(err) {
		t.Error("standby.signal still present after promote")
	}
	if conf := readFile(t, filepath.Join(n2.cfg.DataDir, "postgresql.conf")); strings.Contains(conf, "primary_conninfo") {
		t.Errorf("primary_conninfo still configured after promote:\n%s", conf)
	}
	if o := n2.pg.Options(); o.Role != Primary {
		t.Errorf("options after promote %+v", o)
	}
	n2.exec("INSERT INTO t (v) VALUES ('three')")
	n1.exec("INSERT INTO t (v) VALUES ('diverged')")
	if err := n1.pg.Stop(ctxT(t, 30*time.Second), StopFast); err != nil {
		t.Fatal(err)
	}
	if n1.pg.Running() {
		t.Fatal("node-1 still running after fast stop")
	}
	cd1 := n1.controlData()
	if cd1.State != "shut down" || cd1.Timeline != 1 || !cd1.WalLogHints {
		t.Fatalf("node-1 control data %+v", cd1)
	}

	// --- rewind checks against the new primary
	need, err := n1.pg.NeedsRewind(ctxT(t, 20*time.Second), n2.upstream())
	if err != nil || !need {
		t.Fatalf("NeedsRewind of the diverged old primary = %v, %v", need, err)
	}
	need, err = n3.pg.NeedsRewind(ctxT(t, 20*time.Second), n2.upstream())
	if err != nil || need {
		t.Fatalf("NeedsRewind of the replica that stopped before the promotion = %v, %v", need, err)
	}
	n2.keepSlots("node_1", "node_3")
	up2 := n2.upstream()
	if err := n3.pg.Start(ctxT(t, 60*time.Second), StartOptions{Role: Replica, Upstream: &up2}); err != nil {
		t.Fatal(err)
	}
	if ok, why := n1.pg.CanRewind(ctxT(t, 10*time.Second)); !ok {
		t.Fatalf("CanRewind: %s", why)
	}
	if err := n1.pg.Rewind(ctxT(t, 60*time.Second), n2.upstream()); err != nil {
		t.Fatal(err)
	}
	if err := n1.pg.Start(ctxT(t, 60*time.Second), StartOptions{Role: Replica, Upstream: &up2}); err != nil {
		t.Fatal(err)
	}
	n2.exec("INSERT INTO t (v) VALUES ('four')")
	for _, n := range []*node{n1, n3} {
		st := n.waitStreaming()
		n.waitRows("one", "two", "three", "four")
		if st = n.state(); st.Timeline != 2 {
			t.Errorf("%s timeline %d", n.name, st.Timeline)
		}
	}
	eventually(t, "slots active on node-2", 10*time.Second, func() error {
		if err := n2.slotActive("node_1"); err != nil {
			return err
		}
		return n2.slotActive("node_3")
	})

	// --- Follow: node-3 re-points to node-1 (cascading) and back; Reload keeps the upstream
	up1 := n1.upstream()
	n1.keepSlots("node_3")
	if err := n3.pg.Follow(ctxT(t, 10*time.Second), up1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node-3 streams from node-1", 20*time.Second, func() error {
		if err := n1.slotActive("node_3"); err != nil {
			return err
		}
		return n3.waitStreamingErr()
	})
	if err := n3.pg.Reload(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if o := n3.pg.Options(); o.Role != Replica || o.Upstream == nil || o.Upstream.Port != n1.port {
		t.Errorf("options after follow+reload %+v", o)
	}
	if err := n2.pg.Follow(ctxT(t, 10*time.Second), up1); err == nil {
		t.Error("Follow on a running primary accepted")
	}
	if err := n2.pg.Checkpoint(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}

	// --- stop modes: smart on a replica with an open session escalates after PgCtlTimeout
	ctx := ctxT(t, 10*time.Second)
	hold, err := n1.pg.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close(context.Background())
	short := n1.cfg
	short.PgCtlTimeout = time.Second
	n1.pg.SetConfig(short)
	t0 := time.Now()
	if err := n1.pg.Stop(ctxT(t, 30*time.Second), StopSmart); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < time.Second || d > 12*time.Second || n1.pg.Running() {
		t.Fatalf("smart stop with a session took %v, running=%v", d, n1.pg.Running())
	}
	n1.pg.SetConfig(n1.cfg)
	if cd := n1.controlData(); cd.CleanShutdown() {
		t.Errorf("escalated stop left a clean shutdown: %s", cd.State)
	}
	need, err = n1.pg.NeedsRewind(ctxT(t, 20*time.Second), n2.upstream())
	if err != nil || need {
		t.Fatalf("NeedsRewind of a crashed replica on the same timeline = %v, %v", need, err)
	}
	if err := n1.pg.Stop(ctxT(t, 5*time.Second), StopFast); err != nil {
		t.Fatalf("stop of a stopped postgres: %v", err)
	}

	// --- start fails with postgres's own message when the port is taken
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := n1.cfg
	taken.Listen = l.Addr().String()
	n1.pg.SetConfig(taken)
	t0 = time.Now()
	err = n1.pg.Start(ctxT(t, 30*time.Second), StartOptions{Role: Replica, Upstream: &up2})
	if err == nil || !strings.Contains(err.Error(), "exited during start") || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("start on a taken port: %v", err)
	}
	if d := time.Since(t0); d > 10*time.Second || n1.pg.Running() {
		t.Fatalf("failed start took %v, running=%v", d, n1.pg.Running())
	}
	n1.pg.SetConfig(n1.cfg)

	// --- fence the primary: it goes away quickly, uncleanly
	pid := n2.pg.PostmasterPID()
	t0 = time.Now()
	n2.pg.Fence(0)
	eventually(t, "fenced postmaster gone", 10*time.Second, func() error {
		if n2.pg.Running() {
			return errors.New("still running")
		}
		return nil
	})
	if d := time.Since(t0); d > 7*time.Second {
		t.Errorf("fence took %v", d)
	}
	cd2 := n2.controlData()
	if cd2.CleanShutdown() {
		t.Errorf("fenced primary shut down cleanly: %s", cd2.State)
	}
	last, err := n2.pg.lastWALRecord(ctxT(t, 10*time.Second), n2.cfg, cd2.Timeline, cd2.CheckpointLSN)
	if err != nil || last < cd2.CheckpointLSN {
		t.Errorf("last WAL record of the fenced primary: %s, %v (checkpoint %s)", patroni.FormatLSN(last), err, patroni.FormatLSN(cd2.CheckpointLSN))
	}

	// --- State fails fast when stopped
	t0 = time.Now()
	if _, err := n2.pg.State(ctxT(t, 10*time.Second)); !errors.Is(err, ErrNotRunning) {
		t.Errorf("State of a stopped postgres: %v", err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("State of a stopped postgres took %v", d)
	}

	// --- restart (crash recovery), then adopt it from a second Postgres and stop it from there
	if err := n2.pg.Start(ctxT(t, 60*time.Second), StartOptions{Role: Primary}); err != nil {
		t.Fatal(err)
	}
	if n2.pg.PostmasterPID() == pid {
		t.Fatal("same pid after restart")
	}
	if st := n2.state(); st.InRecovery || st.Timeline != 2 {
		t.Fatalf("restarted primary state %+v", st)
	}
	adopt, err := New(n2.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer adopt.Close()
	if !adopt.Running() || adopt.PostmasterPID() != n2.pg.PostmasterPID() {
		t.Fatalf("adopted: running=%v pid=%d want %d", adopt.Running(), adopt.PostmasterPID(), n2.pg.PostmasterPID())
	}
	if o := adopt.Options(); o.Role != Primary {
		t.Errorf("adopted options %+v", o)
	}
	if st, err := adopt.State(ctxT(t, 5*time.Second)); err != nil || st.InRecovery {
		t.Fatalf("adopted state %+v %v", st, err)
	}
	if err := adopt.Start(ctxT(t, 10*time.Second), StartOptions{Role: Primary}); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("start on an adopted postmaster: %v", err)
	}
	if err := adopt.Stop(ctxT(t, 30*time.Second), StopFast); err != nil {
		t.Fatal(err)
	}
	if adopt.Running() || n2.pg.Running() {
		t.Fatalf("after stop by the adopter: adopter running=%v owner running=%v", adopt.Running(), n2.pg.Running())
	}
	if cd := n2.controlData(); cd.State != "shut down" {
		t.Errorf("fast stop of adopted primary: %s", cd.State)
	}

	// --- re-clone: RemoveDataDir empties node-3 (refused while running)
	if err := n3.pg.RemoveDataDir(); err == nil {
		t.Error("RemoveDataDir while running accepted")
	}
	if err := n3.pg.Stop(ctxT(t, 30*time.Second), StopImmediate); err != nil {
		t.Fatal(err)
	}
	if err := n3.pg.RemoveDataDir(); err != nil {
		t.Fatal(err)
	}
	if n3.pg.DataDirState() != DataDirEmpty {
		t.Fatalf("after RemoveDataDir: %v", n3.pg.DataDirState())
	}
	// a clone from a stopped upstream fails and leaves the directory empty
	if err := n3.pg.Basebackup(ctxT(t, 30*time.Second), n2.upstream()); err == nil {
		t.Fatal("clone from a stopped upstream succeeded")
	}
	if n3.pg.DataDirState() != DataDirEmpty {
		t.Fatalf("after failed clone: %v", n3.pg.DataDirState())
	}
}

func (n *node) waitStreamingErr() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := n.pg.State(ctx)
	if err != nil {
		return err
	}
	if !st.InRecovery || !st.Streaming {
		return fmt.Errorf("state %+v", st)
	}
	return nil
}

// TestSeparateConfigDir runs an instance whose generated files live outside the data directory.
func TestSeparateConfigDir(t *testing.T) {
	root := t.TempDir()
	n := newNode(t, root, "solo")
	n.cfg.ConfigDir = filepath.Join(root, "solo", "conf")
	n.pg.SetConfig(n.cfg)
	if err := n.pg.Initdb(ctxT(t, 60*time.Second), []string{"--no-sync"}); err != nil {
		t.Fatal(err)
	}
	if ok, why := n.pg.CanRewind(ctxT(t, 10*time.Second)); ok {
		t.Error("CanRewind without checksums before the first start (wal_log_hints still off in pg_control)")
	} else if !strings.Contains(why, "wal_log_hints") {
		t.Errorf("CanRewind reason %q", why)
	}
	if err := n.pg.Start(ctxT(t, 60*time.Second), StartOptions{Role: Primary}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(readFile(t, filepath.Join(n.cfg.ConfigDir, baseConfName)), "initdb") {
		t.Error("initdb's postgresql.conf not copied to postgresql.base.conf in the config dir")
	}
	ctx := ctxT(t, 10*time.Second)
	conn, err := n.pg.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var hba, ident, port, cluster string
	if err := conn.QueryRow(ctx, "SELECT current_setting('hba_file'), current_setting('ident_file'), current_setting('port'), current_setting('cluster_name')").
		Scan(&hba, &ident, &port, &cluster); err != nil {
		t.Fatal(err)
	}
	if hba != filepath.Join(n.cfg.ConfigDir, "pg_hba.conf") || ident != filepath.Join(n.cfg.ConfigDir, "pg_ident.conf") ||
		port != fmt.Sprint(n.port) || cluster != "tusker-test" {
		t.Errorf("settings hba_file=%s ident_file=%s port=%s cluster_name=%s", hba, ident, port, cluster)
	}
	// A parameter change is applied by Reload.
	n.cfg.Parameters["work_mem"] = "7MB"
	n.pg.SetConfig(n.cfg)
	if err := n.pg.Reload(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "work_mem reloaded", 10*time.Second, func() error {
		var v string
		if err := conn.QueryRow(ctx, "SHOW work_mem").Scan(&v); err != nil {
			return err
		}
		if v != "7MB" {
			return fmt.Errorf("work_mem %s", v)
		}
		return nil
	})
	if err := n.pg.Stop(ctxT(t, 30*time.Second), StopFast); err != nil {
		t.Fatal(err)
	}
	if cd := n.controlData(); cd.State != "shut down" || !cd.WalLogHints || cd.DataChecksums {
		t.Errorf("control data %+v", cd)
	}
	if ok, why := n.pg.CanRewind(ctxT(t, 10*time.Second)); !ok {
		t.Errorf("CanRewind with wal_log_hints: %s", why)
	}
}

// testSlotOps: a logical slot is created in its database, listed with its plugin and position;
// a physical copy on a replica is advanced (only forward) to the primary's position; an invalid
// name never reaches SQL; drops remove only the named slot.
func testSlotOps(t *testing.T, primary, replica *node) {
	ctx := ctxT(t, 30*time.Second)
	primary.exec("CREATE DATABASE app")
	require.NoError(t, primary.pg.ApplySlots(ctx, []SlotOp{
		{Kind: CreateSlot, Name: "cdc", Logical: true, Database: "app", Plugin: "test_decoding"},
		{Kind: CreateSlot, Name: "perm"},
	}))
	require.NoError(t, primary.pg.ApplySlots(ctx, []SlotOp{{Kind: CreateSlot, Name: "perm"}}), "created already: no error")
	have, err := primary.pg.Slots(ctx)
	require.NoError(t, err)
	i := slices.IndexFunc(have, func(s SlotInfo) bool { return s.Name == "cdc" })
	require.GreaterOrEqual(t, i, 0, "%+v", have)
	cdc := have[i]
	require.True(t, cdc.Logical)
	require.Equal(t, []string{"app", "test_decoding"}, []string{cdc.Database, cdc.Plugin})
	require.Positive(t, cdc.ConfirmedFlushLSN)
	require.Equal(t, cdc.ConfirmedFlushLSN, cdc.Position())

	require.NoError(t, replica.pg.ApplySlots(ctx, []SlotOp{{Kind: CreateSlot, Name: "perm"}}), "a physical slot on a replica")
	primary.exec("CREATE TABLE slot_test AS SELECT 1 AS x")
	target := primary.state().WALPosition
	eventually(t, "the replica replays past the target", 10*time.Second, func() error {
		if st := replica.state(); st.ReplayLSN < target {
			return fmt.Errorf("replay %d < %d", st.ReplayLSN, target)
		}
		return nil
	})
	require.NoError(t, replica.pg.ApplySlots(ctx, []SlotOp{{Kind: AdvanceSlot, Name: "perm", LSN: target}}))
	have, err = replica.pg.Slots(ctx)
	require.NoError(t, err)
	i = slices.IndexFunc(have, func(s SlotInfo) bool { return s.Name == "perm" })
	require.GreaterOrEqual(t, i, 0)
	require.Equal(t, target, have[i].RestartLSN, "advanced to the primary's position")

	require.ErrorContains(t, primary.pg.ApplySlots(ctx, []SlotOp{{Kind: DropSlot, Name: "x'); DROP TABLE t; --"}}), "invalid slot name")
	require.ErrorContains(t, primary.pg.ApplySlots(ctx, []SlotOp{{Kind: CreateSlot, Name: "l", Logical: true, Database: "app", Plugin: "../x"}}), "invalid plugin")
	require.NoError(t, primary.pg.ApplySlots(ctx, []SlotOp{{Kind: DropSlot, Name: "cdc"}, {Kind: DropSlot, Name: "perm"}}))
	require.NoError(t, replica.pg.ApplySlots(ctx, []SlotOp{{Kind: DropSlot, Name: "perm"}}))
	require.NotContains(t, primary.slots(), "cdc")
}
