// Package container runs tusker's image as a user runs it: three containers of the image that
// `make image` builds, with Debian's podman and crun, next to a real etcd. It checks what the
// image promises: tusker as PID 1 running as postgres and never root, configured by a mounted
// file or by PATRONI_* variables, a failover with no acknowledged write lost when a container is
// killed, a clean stop that hands the leader key over within 2 s when one is stopped, a health
// check on /liveness, and no zombie left by the hooks' children.
package container

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/test/harness"
)

// postgresUID is the image's postgres user (docker/setup.sh): what every process in a container
// must run as.
const postgresUID = 999

var img harness.Image

// TestMain builds the image (make image) and stays root: podman needs it, and the containers
// drop to postgres by themselves.
func TestMain(m *testing.M) {
	harness.ImageMain(m, "test/container", "podman", func(i harness.Image) {
		img = i
		// Containers of an interrupted run.
		if out, err := podmanCmd("ps", "-aq", "--filter", "label=tusker-test=container").Output(); err == nil {
			for id := range strings.FieldsSeq(string(out)) {
				_ = podmanCmd("rm", "-f", id).Run()
			}
		}
	})
}

func podmanCmd(args ...string) *exec.Cmd { return exec.Command("podman", args...) }

// podman runs podman and returns its output; podman's complaints that it cannot reach systemd
// to schedule health checks (there is no systemd here: the test runs them itself) are dropped.
func podman(t *testing.T, args ...string) string {
	t.Helper()
	out, err := podmanCmd(args...).CombinedOutput()
	text := withoutSystemdNoise(string(out))
	require.NoError(t, err, "podman %s: %s", strings.Join(args, " "), text)
	return strings.TrimSpace(text)
}

func withoutSystemdNoise(s string) string {
	var keep []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, "unable to get systemd connection") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

// member is one container.
type member struct {
	name      string // the member's name; the container is prefix-name
	container string
	apiPort   int
	pgPort    int
	data      string // host directory mounted at /var/lib/postgresql/data
	conf      string // host directory mounted at /etc/tusker, "" for none
	env       []string
	args      []string // after the image name: the configuration path, or nothing
}

func (m *member) api(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", m.apiPort, path)
}

func (m *member) dsn() string {
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2",
		harness.SuperuserPassword, m.pgPort)
}

func (m *member) check(path string) int {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(m.api(path))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (m *member) status() map[string]any {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(m.api("/patroni"))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st map[string]any
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return nil
	}
	return st
}

func (m *member) run(t *testing.T) {
	t.Helper()
	args := []string{"run", "-d", "--name", m.container, "--label", "tusker-test=container",
		"--network", "host", "-v", m.data + ":/var/lib/postgresql/data"}
	args = append(args, harness.ContainerLimits()...)
	if m.conf != "" {
		args = append(args, "-v", m.conf+":/etc/tusker:ro")
	}
	for _, e := range m.env {
		args = append(args, "-e", e)
	}
	args = append(args, img.Name)
	podman(t, append(args, m.args...)...)
}

// cluster is three members sharing an etcd.
type cluster struct {
	members []*member
}

