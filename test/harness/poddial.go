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
		return dialIn(ctx, ns, network, addr)
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

// dialIn dials from inside the namespace at path: a socket belongs to the namespace of the thread
// that creates it, so the dial runs on a thread of its own that enters the namespace and is never
// given back to other goroutines (it ends with its goroutine).
func dialIn(ctx context.Context, path, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(path)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("entering network namespace %s: %w", path, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
