package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// Image is tusker's container image as `make image` leaves it.
type Image struct {
	Name    string // in the local podman store
	Archive string // docker-archive for podman load, docker load and ctr images import
}

var (
	imageOnce sync.Once
	image     Image
	imageErr  error
)

// RepoRoot is the repository's root directory (test packages run in their own directory).
func RepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the tusker module")
	}
	return filepath.Dir(mod), nil
}

// BuildImage runs `make image` (once per test binary): the image of this very source tree, as a
// user builds it. It needs root, as `make image` does.
func BuildImage() (Image, error) {
	imageOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			imageErr = err
			return
		}
		cmd := exec.Command("make", "-C", root, "image")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			imageErr = fmt.Errorf("make image: %w", err)
			return
		}
		image = Image{Name: "localhost/tusker:latest", Archive: filepath.Join(root, "bin", "tusker-image.tar")}
		if _, err := os.Stat(image.Archive); err != nil {
			imageErr = fmt.Errorf("make image left no archive: %w", err)
		}
	})
	return image, imageErr
}

// ContainerLimits are the --ulimit flags a container gets here. Podman and crun would raise
// RLIMIT_NOFILE and RLIMIT_NPROC above this process's hard limits, which fails with "setrlimit:
// Operation not permitted" where the process lacks CAP_SYS_RESOURCE (as in a sandboxed CI
// machine), so containers get these limits: as high as this process may set them.
func ContainerLimits() []string {
	var nofile, nproc unix.Rlimit
	_ = unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile)
	_ = unix.Getrlimit(unix.RLIMIT_NPROC, &nproc)
	maxPID := uint64(32768)
	if b, err := os.ReadFile("/proc/sys/kernel/pid_max"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			maxPID = v
		}
	}
	np := min(nproc.Max, maxPID)
	return []string{"--ulimit", fmt.Sprintf("nofile=%d:%d", nofile.Max, nofile.Max),
		"--ulimit", fmt.Sprintf("nproc=%d:%d", np, np)}
}

// ImageMain is the TestMain of a suite that runs the image: it must be root (podman, a
// Kubernetes node), builds the image (make image), calls setup with it and runs the tests as
// root; the containers drop to postgres by themselves. whyRoot completes "<suite>: ... needs root".
func ImageMain(m *testing.M, suite, whyRoot string, setup func(Image)) {
	if os.Geteuid() != 0 {
		fmt.Fprintf(os.Stderr, "%s: %s needs root (CI runs as root; run `sudo make test`)\n", suite, whyRoot)
		os.Exit(1)
	}
	img, err := BuildImage()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", suite, err)
		os.Exit(1)
	}
	setup(img)
	os.Exit(m.Run())
}
