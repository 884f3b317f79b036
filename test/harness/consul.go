package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ConsulVersion is the Consul version the tests use (built by scripts/install-deps.sh; the last
// MPL-2.0 release).
const ConsulVersion = "v1.16.3"

// ConsulPath finds the consul binary: TUSKER_CONSUL_BIN, the install-deps cache, then PATH.
func ConsulPath() (string, error) {
	cands := []string{os.Getenv("TUSKER_CONSUL_BIN"), filepath.Join(CacheDir(), "consul-"+ConsulVersion, "consul")}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("consul binary not found (looked at $TUSKER_CONSUL_BIN, %s and PATH): run `make deps`",
		filepath.Join(CacheDir(), "consul-"+ConsulVersion))
}

// PrepareConsul copies the consul binary into binDir; use it in Main's prepare.
func PrepareConsul(binDir string) error {
	p, err := ConsulPath()
	if err != nil {
		return err
	}
	return CopyFile(p, filepath.Join(binDir, "consul"), 0o755)
}

// Consul is a real single-server Consul agent on loopback. It is a server with a data directory,
// not a -dev agent (which keeps everything in memory), so that Stop and Start keep the KV store
// and the sessions, like a restarted production server.
type Consul struct {
	Addr  string // 127.0.0.1:port of the HTTP API
	Token string // the management token when ACLs are on, else ""
	// HTTPSAddr is 127.0.0.1:port of the HTTPS API when StartConsulTLS started it, else "".
	HTTPSAddr string
	// ElectedIn is how long the last Start took until the server was ready.
	ElectedIn time.Duration
	dir       string
	bin       string
	logFile   string
	cmd       *exec.Cmd
	done      chan struct{}
}

// StartConsul starts a Consul server (the binary Main prepared, else ConsulPath) in a fresh
// directory on free ports, and stops it when the test ends.
func StartConsul(t testing.TB) *Consul {
	t.Helper()
	return startConsul(t, false, nil)
}

// StartConsulACL is StartConsul with ACLs on and default_policy deny; Token is the management
// token (initial_management, also the agent's own token).
func StartConsulACL(t testing.TB) *Consul {
	t.Helper()
	return startConsul(t, true, nil)
}

// StartConsulTLS is StartConsul with the HTTPS API on a further free port (HTTPSAddr), serving
// certFile/keyFile and requiring a client certificate signed by caFile (verify_incoming). The
// plain HTTP port stays open for the harness's readiness checks.
func StartConsulTLS(t testing.TB, caFile, certFile, keyFile string) *Consul {
	t.Helper()
	return startConsul(t, false, &consulTLS{ca: caFile, cert: certFile, key: keyFile})
}

// consulTLS is the certificate configuration of an agent with an HTTPS listener.
type consulTLS struct{ ca, cert, key string }

func startConsul(t testing.TB, acl bool, tc *consulTLS) *Consul {
	t.Helper()
	bin := ""
	if dir := os.Getenv(envBinDir); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "consul")); err == nil {
			bin = filepath.Join(dir, "consul")
		}
	}
	if bin == "" {
		p, err := ConsulPath()
		if err != nil {
			t.Fatal(err)
		}
		bin = p
	}
	c, err := newConsul(t.TempDir(), bin, acl, tc)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// NewConsul writes the configuration of a server in dir on free ports (HTTP only: no DNS, gRPC or
// HTTPS listener), with raft timing for a single fast server.
func NewConsul(dir, bin string, acl bool) (*Consul, error) { return newConsul(dir, bin, acl, nil) }

// newConsul is NewConsul, with an HTTPS listener when tc is not nil.
func newConsul(dir, bin string, acl bool, tc *consulTLS) (*Consul, error) {
	n := 4
	if tc != nil {
		n = 5
	}
	ports, err := distinctFreePorts(n)
	if err != nil {
		return nil, err
	}
	c := &Consul{
		Addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), dir: dir, bin: bin,
		logFile: filepath.Join(dir, "consul.log"),
	}
	aclCfg := ""
	if acl {
		if aclCfg, err = c.aclConfig(); err != nil {
			return nil, err
		}
	}
	https, tlsCfg := -1, ""
	if tc != nil {
		https = ports[4]
		c.HTTPSAddr = fmt.Sprintf("127.0.0.1:%d", https)
		tlsCfg = tc.config()
	}
	cfg := fmt.Sprintf(`node_name = "tusker-test"
datacenter = "dc1"
data_dir = %q
server = true
bootstrap_expect = 1
bind_addr = "127.0.0.1"
advertise_addr = "127.0.0.1"
client_addr = "127.0.0.1"
log_level = "warn"
disable_update_check = true
leave_on_terminate = false
skip_leave_on_interrupt = true
ports {
  http = %d
  https = %d
  grpc = -1
  grpc_tls = -1
  dns = -1
  serf_lan = %d
  serf_wan = %d
  server = %d
}
performance {
  raft_multiplier = 1
}
%s%s`, filepath.Join(dir, "data"), ports[0], https, ports[1], ports[2], ports[3], aclCfg, tlsCfg)
	if err := os.WriteFile(filepath.Join(dir, "consul.hcl"), []byte(cfg), 0o600); err != nil {
		return nil, fmt.Errorf("writing the consul configuration: %w", err)
	}
	return c, nil
}

