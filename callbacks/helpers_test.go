package callbacks

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// waitFor bounds every poll in these tests; generous because CI machines stall, while a passing
// run never comes near it.
const waitFor = 5 * time.Second

// script writes a /bin/sh script into dir and returns its path. Tests run scripts as
// `/bin/sh <path>` rather than executing the file, which sidesteps ETXTBSY races between writing
// an executable and forking (go.dev/issue/22315).
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755))
	return p
}

// shCmd is the command line running path with /bin/sh, quoted for Split.
func shCmd(path string) string { return "/bin/sh '" + path + "'" }

// writeAtomically is shell that writes "$2" into file "$1" so a poller never sees it half-written.
const writeAtomically = `put() { printf '%s\n' "$2" > "$1.tmp" && mv "$1.tmp" "$1"; }
`

// waitFile polls until path exists and is non-empty, and returns its trimmed content.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	var got string
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(path)
		got = strings.TrimSpace(string(b))
		return err == nil && got != ""
	}, waitFor, 5*time.Millisecond, "waiting for %s", path)
	return got
}

func waitPID(t *testing.T, path string) int {
	t.Helper()
	pid, err := strconv.Atoi(waitFile(t, path))
	require.NoError(t, err)
	return pid
}

// alive reports whether pid is a live (not zombie) process. A killed grandchild is reparented and
// may linger as a zombie if the container's init does not reap, which counts as gone.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

func requireGone(t *testing.T, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		require.Eventually(t, func() bool { return !alive(pid) }, waitFor, 5*time.Millisecond, "pid %d still alive", pid)
	}
}

// syncBuffer is a log sink the test can read while callbacks are still logging into it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger() (*slog.Logger, *syncBuffer) {
	b := &syncBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}
