package harness

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The stranger network: a network namespace joined to this host by a veth pair, so that a test
// can send requests from an address that is neither loopback nor a member's. Creating it needs
// root, and the tests themselves run unprivileged (see Main), so the privileged parent creates it
// and runs a forwarding HTTP proxy inside it; the tests send their requests through that proxy,
// and the members see them come from strangerAddr.
const (
	strangerNetns = "tsk-stranger"
	strangerVeth  = "tskstr0" // this host's end; tskstr1 is in the namespace
	// StrangerHostAddr is this host's address on the link: members that listen on 0.0.0.0 are
	// reached there from the stranger.
	StrangerHostAddr = "10.213.30.1"
	strangerAddr     = "10.213.30.2"
	strangerProxy    = strangerAddr + ":3128"

	envStranger      = "TUSKER_TEST_STRANGER"       // set for the tests: the proxy's URL
	envStrangerProxy = "TUSKER_TEST_STRANGER_PROXY" // set for the proxy process: its listen address
)

// WithStranger makes Main set up the stranger network for the tests (see Stranger).
func WithStranger() Option { return func(o *mainOptions) { o.stranger = true } }

// Option changes what Main prepares.
type Option func(*mainOptions)

type mainOptions struct{ stranger bool }

// Stranger returns a client whose requests come from the stranger's address, 10.213.30.2. It
// fails the test when Main was not given WithStranger or could not create the network (that
// needs root; CI runs as root).
func Stranger(t testing.TB) *http.Client {
	t.Helper()
	p := os.Getenv(envStranger)
	if p == "" {
		t.Fatalf("no stranger network: the test binary must run as root with harness.WithStranger (CI runs as root; run `sudo make test`)")
	}
	u, err := url.Parse(p)
	if err != nil {
		t.Fatalf("stranger proxy %q: %v", p, err)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u), DisableKeepAlives: true}}
}

// startStranger creates the namespace and the link and starts the proxy in it. The returned
// function removes them.
func startStranger() (func(), error) {
	removeStranger()
	steps := [][]string{
		{"netns", "add", strangerNetns},
		{"link", "add", strangerVeth, "type", "veth", "peer", "name", "tskstr1"},
		{"link", "set", "tskstr1", "netns", strangerNetns},
		{"addr", "add", StrangerHostAddr + "/30", "dev", strangerVeth},
		{"link", "set", strangerVeth, "up"},
		{"-n", strangerNetns, "addr", "add", strangerAddr + "/30", "dev", "tskstr1"},
		{"-n", strangerNetns, "link", "set", "tskstr1", "up"},
		{"-n", strangerNetns, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			removeStranger()
			return nil, fmt.Errorf("stranger network: ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	cmd := exec.Command("ip", "netns", "exec", strangerNetns, os.Args[0])
	cmd.Env = append(os.Environ(), envStrangerProxy+"="+strangerProxy)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		removeStranger()
		return nil, fmt.Errorf("stranger network: starting the proxy: %w", err)
	}
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		removeStranger()
	}
	// Ready once the proxy answers from this side of the link.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + strangerProxy + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("stranger network: the proxy does not answer: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	os.Setenv(envStranger, "http://"+strangerProxy)
	return stop, nil
}

func removeStranger() {
	_ = exec.Command("ip", "link", "del", strangerVeth).Run()
	_ = exec.Command("ip", "netns", "del", strangerNetns).Run()
}

// serveStrangerProxy is the proxy process: it forwards each proxied request (absolute URL) to
// its target, from inside the stranger namespace. A request for its own root answers 200 (the
// readiness check).
func serveStrangerProxy(addr string) int {
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.Out.Host = pr.In.Host },
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.IsAbs() {
			w.WriteHeader(http.StatusOK)
			return
		}
		rp.ServeHTTP(w, r)
	})
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	err := srv.ListenAndServe()
	if errors.Is(err, http.ErrServerClosed) {
		return 0
	}
	fmt.Fprintln(os.Stderr, "stranger proxy:", err)
	return 1
}