func (c *cluster) primary() (*member, error) {
	var found []*member
	for _, m := range c.members {
		if m.check("/primary") == http.StatusOK {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		names := []string{}
		for _, m := range found {
			names = append(names, m.name)
		}
		return nil, fmt.Errorf("%d primaries %v", len(found), names)
	}
	return found[0], nil
}

// healthy: one primary, every other member a streaming replica.
func (c *cluster) healthy() error {
	p, err := c.primary()
	if err != nil {
		return err
	}
	for _, m := range c.members {
		if m == p {
			continue
		}
		st := m.status()
		if st["role"] != "replica" || st["state"] != "running" || st["replication_state"] != "streaming" {
			return fmt.Errorf("%s is not a streaming replica: %v", m.name, st)
		}
	}
	return nil
}

func (c *cluster) dial(ctx context.Context) (*pgx.Conn, string, error) {
	p, err := c.primary()
	if err != nil {
		return nil, "", err
	}
	conn, err := pgx.Connect(ctx, p.dsn())
	return conn, p.name, err
}

// callbackScript records every hook call and leaves a child behind that outlives it: the child
// is reparented to PID 1 (tusker), which must reap it, or it stays a zombie.
const callbackScript = `#!/bin/sh
echo "$(date +%s) $*" >> /var/lib/postgresql/data/callbacks.log
sleep 1 &
exit 0
`

func fileConfig(scope, name, etcd string, apiPort, pgPort int) string {
	return fmt.Sprintf(`scope: %[1]s
name: %[2]s
restapi:
  listen: 127.0.0.1:%[4]d
  connect_address: 127.0.0.1:%[4]d
etcd3:
  hosts: %[3]s
bootstrap:
  dcs:
    ttl: 6
    loop_wait: 1
    retry_timeout: 2
    synchronous_mode: on
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_keep_size: 64MB
        wal_log_hints: on
  pg_hba:
  - local all postgres peer map=tusker
  - local replication replicator peer map=tusker
  - local all all scram-sha-256
  - host all all 127.0.0.1/32 scram-sha-256
  - host replication all 127.0.0.1/32 scram-sha-256
postgresql:
  listen: 127.0.0.1:%[5]d
  connect_address: 127.0.0.1:%[5]d
  data_dir: /var/lib/postgresql/data/pgdata
  authentication:
    superuser: {username: postgres, password: %[6]s}
    replication: {username: replicator, password: %[7]s}
    rewind: {username: rewinder, password: rewind-pw}
  callbacks:
    on_start: /etc/tusker/callback.sh
    on_stop: /etc/tusker/callback.sh
    on_role_change: /etc/tusker/callback.sh
`, scope, name, etcd, apiPort, pgPort, harness.SuperuserPassword, harness.ReplicationPassword)
}

// newCluster starts n1 from a mounted configuration file (which bootstraps the cluster with
// synchronous_mode on), n2 from PATRONI_CONFIGURATION and n3 from PATRONI_* variables alone.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	etcd := harness.StartEtcd(t)
	prefix := fmt.Sprintf("tsk-ct-%d", time.Now().UnixNano()%1_000_000)
	scope := "ct"
	c := &cluster{}
	for i := 1; i <= 3; i++ {
		m := &member{name: fmt.Sprintf("n%d", i), apiPort: harness.FreePort(t), pgPort: harness.FreePort(t)}
		m.container = prefix + "-" + m.name
		m.data = filepath.Join(t.TempDir(), "data")
		require.NoError(t, os.Mkdir(m.data, 0o700))
		require.NoError(t, os.Chown(m.data, postgresUID, postgresUID))
		yml := fileConfig(scope, m.name, etcd.HostPort, m.apiPort, m.pgPort)
		switch i {
		case 1:
			m.conf = t.TempDir()
			require.NoError(t, os.Chmod(m.conf, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(m.conf, "tusker.yml"), []byte(yml), 0o644))
			require.NoError(t, os.WriteFile(filepath.Join(m.conf, "callback.sh"), []byte(callbackScript), 0o755))
			m.args = []string{"/etc/tusker/tusker.yml"}
		case 2:
			// The hook lives in the data volume: this member mounts no configuration directory.
			require.NoError(t, os.WriteFile(filepath.Join(m.data, "callback.sh"), []byte(callbackScript), 0o755))
			yml = strings.ReplaceAll(yml, "/etc/tusker/callback.sh", "/var/lib/postgresql/data/callback.sh")
			m.env = []string{"PATRONI_CONFIGURATION=" + yml}
		case 3:
			m.env = []string{"PATRONI_SCOPE=" + scope, "PATRONI_NAME=" + m.name,
				"PATRONI_ETCD3_HOSTS=" + etcd.HostPort,
				"PATRONI_RESTAPI_LISTEN=127.0.0.1:" + strconv.Itoa(m.apiPort),
				"PATRONI_RESTAPI_CONNECT_ADDRESS=127.0.0.1:" + strconv.Itoa(m.apiPort),
				"PATRONI_POSTGRESQL_LISTEN=127.0.0.1:" + strconv.Itoa(m.pgPort),
				"PATRONI_POSTGRESQL_CONNECT_ADDRESS=127.0.0.1:" + strconv.Itoa(m.pgPort),
				"PATRONI_POSTGRESQL_DATA_DIR=/var/lib/postgresql/data/pgdata",
				"PATRONI_SUPERUSER_USERNAME=postgres", "PATRONI_SUPERUSER_PASSWORD=" + harness.SuperuserPassword,
				"PATRONI_REPLICATION_USERNAME=replicator", "PATRONI_REPLICATION_PASSWORD=" + harness.ReplicationPassword,
				"PATRONI_REWIND_USERNAME=rewinder", "PATRONI_REWIND_PASSWORD=rewind-pw"}
		}
		c.members = append(c.members, m)
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			if t.Failed() {
				out, _ := podmanCmd("logs", "--tail", "40", m.container).CombinedOutput()
				t.Logf("--- %s (%s), last lines:\n%s", m.name, m.container, withoutSystemdNoise(string(out)))
			}
			_ = podmanCmd("rm", "-f", "-t", "0", m.container).Run()
		}
	})
	ctx := context.Background()
	c.members[0].run(t)
	require.NoError(t, harness.WaitFor(ctx, 60*time.Second, 200*time.Millisecond, func() error {
		if c.members[0].check("/primary") != http.StatusOK {
			return fmt.Errorf("n1 is not the primary yet")
		}
		return nil
	}))
	c.members[1].run(t)
	c.members[2].run(t)
	require.NoError(t, harness.WaitFor(ctx, 90*time.Second, 250*time.Millisecond, c.healthy))
	return c
}

