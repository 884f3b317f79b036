package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	n, err := Parse("", "", "", 10)
	require.NoError(t, err)
	require.Nil(t, n, "no NOTIFY_SOCKET: not a notify service")

	n, err = Parse("/run/systemd/notify", "", "", 10)
	require.NoError(t, err)
	require.Zero(t, n.Watchdog())

	n, err = Parse("@abstract", "30000000", "10", 10)
	require.NoError(t, err)
	require.Equal(t, 30*time.Second, n.Watchdog())

	n, err = Parse("/run/systemd/notify", "30000000", "11", 10)
	require.NoError(t, err)
	require.Zero(t, n.Watchdog(), "a watchdog meant for another process is not ours")

	for _, bad := range [][2]string{{"relative/sock", ""}, {"/s", "abc"}, {"/s", "0"}, {"/s", "-5"}, {"/s", "999999999999999"}} {
		_, err := Parse(bad[0], bad[1], "", 10)
		require.Error(t, err, "%q", bad)
	}
	_, err = Parse("/s", "1000", "x", 10)
	require.ErrorContains(t, err, "WATCHDOG_PID")
}

// TestSend delivers to a real unixgram socket, path and abstract alike, as systemd listens.
func TestSend(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@tusker-sdnotify-test-" + t.Name()} {
		l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
		require.NoError(t, err)
		n, err := Parse(name, "", "", 1)
		require.NoError(t, err)
		require.NoError(t, n.Send("READY=1", "STATUS=primary, running"))
		buf := make([]byte, 512)
		_ = l.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := l.Read(buf)
		require.NoError(t, err)
		require.Equal(t, "READY=1\nSTATUS=primary, running", string(buf[:k]))
		l.Close()
	}
	n, err := Parse(filepath.Join(t.TempDir(), "nobody-listens"), "", "", 1)
	require.NoError(t, err)
	require.ErrorContains(t, n.Send("READY=1"), "nobody-listens")
}

func TestFromEnvUnsets(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "/run/x")
	t.Setenv("WATCHDOG_USEC", "2000000")
	t.Setenv("WATCHDOG_PID", "")
	n, err := FromEnv()
	require.NoError(t, err)
	require.Equal(t, 2*time.Second, n.Watchdog())
	for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		_, set := lookup(k)
		require.False(t, set, "%s must not reach children", k)
	}
}

func lookup(k string) (string, bool) { return os.LookupEnv(k) }
