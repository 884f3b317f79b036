package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Etcd is a real single-node etcd server on loopback.
type Etcd struct {
	Endpoint string // http://127.0.0.1:port
	HostPort string // 127.0.0.1:port
	cmd      *exec.Cmd
	done     chan struct{}
	dir      string
	args     []string
	bin      string
	logFile  string
	cred     *syscall.Credential
	wrap     []string
}

// StartEtcd starts etcd (the binary Main prepared, else EtcdPath) in a fresh directory on free
// ports, and stops it when the test ends.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	bin := ""
	if dir := os.Getenv(envBinDir); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "etcd")); err == nil {
			bin = filepath.Join(dir, "etcd")
		}
	}
	if bin == "" {
		p, err := EtcdPath()
		if err != nil {
			t.Fatal(err)
		}
		bin = p
	}
	e, err := NewEtcd(t.TempDir(), bin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	return e
}

// DebianEtcd is where Debian's etcd-server package (3.4) puts the server; make deps installs it.
const DebianEtcd = "/usr/bin/etcd"

// StartEtcdBinary starts the etcd server binary bin (e.g. DebianEtcd) like StartEtcd.
func StartEtcdBinary(t testing.TB, bin string) *Etcd {
	t.Helper()
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("etcd server %s: %v (run `make deps`)", bin, err)
	}
	e, err := NewEtcd(t.TempDir(), bin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	return e
}

// NewEtcd prepares a server in dir on free ports; cred (optional) runs it as another user.
func NewEtcd(dir, bin string, cred *syscall.Credential) (*Etcd, error) {
	return NewEtcdAt(dir, bin, cred, "127.0.0.1", nil)
}

// NewEtcdAt is NewEtcd listening on host, run under wrap (a command that execs its arguments, such
// as nsenter into a network namespace, and then drops privileges itself) when wrap is set.
func NewEtcdAt(dir, bin string, cred *syscall.Credential, host string, wrap []string) (*Etcd, error) {
	cport, err := PickFreePort()
	if err != nil {
		return nil, err
	}
	pport, err := PickFreePort()
	if err != nil {
		return nil, err
	}
	e := &Etcd{
		HostPort: fmt.Sprintf("%s:%d", host, cport),
		Endpoint: fmt.Sprintf("http://%s:%d", host, cport),
		dir:      dir, bin: bin, cred: cred, wrap: wrap,
		logFile: filepath.Join(dir, "etcd.log"),
	}
	peer := fmt.Sprintf("http://%s:%d", host, pport)
	e.args = []string{"--name", "n1", "--data-dir", filepath.Join(dir, "etcd-data"),
		"--listen-client-urls", e.Endpoint, "--advertise-client-urls", e.Endpoint,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "n1=" + peer, "--initial-cluster-state", "new",
		"--logger", "zap", "--log-level", "warn"}
	return e, nil
}

// Start (re)starts the server and waits until it answers /health.
func (e *Etcd) Start() error {
	logf, err := os.OpenFile(e.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := wrapped(e.wrap, e.cred, e.bin, e.args...)
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = cleanEtcdEnv()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting etcd: %w", err)
	}
	e.cmd = cmd
	done := make(chan struct{})
	e.done = done
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.Endpoint+"/health", nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-done:
			log, _ := os.ReadFile(e.logFile)
			return fmt.Errorf("etcd exited during start; log:\n%s", log)
		case <-time.After(50 * time.Millisecond):
		}
	}
	log, _ := os.ReadFile(e.logFile)
	return fmt.Errorf("etcd did not become healthy at %s within 20s; log:\n%s", e.Endpoint, log)
}

// Stop kills the server (its data stays, so Start brings the same cluster back).
func (e *Etcd) Stop() {
	if e.cmd != nil && e.cmd.Process != nil {
		_ = e.cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-e.done:
		case <-time.After(5 * time.Second):
		}
		e.cmd = nil
	}
}

// etcd reads every ETCD_* variable as a flag; keep the test's environment out of it.
func cleanEtcdEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if len(kv) > 5 && kv[:5] == "ETCD_" {
			continue
		}
		env = append(env, kv)
	}
	return env
}