// distinctFreePorts returns n free ports, all different: PickFreePort does not reserve a port,
// so draw until they all differ.
func distinctFreePorts(n int) ([]int, error) {
	var ports []int
	for len(ports) < n {
		p, err := PickFreePort()
		if err != nil {
			return nil, err
		}
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// aclConfig draws a random management token into c.Token, in the UUID form of Consul's own, and
// returns the acl block that makes it the initial management and the agent's token, with
// default_policy deny.
func (c *Consul) aclConfig() (string, error) {
	buf := make([]byte, 16)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	h := hex.EncodeToString(buf)
	c.Token = h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	return fmt.Sprintf(`acl {
  enabled = true
  default_policy = "deny"
  enable_token_persistence = true
  tokens {
    initial_management = %q
    agent = %q
  }
}
`, c.Token, c.Token), nil
}

// config is the tls block of an agent with an HTTPS listener: tc's certificate, and client
// certificates required (verify_incoming).
func (tc *consulTLS) config() string {
	return fmt.Sprintf(`tls {
  defaults {
    ca_file = %q
    cert_file = %q
    key_file = %q
    verify_incoming = true
  }
}
`, tc.ca, tc.cert, tc.key)
}

// Start (re)starts the server and waits until it has elected itself (GET /v1/status/leader names
// a leader), its node is in the catalog (sessions need it) and, with ACLs, its management token
// works.
func (c *Consul) Start() error { return c.start(c.ready) }

// StartElected (re)starts the server and returns as soon as it has elected itself, when a
// restarted server may still be applying its log: what clients meet right after an election.
func (c *Consul) StartElected() error { return c.start(c.elected) }

func (c *Consul) start(ready func() bool) error {
	logf, err := os.OpenFile(c.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, "agent", "-config-file", filepath.Join(c.dir, "consul.hcl"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = cleanConsulEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting consul: %w", err)
	}
	c.cmd = cmd
	done := make(chan struct{})
	c.done = done
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if ready() {
			c.ElectedIn = time.Since(start)
			return nil
		}
		select {
		case <-done:
			log, _ := os.ReadFile(c.logFile)
			return fmt.Errorf("consul exited during start; log:\n%s", log)
		case <-time.After(50 * time.Millisecond):
		}
	}
	log, _ := os.ReadFile(c.logFile)
	return fmt.Errorf("consul at %s did not elect itself within 30s; log:\n%s", c.Addr, log)
}

func (c *Consul) elected() bool {
	body, code := c.get("/v1/status/leader")
	return code == http.StatusOK && strings.Trim(strings.TrimSpace(body), `"`) != ""
}

func (c *Consul) ready() bool {
	if !c.elected() {
		return false
	}
	if c.Token != "" {
		if _, code := c.get("/v1/acl/token/self"); code != http.StatusOK {
			return false
		}
	}
	// Sessions need the agent's node in the catalog, which its first sync after the election
	// puts there.
	body, code := c.get("/v1/catalog/node/tusker-test")
	if code != http.StatusOK || strings.TrimSpace(body) == "null" {
		return false
	}
	// A consistent read is answered once the leader has applied its whole log (after a restart
	// it replays it in batches, and default reads may see a state from before the restart).
	_, code = c.get("/v1/kv/tusker-harness-ready?consistent")
	return code == http.StatusOK || code == http.StatusNotFound
}

func (c *Consul) get(path string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.Addr+path, nil)
	if c.Token != "" {
		req.Header.Set("X-Consul-Token", c.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

// Stop kills the server (its data stays, so Start brings the same cluster back).
func (c *Consul) Stop() {
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
		}
		c.cmd = nil
	}
}

// Log is the server's log so far.
func (c *Consul) Log() string {
	b, _ := os.ReadFile(c.logFile)
	return string(b)
}

// The agent reads CONSUL_* variables of its own (license, HTTP settings for its CLI); keep the
// test's environment out of it.
func cleanConsulEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CONSUL_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
