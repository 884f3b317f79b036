package harness

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ZooKeeperJars are the Debian jars a standalone server runs from: zookeeper.jar's manifest names
// the rest of its class path, and slf4j-simple turns its logging (otherwise NOP) into a readable
// log file. The netty jars the manifest leaves out (codec, resolver) are what the TLS variant's
// NettyServerCnxnFactory needs besides.
var ZooKeeperJars = []string{
	"/usr/share/java/zookeeper.jar",
	"/usr/share/java/slf4j-simple.jar",
	"/usr/share/java/netty-codec.jar",
	"/usr/share/java/netty-resolver.jar",
}

// ZooKeeperTLS configures the TLS variant: the server listens with TLS only (secureClientPort),
// with a PEM certificate and key, and trusts CA for client certificates (required when
// ClientAuth is true, so that x509 ACLs name the client's subject).
type ZooKeeperTLS struct {
	CertFile, KeyFile, CAFile string
	ClientAuth                bool
}

// ZooKeeper is a real standalone ZooKeeper 3.8 server on loopback.
type ZooKeeper struct {
	Addr    string // 127.0.0.1:port
	Dir     string
	logFile string
	java    string
	args    []string
	tls     bool
	logFrom int64 // the log's size when the current start began
	cmd     *exec.Cmd
	done    chan struct{}
}

// JavaPath finds java on PATH, else /usr/bin/java.
func JavaPath() (string, error) {
	if p, err := exec.LookPath("java"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/java"); err == nil {
		return "/usr/bin/java", nil
	}
	return "", fmt.Errorf("java not found on PATH nor at /usr/bin/java: run `make deps`")
}

// CheckZooKeeper reports whether java and the ZooKeeper jars are installed; use it in Main's
// prepare so that a missing package fails the run at once with the fix.
func CheckZooKeeper(string) error {
	if _, err := JavaPath(); err != nil {
		return err
	}
	for _, j := range ZooKeeperJars[:2] {
		if _, err := os.Stat(j); err != nil {
			return fmt.Errorf("ZooKeeper jar %s missing (Debian packages zookeeper, libslf4j-java): run `make deps`", j)
		}
	}
	return nil
}

// StartZooKeeper starts a standalone server in a fresh directory on a free port, and stops it when
// the test ends.
func StartZooKeeper(t testing.TB) *ZooKeeper {
	t.Helper()
	return startZooKeeper(t, nil)
}

// StartZooKeeperTLS starts a server that only speaks TLS on Addr.
func StartZooKeeperTLS(t testing.TB, tc ZooKeeperTLS) *ZooKeeper {
	t.Helper()
	return startZooKeeper(t, &tc)
}

func startZooKeeper(t testing.TB, tc *ZooKeeperTLS) *ZooKeeper {
	t.Helper()
	if err := CheckZooKeeper(""); err != nil {
		t.Fatal(err)
	}
	z, err := NewZooKeeper(t.TempDir(), tc)
	if err != nil {
		t.Fatal(err)
	}
	if err := z.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(z.Stop)
	return z
}

