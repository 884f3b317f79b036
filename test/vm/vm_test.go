// Package vm checks tusker's path to a VM: the Debian package of `make deb` installs with dpkg on
// this machine, its systemd unit passes `systemd-analyze verify`, and the unit's command line,
// run as the unit's user with the unit's environment and a real NOTIFY_SOCKET, starts a member
// against an external etcd from the example configuration the package installs: READY=1 once it
// leads, STOPPING=1 and a clean exit on the unit's KillSignal.
package vm

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/test/harness"
)

const unitPath = "/lib/systemd/system/tusker.service"

var deb string

// TestMain builds the package (make deb). It stays root: dpkg needs it, and the member runs as
// the unit's user, as systemd would run it.
func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "test/vm: installing the package needs root (CI runs as root; run `sudo make test`)")
		os.Exit(1)
	}
	root, err := harness.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/vm:", err)
		os.Exit(1)
	}
	cmd := exec.Command("make", "-s", "-C", root, "deb")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/vm: make deb:", err)
		os.Exit(1)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	deb = filepath.Join(root, lines[len(lines)-1])
	os.Exit(m.Run())
}

// unit is the [Service] section of a unit file: each key's values in order.
type unit map[string][]string

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "["):
			section = l
		case section == "[Service]":
			k, v, ok := strings.Cut(l, "=")
			require.True(t, ok, "unit line %q", l)
			u[k] = append(u[k], v)
		}
	}
	require.NoError(t, sc.Err())
	return u
}

func (u unit) one(t *testing.T, key string) string {
	t.Helper()
	require.Len(t, u[key], 1, "%s in %s", key, unitPath)
	return u[key][0]
}

// envFile reads KEY=VALUE lines as systemd's EnvironmentFile= does (comments and blank lines
// skipped, one pair of quotes removed).
func envFile(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var env []string
	for l := range strings.SplitSeq(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, _ := strings.Cut(l, "=")
		env = append(env, k+"="+strings.Trim(v, `"'`))
	}
	return env
}

