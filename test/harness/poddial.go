package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// PodClient returns an HTTP client whose connections start inside the network namespace of the
// pod whose address is podIP, as `kubectl exec POD -- curl ...` would: the members of a cluster
// accept changes from each other's addresses only (unless configured otherwise). Needs root.
func PodClient(podIP string) (*http.Client, error) {
	ns, err := netnsWithAddr(podIP)
	if err != nil {
		return nil, err
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return DialIn(ctx, ns, network, addr)
	}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}, nil
}

// netnsWithAddr finds the named network namespace (/run/netns, where the CNI plugins put the
// pods') that has addr on one of its interfaces.
func netnsWithAddr(addr string) (string, error) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return "", fmt.Errorf("listing network namespaces: %w", err)
	}
	for _, e := range entries {
		out, err := exec.Command("ip", "-n", e.Name(), "-o", "addr", "show").Output()
		if err != nil {
			continue
		}
		if strings.Contains(string(out), " "+addr+"/") {
			return filepath.Join("/run/netns", e.Name()), nil
		}
	}
	return "", fmt.Errorf("no network namespace in /run/netns has the address %s", addr)
}

// DialIn dials from inside the network namespace at path (/run/netns/NAME): a socket belongs to
// the namespace of the thread that creates it, so the dial runs on a locked thread that enters the
// namespace, and returns to its own namespace afterwards. The thread must not simply end locked:
// a thread that ends delivers PR_SET_PDEATHSIG to the children it started, and the servers the
// harness starts (etcd, the kubelet...) have it set, so they would be killed at random.
func DialIn(ctx context.Context, path, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		back, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("this thread's network namespace: %w", err)}
			return
		}
		defer back.Close()
		f, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("entering network namespace %s: %w", path, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if unix.Setns(int(back.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else the thread stays in the namespace, locked, and ends with this goroutine
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
