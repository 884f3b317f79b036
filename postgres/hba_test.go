package postgres

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/test/harness"
)

func TestDefaultHBAHasNoTrust(t *testing.T) {
	cfg := Config{Superuser: Auth{Username: "postgres"}, Replication: Auth{Username: "replicator"}}
	assert.Equal(t, headerMarker+"\n"+
		"local all postgres peer map=tusker\n"+
		"local replication replicator peer map=tusker\n"+
		"local all all scram-sha-256\n"+
		"host all all 127.0.0.1/32 scram-sha-256\n"+
		"host all all ::1/128 scram-sha-256\n"+
		"host replication all 127.0.0.1/32 scram-sha-256\n"+
		"host replication all ::1/128 scram-sha-256\n"+
		"host all all 0.0.0.0/0 scram-sha-256\n"+
		"host replication all 0.0.0.0/0 scram-sha-256\n", renderHBA(cfg, "svc"))

	// An OS user without a name: peer cannot work, tusker sends the password.
	assert.Equal(t, []string{"local all postgres scram-sha-256", "local replication replicator scram-sha-256",
		"local all all scram-sha-256"}, defaultHBA(cfg, "")[:3])

	// Without a replication user the superuser streams; names that are keywords or not plain
	// are quoted; a user-managed ident_file may lack the tusker map.
	cfg = Config{Superuser: Auth{Username: "all"}, Parameters: map[string]string{"ident_file": "/etc/ident"}}
	assert.Equal(t, []string{`local all "all" peer`, `local replication "all" peer`, "local all all scram-sha-256"},
		defaultHBA(cfg, "svc")[:3])
	for in, want := range map[string]string{"postgres": "postgres", "Admin_1.x-y": "Admin_1.x-y",
		"replication": `"replication"`, "+group": `"+group"`, "@file": `"@file"`, "/regex": `"/regex"`,
		"two words": `"two words"`, "": `""`} {
		assert.Equal(t, want, hbaToken(in), in)
	}

	// A configured pg_hba is written as it is, trust included: then the configuration asked for it.
	cfg.PgHBA = []string{"local all all trust"}
	assert.Equal(t, headerMarker+"\nlocal all all trust\n", renderHBA(cfg, "svc"))
}

func TestIdentMap(t *testing.T) {
	cfg := Config{Superuser: Auth{Username: "admin"}, Replication: Auth{Username: "repl"},
		PgIdent: []string{"ops alice admin", "ops bob repl\n"}}
	assert.Equal(t, headerMarker+"\n"+
		"# The tusker map: peer authentication on the Unix socket for tusker (pg_hba.conf: map=tusker).\n"+
		"tusker svc admin\n"+
		"tusker svc repl\n"+
		"tusker admin admin\n"+
		"tusker admin repl\n"+
		"ops alice admin\n"+
		"ops bob repl\n", renderIdent(cfg, "svc"))

	// The OS user named like the superuser, without a replication user: one line.
	cfg = Config{Superuser: Auth{Username: "postgres"}}
	assert.Equal(t, headerMarker+"\n"+
		"# The tusker map: peer authentication on the Unix socket for tusker (pg_hba.conf: map=tusker).\n"+
		"tusker postgres postgres\n", renderIdent(cfg, "postgres"))
}

// TestForeignIdentFileKept: tusker did not use to write pg_ident.conf, so one with mappings of
// the user's own is kept aside once before tusker's replaces it; initdb's (comments only) is not.
func TestForeignIdentFileKept(t *testing.T) {
	dir := fakeDataDir(t)
	ident := filepath.Join(dir, "pg_ident.conf")
	require.NoError(t, os.WriteFile(ident, []byte("# mine\nops alice postgres\n"), 0o600))
	p, err := New(Config{Name: "n1", DataDir: dir, BinDir: harness.PGBinDir(t), Listen: "127.0.0.1:5432",
		Superuser: Auth{Username: "postgres"}, PgIdent: []string{"ops alice postgres"},
		Pgpass: filepath.Join(t.TempDir(), "pgpass"), Logger: testLogger()})
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.WriteConfig(StartOptions{Role: Primary}))
	assert.Equal(t, "# mine\nops alice postgres\n", readFile(t, ident+".tusker-backup"))
	got := readFile(t, ident)
	assert.True(t, strings.HasPrefix(got, headerMarker), got)
	assert.True(t, strings.HasSuffix(got, "tusker postgres postgres\nops alice postgres\n"), got)
	// From now on the file is tusker's: rewritten, and the backup stays as it was.
	require.NoError(t, p.WriteConfig(StartOptions{Role: Primary}))
	assert.Equal(t, "# mine\nops alice postgres\n", readFile(t, ident+".tusker-backup"))

	dir = fakeDataDir(t)
	ident = filepath.Join(dir, "pg_ident.conf")
	require.NoError(t, os.WriteFile(ident, []byte("# initdb's\n# MAPNAME SYSTEM-USERNAME PG-USERNAME\n\n"), 0o600))
	p2, err := New(Config{Name: "n1", DataDir: dir, BinDir: harness.PGBinDir(t), Listen: "127.0.0.1:5432",
		Superuser: Auth{Username: "postgres"}, Pgpass: filepath.Join(t.TempDir(), "pgpass"), Logger: testLogger()})
	require.NoError(t, err)
	defer p2.Close()
	require.NoError(t, p2.WriteConfig(StartOptions{Role: Primary}))
	_, err = os.Lstat(ident + ".tusker-backup")
	assert.True(t, os.IsNotExist(err), "initdb's pg_ident.conf backed up")
}