func TestPackageOnThisMachine(t *testing.T) {
	ctx := context.Background()
	out, err := exec.Command("dpkg", "-i", deb).CombinedOutput()
	require.NoError(t, err, "dpkg -i %s: %s", deb, out)
	t.Cleanup(func() {
		if out, err := exec.Command("dpkg", "--purge", "tusker").CombinedOutput(); err != nil {
			t.Errorf("dpkg --purge tusker: %v: %s", err, out)
		}
	})

	t.Run("files", func(t *testing.T) {
		out, err := exec.Command("dpkg", "-L", "tusker").Output()
		require.NoError(t, err)
		for _, f := range []string{"/usr/bin/tusker", "/usr/bin/tuskerctl", unitPath, "/etc/tusker/tusker.yml"} {
			require.Contains(t, string(out), f+"\n")
		}
		v, err := exec.Command("/usr/bin/tuskerctl", "version").CombinedOutput()
		require.NoError(t, err, "%s", v)
		fi, err := os.Stat("/etc/tusker/tusker.yml")
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o640), fi.Mode().Perm(), "the configuration holds passwords")
		pg, err := user.LookupGroup("postgres")
		require.NoError(t, err)
		require.Equal(t, pg.Gid, strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Gid)), "postgres reads its configuration")
	})

	t.Run("systemd-analyze verify", func(t *testing.T) {
		out, err := exec.Command("systemd-analyze", "verify", unitPath).CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.NotContains(t, string(out), "tusker.service", "systemd-analyze has something to say about the unit")
	})

	u := readUnit(t, unitPath)
	require.Equal(t, "notify", u.one(t, "Type"))
	require.Equal(t, "SIGTERM", u.one(t, "KillSignal"))
	account, err := user.Lookup(u.one(t, "User"))
	require.NoError(t, err, "the unit's User= exists once the package is installed")
	uid, _ := strconv.Atoi(account.Uid)
	gid, _ := strconv.Atoi(account.Gid)
	argv := strings.Fields(u.one(t, "ExecStart"))

	// What a `systemctl edit tusker` drop-in or /etc/default/tusker would say on a real VM: this
	// machine's addresses, the external etcd, and WatchdogSec=4s.
	etcd := harness.StartEtcd(t)
	// Not t.TempDir: its parent is root's alone, and the member runs as the unit's user.
	dir, err := os.MkdirTemp("", "tusker-vm-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	data := filepath.Join(dir, "data")
	require.NoError(t, os.Mkdir(data, 0o700))
	require.NoError(t, os.Chown(data, uid, gid))
	apiPort, pgPort := harness.FreePort(t), harness.FreePort(t)
	overrides := filepath.Join(dir, "default-tusker")
	require.NoError(t, os.WriteFile(overrides, []byte(fmt.Sprintf(`# /etc/default/tusker of this VM
PATRONI_NAME=vm1
PATRONI_ETCD3_HOSTS=%s
PATRONI_RESTAPI_LISTEN=127.0.0.1:%d
PATRONI_RESTAPI_CONNECT_ADDRESS=127.0.0.1:%d
PATRONI_POSTGRESQL_LISTEN=127.0.0.1:%d
PATRONI_POSTGRESQL_CONNECT_ADDRESS=127.0.0.1:%d
PATRONI_POSTGRESQL_DATA_DIR=%s
`, etcd.HostPort, apiPort, apiPort, pgPort, pgPort, data)), 0o644))
	// RuntimeDirectory=postgresql: systemd would make PostgreSQL's socket directory.
	if _, err := os.Stat("/run/postgresql"); os.IsNotExist(err) {
		require.NoError(t, os.Mkdir("/run/postgresql", 0o2775))
		require.NoError(t, os.Chown("/run/postgresql", uid, gid))
		t.Cleanup(func() { os.RemoveAll("/run/postgresql") })
	}
	notify := harness.ListenNotify(t, filepath.Join(dir, "notify.sock"))

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
		"HOME=" + account.HomeDir, "USER=" + account.Username, "NOTIFY_SOCKET=" + notify.Path, "WATCHDOG_USEC=4000000"},
		envFile(t, overrides)...)
	logPath := filepath.Join(dir, "tusker.log")
	logf, err := os.Create(logPath)
	require.NoError(t, err)
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
		Setpgid: true, Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("tusker's log:\n%s", b)
		}
	})

	require.NoError(t, notify.WaitFor("READY=1", 90*time.Second))
	require.Equal(t, "primary, running, leader", notify.StatusBefore("READY=1"))
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/primary", apiPort))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:change-me@127.0.0.1:%d/postgres?sslmode=disable", pgPort))
	require.NoError(t, err, "the example configuration's superuser and pg_hba")
	var one int
	require.NoError(t, conn.QueryRow(ctx, "SELECT 1").Scan(&one))
	conn.Close(ctx)
	require.NoError(t, harness.WaitFor(ctx, 10*time.Second, 100*time.Millisecond, func() error {
		if notify.Count("WATCHDOG=1") < 2 {
			return fmt.Errorf("%d keep-alives", notify.Count("WATCHDOG=1"))
		}
		return nil
	}), "WatchdogSec=4s: a keep-alive every 2 s")

	// tuskerctl with the installed configuration and the same environment, as an operator on the VM.
	ctl := exec.Command("/usr/bin/tuskerctl", "-c", "/etc/tusker/tusker.yml", "list")
	ctl.Env = cmd.Env
	ctl.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err = ctl.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "vm1")
	require.Contains(t, string(out), "Leader")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, "a clean exit on SIGTERM")
	case <-time.After(60 * time.Second):
		t.Fatal("tusker did not exit within TimeoutStopSec")
	}
	require.Contains(t, notify.Assignments(), "STOPPING=1")
	b, err := os.ReadFile(logPath)
	require.NoError(t, err)
	require.Contains(t, string(b), "released the leader key")
}
