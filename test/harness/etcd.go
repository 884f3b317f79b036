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

// Etcd is a real single-node etcd server on loopback, stopped when the test ends.
type Etcd struct {
	Endpoint string // http://127.0.0.1:port
	HostPort string // 127.0.0.1:port
	cmd      *exec.Cmd
	done     chan struct{}
	dir      string
	args     []string
	bin      string
	logFile  string
	t        testing.TB
}

// StartEtcd starts etcd (the binary Main prepared, else EtcdPath) in a fresh directory on free ports.
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
	dir := t.TempDir()
	cport, pport := FreePort(t), FreePort(t)
	e := &Etcd{
		HostPort: fmt.Sprintf("127.0.0.1:%d", cport),
		Endpoint: fmt.Sprintf("http://127.0.0.1:%d", cport),
		dir:      dir, bin: bin, t: t,
		logFile: filepath.Join(dir, "etcd.log"),
	}
	peer := fmt.Sprintf("http://127.0.0.1:%d", pport)
	e.args = []string{"--name", "n1", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", e.Endpoint, "--advertise-client-urls", e.Endpoint,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "n1=" + peer, "--initial-cluster-state", "new",
		"--logger", "zap", "--log-level", "warn"}
	e.Start()
	t.Cleanup(e.Stop)
	return e
}

// Start (re)starts the server and waits until it answers /health.
func (e *Etcd) Start() {
	e.t.Helper()
	logf, err := os.OpenFile(e.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(e.bin, e.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = cleanEtcdEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("starting etcd: %v", err)
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
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(e.logFile)
	e.t.Fatalf("etcd did not become healthy at %s within 20s; log:\n%s", e.Endpoint, log)
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
