package callbacks

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFirePassesActionRoleScopeAndLogsOutput(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "args")
	// Run as an executable, the way Patroni configurations name callbacks, with an argument of
	// its own that must come before action, role and scope. Written before anything forks.
	cb := script(t, dir, "cb.sh", writeAtomically+`echo "hello from $1"
echo "to stderr" >&2
put "`+out+`" "$* env=$TUSKER_TEST_VAR"
`)
	log, logs := testLogger()
	r := New(log, []string{"TUSKER_TEST_VAR=42"})
	defer r.Close()

	r.Fire(cb+" --first", "on_role_change", "primary", "batman")
	require.Equal(t, "--first on_role_change primary batman env=42", waitFile(t, out))

	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "callback finished") },
		waitFor, 5*time.Millisecond)
	s := logs.String()
	require.Contains(t, s, `msg="callback output" callback="`+cb+` --first" action=on_role_change line="hello from --first"`)
	require.Contains(t, s, `line="to stderr"`)
	require.Contains(t, s, "exit_code=0")
}

func TestFireNoopsAndBadCommandsAreLoggedNotFatal(t *testing.T) {
	log, logs := testLogger()
	r := New(log, nil)
	defer r.Close()
	r.Fire("", "on_start", "replica", "batman")
	r.Fire("'unterminated", "on_start", "replica", "batman")
	r.Fire(filepath.Join(t.TempDir(), "missing.sh"), "on_start", "replica", "batman")
	s := logs.String()
	require.Contains(t, s, "unterminated single quote")
	require.Contains(t, s, "cannot start callback")
	require.Empty(t, r.slots)
}

func TestFireKillsThePreviousCallbackAndItsChildren(t *testing.T) {
	dir := t.TempDir()
	slow := script(t, dir, "slow.sh", writeAtomically+`sleep 60 &
put "`+dir+`/child.pid" $!
put "`+dir+`/parent.pid" $$
sleep 60
`)
	out := filepath.Join(dir, "second")
	fast := script(t, dir, "fast.sh", writeAtomically+`put "`+out+`" "$*"`)
	log, logs := testLogger()
	r := New(log, nil)
	defer r.Close()

	r.Fire(shCmd(slow), "on_start", "replica", "batman")
	child, parent := waitPID(t, dir+"/child.pid"), waitPID(t, dir+"/parent.pid")
	require.True(t, alive(child) && alive(parent))

	start := time.Now()
	r.Fire(shCmd(fast), "on_role_change", "primary", "batman")
	require.Less(t, time.Since(start), 2*time.Second, "Fire must not wait for the killed callback's sleep")
	// Fire reaped the previous callback before returning, so the script itself is gone already.
	require.False(t, alive(parent))
	requireGone(t, child)
	require.Equal(t, "on_role_change primary batman", waitFile(t, out))
	require.Contains(t, logs.String(), "callback killed before it finished")
}

func TestOnReloadHasItsOwnSlot(t *testing.T) {
	dir := t.TempDir()
	// Each long callback records its pid under its action's name, then waits.
	long := script(t, dir, "long.sh", writeAtomically+`put "`+dir+`/$1.pid" $$
exec sleep 60
`)
	quick := script(t, dir, "quick.sh", writeAtomically+`put "`+dir+`/$1.done" "$*"`)
	r := New(nil, nil)
	defer r.Close()

	// A reload does not kill a running role change...
	r.Fire(shCmd(long), "on_role_change", "primary", "batman")
	roleChange := waitPID(t, dir+"/on_role_change.pid")
	r.Fire(shCmd(quick), "on_reload", "primary", "batman")
	require.Equal(t, "on_reload primary batman", waitFile(t, dir+"/on_reload.done"))
	require.True(t, alive(roleChange))

	// ...and a role change does not kill a running reload, though it does kill the earlier role
	// change, which shares its slot.
	r.Fire(shCmd(long), "on_reload", "primary", "batman")
	reload := waitPID(t, dir+"/on_reload.pid")
	r.Fire(shCmd(quick), "on_role_change", "replica", "batman")
	require.Equal(t, "on_role_change replica batman", waitFile(t, dir+"/on_role_change.done"))
	require.False(t, alive(roleChange))
	require.True(t, alive(reload))

	r.Close()
	require.False(t, alive(reload))
}

func TestCloseKillsAndReapsPromptly(t *testing.T) {
	dir := t.TempDir()
	long := script(t, dir, "long.sh", writeAtomically+`sleep 60 &
put "`+dir+`/child.pid" $!
put "`+dir+`/parent.pid" $$
sleep 60
`)
	fired := script(t, dir, "fired.sh", `: > "`+dir+`/fired"`)
	r := New(nil, nil)
	r.Fire(shCmd(long), "on_stop", "replica", "batman")
	child, parent := waitPID(t, dir+"/child.pid"), waitPID(t, dir+"/parent.pid")

	start := time.Now()
	r.Close()
	require.Less(t, time.Since(start), 5*time.Second)
	// Close returns only once the callback is reaped: its /proc entry is gone, not even a zombie.
	_, err := os.Stat("/proc/" + strconv.Itoa(parent))
	require.ErrorIs(t, err, os.ErrNotExist)
	requireGone(t, child)

	// Fire after Close starts nothing: Fire starts processes synchronously, so had it started one
	// the slot would hold it now.
	r.Fire(shCmd(fired), "on_start", "replica", "batman")
	require.Empty(t, r.slots)
	_, err = os.Stat(dir + "/fired")
	require.ErrorIs(t, err, os.ErrNotExist)
	r.Close() // idempotent
}

func TestCallbackOutputIsCapped(t *testing.T) {
	log, logs := testLogger()
	w := newLineLogger(log, "out")
	line := strings.Repeat("x", 1023) + "\n"
	for range 2 * outputCap / len(line) {
		n, err := w.Write([]byte(line))
		require.NoError(t, err)
		require.Equal(t, len(line), n)
	}
	w.Flush()
	s := logs.String()
	require.Equal(t, outputCap/len(line), strings.Count(s, "msg=out"))
	require.Equal(t, 1, strings.Count(s, "output exceeds the logging limit"))

	// A line split across writes is logged once, whole; a final line without newline is flushed.
	log, logs = testLogger()
	w = newLineLogger(log, "out")
	for _, p := range []string{"ab", "c\r\nde", "f\n", "tail"} {
		_, _ = w.Write([]byte(p))
	}
	w.Flush()
	require.Equal(t, 3, strings.Count(logs.String(), "msg=out"))
	require.Contains(t, logs.String(), "line=abc\n")
	require.Contains(t, logs.String(), "line=def\n")
	require.Contains(t, logs.String(), "line=tail\n")
}