// NewZooKeeper writes zoo.cfg for a server in dir on a free port (TLS only when tc is set).
func NewZooKeeper(dir string, tc *ZooKeeperTLS) (*ZooKeeper, error) {
	java, err := JavaPath()
	if err != nil {
		return nil, err
	}
	port, err := PickFreePort()
	if err != nil {
		return nil, err
	}
	z := &ZooKeeper{Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, java: java,
		logFile: filepath.Join(dir, "zookeeper.log"), tls: tc != nil}
	// tickTime=500 lets sessions time out from 1 s (2 ticks), so lease tests run with short ttls.
	// forceSync=no skips an fsync per write: a killed server still keeps what it wrote (the page
	// cache survives the process), which is all Stop/Start needs.
	cfg := fmt.Sprintf(`tickTime=500
minSessionTimeout=1000
maxSessionTimeout=60000
dataDir=%s
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr,cons
forceSync=no
`, filepath.Join(dir, "data"))
	if tc == nil {
		cfg += fmt.Sprintf("clientPortAddress=127.0.0.1\nclientPort=%d\n", port)
	} else {
		bundle, err := pemBundle(dir, tc)
		if err != nil {
			return nil, err
		}
		cfg += fmt.Sprintf(`secureClientPortAddress=127.0.0.1
secureClientPort=%d
serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
ssl.keyStore.location=%s
ssl.keyStore.type=PEM
ssl.clientAuth=%s
authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider
`, port, bundle, map[bool]string{true: "need", false: "none"}[tc.ClientAuth])
		if tc.CAFile != "" {
			cfg += fmt.Sprintf("ssl.trustStore.location=%s\nssl.trustStore.type=PEM\n", tc.CAFile)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("writing zoo.cfg in %s: %w", dir, err)
	}
	cp := ZooKeeperJars[0] + ":" + ZooKeeperJars[1]
	if tc != nil {
		cp = strings.Join(ZooKeeperJars, ":")
	}
	// A small heap, the serial collector and the C1 compiler only: the server starts in about a
	// second and stays out of the way of the other processes sharing the test machine (no
	// hsperfdata files in /tmp either).
	z.args = []string{"-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
		"-Dzookeeper.jmx.log4j.disable=true", "-cp", cp,
		"org.apache.zookeeper.server.ZooKeeperServerMain", filepath.Join(dir, "zoo.cfg")}
	return z, nil
}

// pemBundle is the key store ZooKeeper's PEM loader reads: the key and the certificate in one
// file, written next to zoo.cfg.
func pemBundle(dir string, tc *ZooKeeperTLS) (string, error) {
	p := filepath.Join(dir, "server-keystore.pem")
	key, err := os.ReadFile(tc.KeyFile)
	if err != nil {
		return "", fmt.Errorf("reading the ZooKeeper server key: %w", err)
	}
	cert, err := os.ReadFile(tc.CertFile)
	if err != nil {
		return "", fmt.Errorf("reading the ZooKeeper server certificate: %w", err)
	}
	if err := os.WriteFile(p, append(append(key, '\n'), cert...), 0o600); err != nil {
		return "", fmt.Errorf("writing %s: %w", p, err)
	}
	return p, nil
}

// Start (re)starts the server with its data and waits until `srvr` reports it serving.
func (z *ZooKeeper) Start() error {
	logf, err := os.OpenFile(z.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s: %w", z.logFile, err)
	}
	if st, err := logf.Stat(); err == nil {
		z.logFrom = st.Size()
	}
	cmd := exec.Command(z.java, z.args...)
	cmd.Dir = z.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting ZooKeeper (%s): %w", z.java, err)
	}
	z.cmd = cmd
	done := make(chan struct{})
	z.done = done
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if z.ready() {
			return nil
		}
		select {
		case <-done:
			log, _ := os.ReadFile(z.logFile)
			return fmt.Errorf("ZooKeeper exited during start; log:\n%s", log)
		case <-time.After(50 * time.Millisecond):
		}
	}
	z.Stop()
	log, _ := os.ReadFile(z.logFile)
	return fmt.Errorf("ZooKeeper did not serve at %s within 30s; log:\n%s", z.Addr, log)
}

// ready asks `srvr`: `ruok` answers before the server serves requests, `srvr` says
// "Mode: standalone" only once it does. The TLS port does not speak four-letter words in clear (and
// may demand a client certificate), so there the line this start logged once the port was bound
// has to do, with an accepted connection.
func (z *ZooKeeper) ready() bool {
	if !z.tls {
		out, err := z.fourLetter("srvr")
		return err == nil && strings.Contains(out, "Mode: standalone")
	}
	log, _ := os.ReadFile(z.logFile)
	if int64(len(log)) < z.logFrom || !bytes.Contains(log[z.logFrom:], []byte("bound to port")) {
		return false
	}
	c, err := net.DialTimeout("tcp", z.Addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Stop kills the server; its data stays, so Start brings the same tree and sessions back.
func (z *ZooKeeper) Stop() {
	if z.cmd != nil && z.cmd.Process != nil {
		_ = syscall.Kill(-z.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-z.done:
		case <-time.After(5 * time.Second):
		}
		z.cmd = nil
	}
}

// Sessions lists the server's connected sessions with the timeout each negotiated, from the
// `cons` four-letter word (plain-text servers only).
func (z *ZooKeeper) Sessions() (map[int64]time.Duration, error) {
	out, err := z.fourLetter("cons")
	if err != nil {
		return nil, err
	}
	// One line per connection: " /127.0.0.1:40000[1](queued=0,...,sid=0x1000...,...,to=2000,...)".
	m := map[int64]time.Duration{}
	for _, line := range strings.Split(out, "\n") {
		var sid int64 = -1
		to := time.Duration(-1)
		for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == '(' || r == ')' }) {
			if v, ok := strings.CutPrefix(f, "sid=0x"); ok {
				if n, err := strconv.ParseUint(v, 16, 64); err == nil {
					sid = int64(n)
				}
			}
			if v, ok := strings.CutPrefix(f, "to="); ok {
				if n, err := strconv.Atoi(v); err == nil {
					to = time.Duration(n) * time.Millisecond
				}
			}
		}
		if sid >= 0 && to >= 0 {
			m[sid] = to
		}
	}
	return m, nil
}

func (z *ZooKeeper) fourLetter(cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", z.Addr, 2*time.Second)
	if err != nil {
		return "", fmt.Errorf("four-letter word %s to %s: %w", cmd, z.Addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(cmd)); err != nil {
		return "", fmt.Errorf("four-letter word %s to %s: %w", cmd, z.Addr, err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		return "", fmt.Errorf("four-letter word %s to %s: %w", cmd, z.Addr, err)
	}
	return string(out), nil
}

// Log returns the server's log so far (for failure messages).
func (z *ZooKeeper) Log() string {
	b, _ := os.ReadFile(z.logFile)
	return string(b)
}