// TestImageCluster is the image's life in one story: bootstrap from three kinds of
// configuration, then a killed primary container, then a stopped one, with a writer throughout.
func TestImageCluster(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t)

	t.Run("image", func(t *testing.T) {
		var cfg []struct {
			Config struct {
				User       string
				Entrypoint []string
			}
			Healthcheck struct{ Test []string }
		}
		require.NoError(t, json.Unmarshal([]byte(podman(t, "image", "inspect", img.Name)), &cfg))
		require.Len(t, cfg, 1)
		require.Equal(t, "postgres", cfg[0].Config.User)
		require.Equal(t, []string{"/usr/local/bin/tusker"}, cfg[0].Config.Entrypoint)
		require.Contains(t, cfg[0].Healthcheck.Test, "--healthcheck")
		for _, m := range c.members {
			// The image's own HEALTHCHECK: each member finds its REST port by itself (file,
			// PATRONI_CONFIGURATION, variables), and /liveness answers.
			podman(t, "healthcheck", "run", m.container) // exits 1 when unhealthy
		}
		// The archive make image writes loads back as the same image.
		out := podman(t, "load", "-q", "-i", img.Archive)
		require.Contains(t, out, img.Name)
		// tuskerctl is tusker by another name in the image.
		out = podman(t, "exec", c.members[0].container, "tuskerctl", "-c", "/etc/tusker/tusker.yml", "list")
		for _, m := range c.members {
			require.Contains(t, out, m.name)
		}
	})

	w, err := harness.StartAckWriter(ctx, c.dial)
	require.NoError(t, err)
	t.Cleanup(w.Stop)
	require.NoError(t, w.WaitCount(ctx, "", 50, 30*time.Second))

	t.Run("kill", func(t *testing.T) {
		p, err := c.primary()
		require.NoError(t, err)
		killed := time.Now()
		podman(t, "kill", p.container) // SIGKILL to PID 1: the whole container dies at once
		require.NoError(t, harness.WaitFor(ctx, 30*time.Second, 100*time.Millisecond, func() error {
			np, err := c.primary()
			if err != nil {
				return err
			}
			if np == p {
				return fmt.Errorf("%s is still the primary", p.name)
			}
			return nil
		}))
		np, _ := c.primary()
		require.NoError(t, w.WaitCount(ctx, np.name, 50, 30*time.Second))
		podman(t, "start", p.container)
		require.NoError(t, harness.WaitFor(ctx, 90*time.Second, 250*time.Millisecond, c.healthy),
			"%s came back as a replica", p.name)
		t.Logf("%s killed; %s took over; the longest pause in acknowledged writes: %s", p.name, np.name, w.MaxGapAfter(killed).Round(time.Millisecond))
	})

	t.Run("stop", func(t *testing.T) {
		p, err := c.primary()
		require.NoError(t, err)
		start := time.Now()
		stopped := make(chan error, 1)
		go func() { stopped <- podmanCmd("stop", "-t", "10", p.container).Run() }()
		var took time.Duration
		require.NoError(t, harness.WaitFor(ctx, 10*time.Second, 20*time.Millisecond, func() error {
			np, err := c.primary()
			if err != nil || np == p {
				return fmt.Errorf("no other primary yet (%v)", err)
			}
			took = time.Since(start)
			return nil
		}))
		require.NoError(t, <-stopped)
		t.Logf("podman stop of %s at %s: another member was primary after %s", p.name, start.UTC().Format("15:04:05.000"), took.Round(time.Millisecond))
		if os.Getenv("DEBUGSTOP") != "" {
			for _, m := range c.members {
				out, _ := podmanCmd("logs", "--since", start.Add(-time.Second).Format(time.RFC3339), m.container).CombinedOutput()
				t.Logf("--- %s:\n%s", m.name, withoutSystemdNoise(string(out)))
			}
		}
		require.LessOrEqual(t, took, 2*time.Second, "the leader key is released on SIGTERM, so a replica takes over at once")
		// Exit code 0, not 137: tusker was done before podman's 10 s grace period ran out.
		require.Equal(t, "0", podman(t, "inspect", "--format", "{{.State.ExitCode}}", p.container))
		logs := podman(t, "logs", p.container)
		require.Contains(t, logs, "database system is shut down")
		require.Contains(t, logs, "released the leader key")
		require.Equal(t, "shut down", controlState(t, filepath.Join(p.data, "pgdata")), "a clean shutdown, not a crash")
		podman(t, "start", p.container)
		require.NoError(t, harness.WaitFor(ctx, 90*time.Second, 250*time.Millisecond, c.healthy))
	})

	w.Stop()
	t.Run("no acknowledged write lost", func(t *testing.T) {
		conn, _, err := c.dial(ctx)
		require.NoError(t, err)
		defer conn.Close(ctx)
		missing, err := w.MissingOn(ctx, conn)
		require.NoError(t, err)
		require.Empty(t, missing)
		t.Logf("%d writes acknowledged by %v", w.Count(""), w.Nodes())
	})

	t.Run("processes", func(t *testing.T) {
		// The hooks ran (a role change and the starts above) and their children are gone by now.
		for _, m := range c.members[:2] {
			b, err := os.ReadFile(filepath.Join(m.data, "callbacks.log"))
			require.NoError(t, err, "%s ran no hook", m.name)
			require.Contains(t, string(b), "on_start", m.name)
		}
		time.Sleep(2 * time.Second) // the hooks' `sleep 1` children end
		for _, m := range c.members {
			procs := containerProcesses(t, m.container)
			require.NotEmpty(t, procs)
			for _, p := range procs {
				require.Equal(t, postgresUID, p.uid, "%s: %s runs as uid %d", m.name, p.cmd, p.uid)
				require.NotEqual(t, "Z", p.state, "%s: zombie %d (%s)", m.name, p.pid, p.cmd)
			}
		}
	})
}

