package harness

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// EtcdVersion is the etcd server version the tests use (built by scripts/install-deps.sh).
const EtcdVersion = "v3.6.16"

// CacheDir is where scripts/install-deps.sh keeps the binaries it builds, keyed by version.
func CacheDir() string {
	if d := os.Getenv("TUSKER_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "tusker")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "tusker")
}

// EtcdPath finds the etcd server binary: TUSKER_ETCD_BIN, the install-deps cache, then PATH.
func EtcdPath() (string, error) {
	cands := []string{os.Getenv("TUSKER_ETCD_BIN"), filepath.Join(CacheDir(), "etcd-"+EtcdVersion, "etcd")}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("etcd server binary not found (looked at $TUSKER_ETCD_BIN, %s and PATH): run `make deps`",
		filepath.Join(CacheDir(), "etcd-"+EtcdVersion))
}

// PrepareEtcd copies the etcd binary into binDir; use it in Main's prepare.
func PrepareEtcd(binDir string) error {
	p, err := EtcdPath()
	if err != nil {
		return err
	}
	return CopyFile(p, filepath.Join(binDir, "etcd"), 0o755)
}

// GoBuild builds a main package of this module into binDir/name, with extra go build flags
// (-race).
func GoBuild(binDir, name, pkg string, flags ...string) error {
	args := append(append([]string{"build"}, flags...), "-o", filepath.Join(binDir, name), pkg)
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	return os.Chmod(filepath.Join(binDir, name), 0o755)
}

// Bin returns the path of a binary Main's prepare put in place; the test fails loudly if it is missing.
func Bin(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv(envBinDir)
	if dir == "" {
		t.Fatalf("binary %s: TestMain must call harness.Main to prepare binaries", name)
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("binary %s not prepared: %v", name, err)
	}
	return p
}

// PGBinDir is the PostgreSQL 15 binary directory (TUSKER_PG_BIN overrides). Missing binaries fail the test.
func PGBinDir(t testing.TB) string {
	t.Helper()
	d := os.Getenv("TUSKER_PG_BIN")
	if d == "" {
		d = "/usr/lib/postgresql/15/bin"
	}
	if _, err := os.Stat(filepath.Join(d, "postgres")); err != nil {
		t.Fatalf("PostgreSQL 15 not found in %s (run `make deps`): %v", d, err)
	}
	return d
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := PickFreePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	return p
}

// PickFreePort picks a free port below the kernel's ephemeral range (32768-60999 on Linux). A port
// from that range (what listening on :0 returns) can be handed to some outgoing connection in the
// moment between this check and the server's bind, and postgres then fails with "Address already
// in use" on every retry while that connection lives. Ports are drawn at random so that parallel
// test processes rarely try the same one.
func PickFreePort() (int, error) {
	const lo, hi = 20000, 32000
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free port between %d and %d on 127.0.0.1", lo, hi)
}
