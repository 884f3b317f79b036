// Package harness starts the real components tusker's tests run against (etcd servers, tusker
// processes) on loopback, and lets test binaries run as an unprivileged user when started as root:
// PostgreSQL refuses to run as root, and CI runs as root.
package harness

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

const (
	envChild  = "TUSKER_TEST_CHILD"
	envBinDir = "TUSKER_TEST_BINDIR"
)

// Main is a TestMain body. prepare (optional) runs first, with the privileges go test has, and puts
// the binaries the tests need into binDir (world-readable); Bin finds them there. As root, Main then
// re-runs the test binary as the "postgres" user (or "nobody") and exits with its status.
func Main(m *testing.M, prepare func(binDir string) error, opts ...Option) {
	os.Exit(run(m, prepare, opts))
}

func run(m *testing.M, prepare func(string) error, opts []Option) int {
	if addr := os.Getenv(envStrangerProxy); addr != "" {
		return serveStrangerProxy(addr) // this process is the stranger network's proxy
	}
	if os.Getenv(envChild) == "1" {
		return m.Run()
	}
	var o mainOptions
	for _, f := range opts {
		f(&o)
	}
	dir, err := os.MkdirTemp("", "tusker-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 1
	}
	if prepare != nil {
		if err := prepare(dir); err != nil {
			fmt.Fprintln(os.Stderr, "harness: preparing test binaries:", err)
			return 1
		}
	}
	os.Setenv(envBinDir, dir)
	if o.stranger && os.Geteuid() == 0 {
		stop, err := startStranger()
		if err != nil {
			fmt.Fprintln(os.Stderr, "harness:", err)
			return 1
		}
		defer stop()
	}
	if os.Geteuid() != 0 {
		return m.Run()
	}
	return reexec(dir)
}

// Unprivileged returns the uid and gid of the user that runs PostgreSQL when we are root.
func Unprivileged() (uid, gid uint32, name string, err error) {
	for _, n := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(n)
		if err != nil {
			continue
		}
		a, _ := strconv.Atoi(u.Uid)
		b, _ := strconv.Atoi(u.Gid)
		return uint32(a), uint32(b), n, nil
	}
	return 0, 0, "", fmt.Errorf("no unprivileged user (postgres or nobody) to run PostgreSQL as")
}

func reexec(binDir string) int {
	uid, gid, name, err := Unprivileged()
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 1
	}
	self := filepath.Join(binDir, "test.bin")
	if err := CopyFile(os.Args[0], self, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "harness: copying the test binary:", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "tusker-test-tmp-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	if err := os.Chown(tmp, int(uid), int(gid)); err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 1
	}
	// The go command's test log lives in a root-only directory; the child cannot write it.
	var args []string
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.testlogfile=") {
			continue
		}
		args = append(args, a)
	}
	cmd := exec.Command(self, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envChild+"=1", "HOME="+tmp, "TMPDIR="+tmp, "USER="+name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "harness: running tests as", name+":", err)
		return 1
	}
	return 0
}

// CopyFile copies src to dst with mode.
func CopyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