// controlState is pg_controldata's "Database cluster state" of a data directory on the host.
func controlState(t *testing.T, dataDir string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(harness.PGBinDir(t), "pg_controldata"), dataDir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	for l := range strings.SplitSeq(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "Database cluster state:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("pg_controldata printed no cluster state: %s", out)
	return ""
}

type process struct {
	pid   int
	uid   int
	state string
	cmd   string
}

// containerProcesses lists every process in the container's PID namespace, read from the host's
// /proc: what runs there, as whom, and whether it is a zombie.
func containerProcesses(t *testing.T, container string) []process {
	t.Helper()
	pid := podman(t, "inspect", "--format", "{{.State.Pid}}", container)
	require.NotEqual(t, "0", pid, "%s is not running: %s", container, podman(t, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}", container))
	ns, err := os.Readlink("/proc/" + pid + "/ns/pid")
	require.NoError(t, err)
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var procs []process
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", n)); err != nil || l != ns {
			continue
		}
		p := process{pid: n, uid: -1}
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", n))
		if err != nil {
			continue // exited meanwhile
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			fields := strings.Fields(v)
			switch {
			case k == "Name" && len(fields) > 0:
				p.cmd = fields[0]
			case k == "State" && len(fields) > 0:
				p.state = fields[0]
			case k == "Uid" && len(fields) == 4:
				// Real, effective, saved and filesystem uid: all of them must be postgres's.
				p.uid, _ = strconv.Atoi(fields[0])
				for _, u := range fields[1:] {
					if u != fields[0] {
						p.uid = -1
					}
				}
			}
		}
		f.Close()
		procs = append(procs, p)
	}
	return procs
}
