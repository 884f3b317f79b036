package callbacks

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHookExitStatus(t *testing.T) {
	dir := t.TempDir()
	ok := script(t, dir, "ok.sh", "echo promoting; exit 0\n")
	bad := script(t, dir, "bad.sh", "echo refusing >&2; exit 3\n")
	log, logs := testLogger()
	ctx := t.Context()

	require.NoError(t, Hook(ctx, log, "pre_promote", shCmd(ok), nil))
	require.Contains(t, logs.String(), `msg="hook output" hook=pre_promote line=promoting`)

	err := Hook(ctx, log, "pre_promote", shCmd(bad), nil)
	require.Error(t, err)
	require.ErrorContains(t, err, "exit status 3")
	require.ErrorContains(t, err, "pre_promote")
	require.ErrorContains(t, err, bad)
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 3, ee.ExitCode())
	require.Contains(t, logs.String(), "line=refusing")

	require.NoError(t, Hook(ctx, log, "before_stop", "", nil), "no hook configured")
	require.ErrorContains(t, Hook(ctx, log, "before_stop", `"x`, nil), "unterminated double quote")
	require.Error(t, Hook(ctx, log, "before_stop", "   ", nil))
	require.Error(t, Hook(ctx, log, "before_stop", filepath.Join(dir, "missing"), nil))
}

func TestHookTimeoutKillsTheProcessGroup(t *testing.T) {
	dir := t.TempDir()
	hung := script(t, dir, "hung.sh", writeAtomically+`sleep 60 &
put "`+dir+`/child.pid" $!
put "`+dir+`/parent.pid" $$
sleep 60
`)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	start := time.Now()
	err := Hook(ctx, nil, "before_stop", shCmd(hung), nil)
	require.Less(t, time.Since(start), 4*time.Second, "Hook must return soon after ctx ends")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "before_stop")

	// The pid files were written long before the one-second deadline.
	child, parent := waitPID(t, dir+"/child.pid"), waitPID(t, dir+"/parent.pid")
	require.False(t, alive(parent))
	requireGone(t, child)
}

func TestHookCanceledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := Hook(ctx, nil, "pre_promote", "/bin/true", nil)
	require.ErrorIs(t, err, context.Canceled)
}

func TestHookPassesArgsAndEnv(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	hook := script(t, dir, "post_bootstrap.sh", `printf '%s\n' "$#" "$1" "$2" "$PGPASSFILE" > "`+out+`.tmp"
mv "`+out+`.tmp" "`+out+`"
`)
	conn := "dbname=postgres user=postgres host=/var/run/postgresql port=5432"
	err := Hook(t.Context(), nil, "post_bootstrap", shCmd(hook)+" 'with space'",
		[]string{"PGPASSFILE=" + dir + "/pgpass"}, conn)
	require.NoError(t, err)
	require.Equal(t, strings.Join([]string{"2", "with space", conn, dir + "/pgpass"}, "\n"), waitFile(t, out))
}

func TestHookReturnsWhenALeftoverHoldsTheOutput(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("setsid not installed")
	}
	dir := t.TempDir()
	// setsid puts the leftover outside the hook's process group, so only WaitDelay can free us.
	hook := script(t, dir, "leaky.sh", writeAtomically+`setsid sleep 30 &
put "`+dir+`/leftover.pid" $!
exit 0
`)
	start := time.Now()
	err := Hook(t.Context(), nil, "before_stop", shCmd(hook), nil)
	require.NoError(t, err)
	require.Less(t, time.Since(start), pipeGrace+2*time.Second)
	pid := waitPID(t, dir+"/leftover.pid")
	// setsid made the leftover a group leader, so this kills it and only it.
	t.Cleanup(func() { _ = killGroup(pid) })
	require.True(t, alive(pid), "Hook does not kill what a successful hook left behind")
}
