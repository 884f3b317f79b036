package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// Freeze stops a server with SIGSTOP: its sockets stay open and connections are accepted by the
// kernel, but nothing answers, as a hung process or a stalled VM looks to its clients. Thaw
// resumes it. On a server that is not running both do nothing.
func signalServer(cmd *exec.Cmd, group bool, sig syscall.Signal) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	pid := cmd.Process.Pid
	if group {
		pid = -pid
	}
	_ = syscall.Kill(pid, sig)
}

// Freeze: see signalServer.
func (e *Etcd) Freeze() { signalServer(e.cmd, false, syscall.SIGSTOP) }

// Thaw resumes a frozen server.
func (e *Etcd) Thaw() { signalServer(e.cmd, false, syscall.SIGCONT) }

// Freeze: see signalServer.
func (c *Consul) Freeze() { signalServer(c.cmd, false, syscall.SIGSTOP) }

// Thaw resumes a frozen server.
func (c *Consul) Thaw() { signalServer(c.cmd, false, syscall.SIGCONT) }

// Freeze: see signalServer (the JVM's whole process group).
func (z *ZooKeeper) Freeze() { signalServer(z.cmd, true, syscall.SIGSTOP) }

// Thaw resumes a frozen server.
func (z *ZooKeeper) Thaw() { signalServer(z.cmd, true, syscall.SIGCONT) }

// Freeze: see signalServer (the API server only; its etcd keeps running).
func (k *KubeAPIServer) Freeze() { signalServer(k.cmd, false, syscall.SIGSTOP) }

// Thaw resumes a frozen server.
func (k *KubeAPIServer) Thaw() { signalServer(k.cmd, false, syscall.SIGCONT) }

// KubeconfigVia writes a copy of the admin kubeconfig to path that reaches the server at
// hostPort (a Proxy in front of it) instead; the server's certificate names 127.0.0.1, so any
// loopback port works.
func (k *KubeAPIServer) KubeconfigVia(path, hostPort string) error {
	b, err := os.ReadFile(k.Kubeconfig)
	if err != nil {
		return fmt.Errorf("reading the kubeconfig: %w", err)
	}
	s := strings.Replace(string(b), "server: "+k.URL, "server: https://"+hostPort, 1)
	if s == string(b) {
		return fmt.Errorf("kubeconfig %s does not name %s", k.Kubeconfig, k.URL)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		return fmt.Errorf("writing the kubeconfig: %w", err)
	}
	return nil
}
