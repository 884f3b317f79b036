package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/test/harness"
)

// TestSystemdNotify runs two members as systemd runs a Type=notify unit with WatchdogSec: READY=1
// only once PostgreSQL runs in its role (after the bootstrap on one, after the clone on the
// other), STATUS= with the role, WATCHDOG=1 while the loop runs, STOPPING=1 on SIGTERM. And
// PostgreSQL, which Debian builds with systemd support, never sees NOTIFY_SOCKET: it would tell
// systemd READY=1 by itself.
func TestSystemdNotify(t *testing.T) {
	e := newCluster(t, 2, "")
	listeners := map[string]*harness.NotifyListener{}
	for _, n := range e.c.Nodes {
		l := harness.ListenNotify(t, filepath.Join(n.Dir, "notify.sock"))
		n.Env = append(n.Env, "NOTIFY_SOCKET="+l.Path, "WATCHDOG_USEC=2000000")
		listeners[n.Name] = l
	}
	n1, n2 := e.c.Nodes[0], e.c.Nodes[1]
	l1, l2 := listeners[n1.Name], listeners[n2.Name]

	require.NoError(t, n1.Start())
	require.NoError(t, l1.WaitFor("READY=1", 60*time.Second))
	require.Equal(t, "primary, running, leader", l1.StatusBefore("READY=1"), "READY=1 comes with the role it is ready in")

	require.NoError(t, n2.Start())
	require.NoError(t, l2.WaitFor("READY=1", 60*time.Second))
	// Running as a replica is ready (streaming may begin a moment later, or not before the
	// primary is back: a replica does not wait for it).
	require.True(t, strings.HasPrefix(l2.StatusBefore("READY=1"), "replica, running"), l2.StatusBefore("READY=1"))
	require.Contains(t, l2.Assignments(), "STATUS=replica, creating replica", "the clone shows before READY")
	require.Equal(t, 1, l1.Count("READY=1"), "READY=1 is sent once")
	require.Equal(t, 1, l2.Count("READY=1"), "READY=1 is sent once")

	// WATCHDOG_USEC=2 s: a keep-alive at least every second.
	before := l1.Count("WATCHDOG=1")
	time.Sleep(3 * time.Second)
	require.GreaterOrEqual(t, l1.Count("WATCHDOG=1")-before, 2)
	require.Positive(t, l2.Count("WATCHDOG=1"))

	for _, n := range []*harness.Node{n1, n2} {
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", n.PostmasterPID()))
		require.NoError(t, err)
		vars := strings.Split(string(env), "\x00")
		for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
			require.False(t, slices.ContainsFunc(vars, func(v string) bool { return strings.HasPrefix(v, k+"=") }),
				"%s's postmaster inherited %s", n.Name, k)
		}
	}

	n1.Signal(syscall.SIGTERM)
	require.True(t, n1.WaitExit(60*time.Second))
	require.Equal(t, 0, n1.ExitCode())
	require.Contains(t, l1.Assignments(), "STOPPING=1")
	require.NoError(t, l2.WaitFor("STATUS=primary, running, leader", 30*time.Second))
}