// socketConn connects over the node's Unix socket as user, with password (none when ""), and
// never with a password file, so that only what pg_hba.conf allows without one can succeed.
func (n *node) socketConn(t *testing.T, user, password string) (*pgx.Conn, error) {
	t.Helper()
	cfg, l := n.pg.config()
	dir, port := localTarget(cfg, l)
	require.True(t, strings.HasPrefix(dir, "/"), "local target %s is not a socket directory", dir)
	cc, err := pgx.ParseConfig(conninfo("host", dir, "port", strconv.Itoa(port), "user", user, "dbname", "postgres",
		"sslmode", "disable", "passfile", filepath.Join(t.TempDir(), "no-pgpass"), "connect_timeout", "5"))
	require.NoError(t, err)
	cc.Password = password
	return pgx.ConnectConfig(ctxT(t, 10*time.Second), cc)
}

// TestLocalConnectionsWithoutTrust: the generated pg_hba.conf trusts nobody. On the Unix socket
// the superuser gets in by peer (tusker runs as an OS user the tusker map lets in, whatever its
// name), tusker's own queries work, and any other role needs its password.
func TestLocalConnectionsWithoutTrust(t *testing.T) {
	n := newNode(t, t.TempDir(), "local")
	require.NoError(t, n.pg.Initdb(ctxT(t, 60*time.Second), []string{"--no-sync"}))
	require.NoError(t, n.pg.Start(ctxT(t, 60*time.Second), StartOptions{Role: Primary}))

	hba := readFile(t, filepath.Join(n.cfg.DataDir, "pg_hba.conf"))
	for _, line := range strings.Split(hba, "\n") {
		f := strings.Fields(line)
		assert.False(t, len(f) > 0 && !strings.HasPrefix(f[0], "#") && strings.Contains(line, "trust"), "pg_hba.conf line %q", line)
	}
	require.Contains(t, hba, "local all tusker_admin peer map=tusker\n")
	ident := readFile(t, filepath.Join(n.cfg.DataDir, "pg_ident.conf"))
	require.NotEmpty(t, n.pg.osUser)
	require.Contains(t, ident, "tusker "+n.pg.osUser+" tusker_admin\n")

	// tusker's own queries (its kept connection, and fresh ones) work.
	st, err := n.pg.State(ctxT(t, 10*time.Second))
	require.NoError(t, err)
	assert.False(t, st.InRecovery)
	n.exec("CREATE ROLE other LOGIN PASSWORD 'other-pw'")
	n.exec("CREATE ROLE nopass LOGIN")

	// The superuser connects by peer: no password is given, and none is asked for.
	conn, err := n.socketConn(t, "tusker_admin", "")
	require.NoError(t, err, "superuser by peer on the socket")
	var rules int
	require.NoError(t, conn.QueryRow(ctxT(t, 5*time.Second),
		"SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'trust' OR error IS NOT NULL").Scan(&rules))
	assert.Zero(t, rules, "trust or broken lines in pg_hba_file_rules")
	var maps int
	require.NoError(t, conn.QueryRow(ctxT(t, 5*time.Second),
		"SELECT count(*) FROM pg_ident_file_mappings WHERE map_name = 'tusker' AND sys_name = $1 AND pg_username = 'tusker_admin' AND error IS NULL",
		n.pg.osUser).Scan(&maps))
	assert.Equal(t, 1, maps, "the tusker map as PostgreSQL parsed it")
	require.NoError(t, conn.Close(ctxT(t, 5*time.Second)))

	// Another role without a password is refused; with its password it gets in.
	for _, role := range []string{"other", "nopass"} {
		_, err := n.socketConn(t, role, "")
		require.Error(t, err, "%s without a password on the socket", role)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			assert.Equal(t, "28P01", pgErr.Code, "%s: %v", role, err) // invalid_password
		} else {
			assert.Contains(t, err.Error(), "password", "%s", role)
		}
	}
	conn, err = n.socketConn(t, "other", "other-pw")
	require.NoError(t, err, "other with its password on the socket")
	require.NoError(t, conn.Close(ctxT(t, 5*time.Second)))
	_, err = n.socketConn(t, "other", "wrong")
	require.Error(t, err)
}
