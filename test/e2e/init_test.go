package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/internal/proc"
	"github.com/tusker-ha/tusker/test/harness"
)

// parentOf is a process's parent pid (0 when the process is gone).
func parentOf(pid int) int {
	st, err := proc.ReadStat(pid)
	if err != nil {
		return 0
	}
	return st.PPID
}

func childrenOf(pid int) []int { return proc.Children(pid) }

func controlState(t *testing.T, dataDir string) string {
	out, err := exec.Command(filepath.Join(harness.PGBinDir(t), "pg_controldata"), dataDir).CombinedOutput()
	require.NoError(t, err, string(out))
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Database cluster state:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "Database cluster state:"))
		}
	}
	return ""
}

// TestInitDuties runs tusker as init (TUSKER_INIT=1: the PID 1 code path, with the child
// subreaper standing in for PID 1 of a container). SIGTERM to init reaches the daemon, which stops
// postgres cleanly. When the daemon itself is SIGKILLed, the postgres it leaves behind is
// reparented to init, which stops it cleanly and reaps it before exiting with the daemon's status.
func TestInitDuties(t *testing.T) {
	e := newCluster(t, 1, "")
	n := e.c.Nodes[0]
	n.Env = []string{"TUSKER_INIT=1"}
	ctx := context.Background()

	start := func() (initPID, daemon, postmaster int) {
		require.NoError(t, n.Start())
		require.NoError(t, harness.WaitFor(ctx, 90*time.Second, 200*time.Millisecond, func() error {
			_, err := e.c.Primary(ctx)
			return err
		}))
		initPID = n.PID()
		kids := childrenOf(initPID)
		require.Len(t, kids, 1, "init runs exactly one daemon")
		daemon = kids[0]
		postmaster = n.PostmasterPID()
		require.Equal(t, daemon, parentOf(postmaster), "postgres is the daemon's child")
		return
	}

	// 1. SIGTERM to init is forwarded: a clean stop, exit 0.
	_, _, pm := start()
	n.Signal(syscall.SIGTERM)
	require.True(t, n.WaitExit(60*time.Second))
	require.Equal(t, 0, n.ExitCode())
	require.Equal(t, 0, parentOf(pm), "postgres must be gone")
	require.Equal(t, "shut down", controlState(t, n.DataDir))

	// 2. The daemon dies: init adopts, stops and reaps its postgres.
	initPID, daemon, pm := start()
	require.NoError(t, syscall.Kill(daemon, syscall.SIGKILL))
	require.True(t, n.WaitExit(60*time.Second), "init must exit once the daemon is gone")
	require.Equal(t, 128+int(syscall.SIGKILL), n.ExitCode())
	require.Equal(t, 0, parentOf(pm), "the orphaned postgres must have been stopped and reaped, not left as a zombie")
	require.Empty(t, childrenOf(initPID))
	require.Equal(t, "shut down", controlState(t, n.DataDir), "the orphaned postgres gets a clean fast shutdown")
	require.Contains(t, n.Log(), "the daemon exited with 137")
}
