package postgres

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tusker-ha/tusker/patroni"
	"github.com/tusker-ha/tusker/test/harness"
)

func TestSlotName(t *testing.T) {
	cases := []struct{ in, want string }{
		{"node-1", "node_1"},
		{"Node.Two", "node_two"},
		{"already_ok_42", "already_ok_42"},
		{"a b", "au0032b"},
		{"x@y", "xu0064y"},
		{"é", "u0233"},
		{"ÀB", "u0224b"},
		{"😀", "u128512"},
		{strings.Repeat("a", 70), strings.Repeat("a", 63)},
		{strings.Repeat("b", 61) + "@", strings.Repeat("b", 61) + "u0"},
	}
	for _, c := range cases {
		if got := SlotName(c.in); got != c.want {
			t.Errorf("SlotName(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := SlotName(c.in); !slotNameRE.MatchString(got) {
			t.Errorf("SlotName(%q) = %q is not a valid slot name", c.in, got)
		}
	}
}

func TestQuoting(t *testing.T) {
	for in, want := range map[string]string{
		"plain":      "'plain'",
		"it's":       "'it''s'",
		`back\s`:     `'back\\s'`,
		"":           "''",
		`a'b\c'`:     `'a''b\\c'''`,
		"with space": "'with space'",
	} {
		if got := quoteConfValue(in); got != want {
			t.Errorf("quoteConfValue(%q) = %s, want %s", in, got, want)
		}
		name, val, ok := parseConfLine("x = " + quoteConfValue(in))
		if !ok || name != "x" || val != in {
			t.Errorf("parseConfLine round trip of %q: %q %q %v", in, name, val, ok)
		}
	}
	for in, want := range map[string]string{
		"host1":   "host1",
		"my app":  `'my app'`,
		"o'neil":  `'o\'neil'`,
		`c:\x`:    `'c:\\x'`,
		"":        "''",
		"a=b":     "'a=b'",
		"/tmp/pw": "/tmp/pw",
	} {
		if got := quoteConninfo(in); got != want {
			t.Errorf("quoteConninfo(%q) = %s, want %s", in, got, want)
		}
		if got := parseConninfo("k=" + quoteConninfo(in) + " z=1"); got["k"] != in || got["z"] != "1" {
			t.Errorf("parseConninfo round trip of %q: %v", in, got)
		}
	}
	if got := escapePgpass(`a:b\c`); got != `a\:b\\c` {
		t.Errorf("escapePgpass = %s", got)
	}
	if got := quoteLiteral(`it's`); got != `'it''s'` {
		t.Errorf("quoteLiteral = %s", got)
	}
	if got := quoteLiteral(`a\'b`); got != `E'a\\''b'` {
		t.Errorf("quoteLiteral = %s", got)
	}
	if got := quoteIdent(`we"ird`); got != `"we""ird"` {
		t.Errorf("quoteIdent = %s", got)
	}
}

func TestParseListen(t *testing.T) {
	l, err := parseListen("127.0.0.1,::1:5433")
	if err != nil || strings.Join(l.hosts, ",") != "127.0.0.1,::1" || l.port != 5433 {
		t.Fatalf("parseListen: %+v %v", l, err)
	}
	l, err = parseListen("[::]:5432")
	if err != nil || l.hosts[0] != "::" || localHost(l.hosts[0]) != "::1" {
		t.Fatalf("parseListen: %+v %v", l, err)
	}
	for _, bad := range []string{"", "host", "host:0", "host:x", ":5432"} {
		if _, err := parseListen(bad); err == nil {
			t.Errorf("parseListen(%q) accepted", bad)
		}
	}
}

func TestParseControlDataAndLSN(t *testing.T) {
	out := `pg_control version number:            1300
Database system identifier:           7400000000000000001
Database cluster state:               shut down in recovery
Latest checkpoint location:           0/3000060
Latest checkpoint's REDO location:    0/3000028
Latest checkpoint's TimeLineID:       2
Latest checkpoint's PrevTimeLineID:   1
Latest checkpoint's NextXID:          0:735
Minimum recovery ending location:     1/A0000F8
Min recovery ending loc's timeline:   2
wal_log_hints setting:                on
max_connections setting:              100
max_worker_processes setting:         8
max_wal_senders setting:              10
max_prepared_xacts setting:           0
max_locks_per_xact setting:           64
Data page checksum version:           1
`
	cd, err := ParseControlData(out)
	if err != nil {
		t.Fatal(err)
	}
	if cd.SystemIdentifier != "7400000000000000001" || cd.State != "shut down in recovery" || !cd.CleanShutdown() ||
		cd.Timeline != 2 || cd.PrevTimeline != 1 || cd.CheckpointLSN != 0x3000060 || cd.RedoLSN != 0x3000028 ||
		cd.MinRecoveryEndLSN != 1<<32|0xA0000F8 || cd.MinRecoveryEndTimeline != 2 || !cd.WalLogHints || !cd.DataChecksums ||
		cd.MaxConnections != 100 || cd.MaxLocksPerXact != 64 || cd.Raw["Latest checkpoint's NextXID"] != "0:735" {
		t.Fatalf("parsed %+v", cd)
	}
	if patroni.FormatLSN(cd.MinRecoveryEndLSN) != "1/A0000F8" {
		t.Errorf("FormatLSN = %s", patroni.FormatLSN(cd.MinRecoveryEndLSN))
	}
	if _, err := ParseControlData("garbage\n"); err == nil {
		t.Error("garbage accepted")
	}
	if _, err := patroni.ParseLSN("0/XYZ"); err == nil {
		t.Error("bad LSN accepted")
	}
	hist, err := ParseTimelineHistory("1\t0/3000060\tno recovery target specified\n\n2\t0/5000000\tat restore point \"x\"\n")
	if err != nil || len(hist) != 2 || hist[0].Timeline != 1 || hist[0].SwitchPoint != 0x3000060 ||
		hist[1].Timeline != 2 || hist[1].Reason != `at restore point "x"` {
		t.Fatalf("history %+v %v", hist, err)
	}
}

// fakeDataDir makes a directory DataDirState considers valid, without PostgreSQL.
func fakeDataDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(dir, "global"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"PG_VERSION", "global/pg_control"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("15\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestWriteConfig(t *testing.T) {
	dir := fakeDataDir(t)
	if err := os.WriteFile(filepath.Join(dir, "postgresql.conf"), []byte("shared_buffers = 1MB # initdb's\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Name: "Node-2.x", Scope: "sc'ope", DataDir: dir, BinDir: harness.PGBinDir(t),
		Listen: "127.0.0.1,::1:6543", ConnectAddress: "10.0.0.2:6543",
		Superuser:   Auth{"admin", `su:p\w`},
		Replication: Auth{"repl", "it's"},
		Rewind:      Auth{"rewinder", "rw"},
		Parameters: map[string]string{"max_connections": "42", "port": "1", "work_mem": "4MB",
			"search_path": `"$user", public`, "primary_conninfo": "host=evil", "bad name": "x"},
		Pgpass:   filepath.Join(t.TempDir(), "pgpass"),
		UseSlots: true,
		Logger:   testLogger(),
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if o := p.Options(); o.Role != Primary || o.Upstream != nil {
		t.Fatalf("inferred options of a data dir without standby.signal: %+v", o)
	}
	up := &Upstream{Name: "node-1", Host: "db one", Port: 5432}
	if err := p.WriteConfig(StartOptions{Role: Replica, Upstream: up}); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	conf := read("postgresql.conf")
	if base := read(baseConfName); !strings.Contains(base, "initdb's") {
		t.Errorf("base conf: %q", base)
	}
	for _, want := range []string{
		headerMarker + "\n",
		"include_if_exists 'postgresql.base.conf'\n",
		"listen_addresses = '127.0.0.1,::1'\n",
		"port = '6543'\n",
		"cluster_name = 'sc''ope'\n",
		"max_connections = '42'\n",
		"wal_level = 'replica'\n",
		"hot_standby = 'on'\n",
		"wal_keep_size = '128MB'\n",
		"wal_log_hints = 'on'\n",
		"password_encryption = 'scram-sha-256'\n",
		"unix_socket_directories = '",
		"search_path = '\"$user\", public'\n",
		`primary_conninfo = 'host=''db one'' port=5432 user=repl passfile=` + cfg.Pgpass + ` application_name=Node-2.x sslmode=prefer'` + "\n",
		"primary_slot_name = 'node_2_x'\n",
		"recovery_target_timeline = 'latest'\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("postgresql.conf lacks %q:\n%s", want, conf)
		}
	}
	if !strings.HasPrefix(conf, headerMarker) || strings.Contains(conf, "evil") || strings.Contains(conf, "port = '1'") ||
		strings.Contains(conf, "bad name") {
		t.Errorf("postgresql.conf:\n%s", conf)
	}
	// The conninfo survives the file quoting.
	for _, line := range strings.Split(conf, "\n") {
		if n, v, ok := parseConfLine(line); ok && n == "primary_conninfo" {
			kv := parseConninfo(v)
			if kv["host"] != "db one" || kv["user"] != "repl" || kv["application_name"] != "Node-2.x" || kv["passfile"] != cfg.Pgpass {
				t.Errorf("primary_conninfo parsed back as %v", kv)
			}
		}
	}
	hba := read("pg_hba.conf")
	if !strings.HasPrefix(hba, headerMarker) || strings.Contains(hba, "trust") ||
		!strings.Contains(hba, "\nlocal all admin peer map=tusker\nlocal replication repl peer map=tusker\nlocal all all scram-sha-256\n") ||
		!strings.Contains(hba, "host replication all 0.0.0.0/0 scram-sha-256\n") {
		t.Errorf("pg_hba.conf:\n%s", hba)
	}
	if ident := read("pg_ident.conf"); !strings.HasPrefix(ident, headerMarker) ||
		!strings.Contains(ident, "\ntusker admin admin\ntusker admin repl\n") ||
		(p.osUser != "" && p.osUser != "admin" && !strings.Contains(ident, "\ntusker "+p.osUser+" admin\ntusker "+p.osUser+" repl\n")) {
		t.Errorf("pg_ident.conf (OS user %q):\n%s", p.osUser, ident)
	}
	if _, err := os.Stat(filepath.Join(dir, "standby.signal")); err != nil {
		t.Errorf("standby.signal missing for a replica: %v", err)
	}
	st, err := os.Stat(cfg.Pgpass)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("passfile mode %v", st.Mode().Perm())
	}
	pw, _ := os.ReadFile(cfg.Pgpass)
	if string(pw) != "*:*:*:repl:it's\n*:*:*:admin:su\\:p\\\\w\n*:*:*:rewinder:rw\n" {
		t.Errorf("passfile:\n%s", pw)
	}

	// A new Postgres on this directory infers replica + upstream from the files.
	p2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if o := p2.Options(); o.Role != Replica || o.Upstream == nil || o.Upstream.Host != "db one" || o.Upstream.Port != 5432 {
		t.Errorf("inferred options %+v", o)
	}

	// Primary: no standby.signal, no recovery settings; base conf is kept, not overwritten.
	cfg.PgHBA = []string{"local all all peer", "host all all 0.0.0.0/0 md5"}
	p.SetConfig(cfg)
	if err := p.WriteConfig(StartOptions{Role: Primary}); err != nil {
		t.Fatal(err)
	}
	conf = read("postgresql.conf")
	if strings.Contains(conf, "primary_conninfo") || strings.Contains(conf, "primary_slot_name") || strings.Contains(conf, "recovery_target_timeline") {
		t.Errorf("primary conf has recovery settings:\n%s", conf)
	}
	if _, err := os.Stat(filepath.Join(dir, "standby.signal")); !os.IsNotExist(err) {
		t.Errorf("standby.signal still there for a primary: %v", err)
	}
	if base := read(baseConfName); !strings.Contains(base, "initdb's") {
		t.Errorf("base conf overwritten: %q", base)
	}
	if hba := read("pg_hba.conf"); hba != headerMarker+"\nlocal all all peer\nhost all all 0.0.0.0/0 md5\n" {
		t.Errorf("pg_hba.conf:\n%s", hba)
	}
	if err := p.WriteConfig(StartOptions{}); err == nil {
		t.Error("WriteConfig without a role accepted")
	}

	// An empty data dir is not configured (that would break a later clone).
	empty := filepath.Join(t.TempDir(), "empty")
	cfg.DataDir = empty
	p3, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p3.DataDirState() != DataDirEmpty {
		t.Fatalf("state %v", p3.DataDirState())
	}
	if err := p3.WriteConfig(StartOptions{Role: Primary}); err == nil {
		t.Error("WriteConfig into an empty data dir accepted")
	}
	if err := os.MkdirAll(filepath.Join(empty, "lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}
	if p3.DataDirState() != DataDirEmpty {
		t.Errorf("lost+found only: state %v", p3.DataDirState())
	}
	if err := os.WriteFile(filepath.Join(empty, "junk"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if p3.DataDirState() != DataDirInvalid {
		t.Errorf("junk: state %v", p3.DataDirState())
	}
	if err := p3.RemoveDataDir(); err != nil {
		t.Fatal(err)
	}
	if p3.DataDirState() != DataDirEmpty {
		t.Errorf("after RemoveDataDir: state %v", p3.DataDirState())
	}
}

// TestRecoverySettings: a replica gets recovery_conf but never a target or tusker's own
// settings from it; a primary recovering to a target gets its settings and recovery.signal; and
// the recovery settings a restore wrote into postgresql.auto.conf are removed unless kept.
func TestRecoverySettings(t *testing.T) {
	dir := fakeDataDir(t)
	restoreLeft := "# Do not edit this file manually!\nwork_mem = '8MB'\n" +
		"restore_command = 'pgbackrest --stanza=main archive-get %f \"%p\"'\nrecovery_target_time='2026-12-01 10:00:00'\n"
	cfg := Config{Name: "n1", Scope: "s", DataDir: dir, BinDir: harness.PGBinDir(t), Listen: "127.0.0.1:6543",
		ConnectAddress: "127.0.0.1:6543", Superuser: Auth{"postgres", "x"}, Replication: Auth{"repl", "y"},
		RecoveryConf: map[string]string{"restore_command": "cp /archive/%f %p", "recovery_min_apply_delay": "5s",
			"recovery_target_time": "2000-01-01", "primary_conninfo": "host=evil", "standby_mode": "on"},
		Pgpass: filepath.Join(t.TempDir(), "pgpass"), Logger: testLogger()}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	exists := func(name string) bool { _, err := os.Stat(filepath.Join(dir, name)); return err == nil }
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	write("postgresql.auto.conf", restoreLeft)
	write("recovery.signal", "")
	if err := p.WriteConfig(StartOptions{Role: Replica, Upstream: &Upstream{Name: "n2", Host: "h", Port: 5432}}); err != nil {
		t.Fatal(err)
	}
	conf := read("postgresql.conf")
	for _, want := range []string{"restore_command = 'cp /archive/%f %p'\n", "recovery_min_apply_delay = '5s'\n",
		"recovery_target_timeline = 'latest'\n", "recovery_target_time = ''\n", "recovery_target_lsn = ''\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("replica postgresql.conf lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "2000-01-01") || strings.Contains(conf, "evil") || strings.Contains(conf, "standby_mode") {
		t.Errorf("a replica took a target or tusker's own settings from recovery_conf:\n%s", conf)
	}
	if got := read("postgresql.auto.conf"); got != "# Do not edit this file manually!\nwork_mem = '8MB'\n" {
		t.Errorf("postgresql.auto.conf keeps recovery settings: %q", got)
	}
	if !exists("standby.signal") || exists("recovery.signal") {
		t.Error("a replica has standby.signal and no recovery.signal")
	}

	// The start of a cluster bootstrapped from a backup, with the method's recovery_conf.
	write("postgresql.auto.conf", restoreLeft)
	rec := &Recovery{Params: map[string]string{"restore_command": "cp /a/%f %p", "recovery_target_time": "2026-12-01 10:00:00",
		"recovery_target_action": "promote", "primary_conninfo": "host=evil"}}
	if err := p.WriteConfig(StartOptions{Role: Primary, Recovery: rec}); err != nil {
		t.Fatal(err)
	}
	conf = read("postgresql.conf")
	for _, want := range []string{"restore_command = 'cp /a/%f %p'\n", "recovery_target_time = '2026-12-01 10:00:00'\n",
		"recovery_target_action = 'promote'\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("recovering primary's postgresql.conf lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "evil") || strings.Contains(conf, "/archive/") {
		t.Errorf("a primary got primary_conninfo or the replicas' recovery_conf:\n%s", conf)
	}
	if !exists("recovery.signal") || exists("standby.signal") || strings.Contains(read("postgresql.auto.conf"), "restore_command") {
		t.Error("a primary recovering to a target has recovery.signal only, and its settings only from postgresql.conf")
	}

	// keep_existing_recovery_conf without recovery_conf: what the restore left stays.
	write("postgresql.auto.conf", restoreLeft)
	write("standby.signal", "")
	if err := p.WriteConfig(StartOptions{Role: Primary, Recovery: &Recovery{KeepExisting: true}}); err != nil {
		t.Fatal(err)
	}
	if read("postgresql.auto.conf") != restoreLeft || !exists("recovery.signal") || !exists("standby.signal") {
		t.Error("keep_existing_recovery_conf: the restore's settings and signal files must stay")
	}

	// The end of that recovery, or any plain primary: no signals, no recovery settings.
	if err := p.WriteConfig(StartOptions{Role: Primary}); err != nil {
		t.Fatal(err)
	}
	if exists("recovery.signal") || exists("standby.signal") || strings.Contains(read("postgresql.auto.conf"), "recovery_target") ||
		strings.Contains(read("postgresql.conf"), "restore_command") {
		t.Error("a plain primary keeps recovery settings or signal files")
	}
	if err := p.WriteConfig(StartOptions{Role: Replica, Recovery: rec}); err == nil {
		t.Error("recovery settings for a replica's start must be refused")
	}
}
