package proc

import (
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseStatWithAwkwardName(t *testing.T) {
	st, err := parseStat("4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1 0 0")
	require.NoError(t, err)
	require.Equal(t, 17, st.PPID)
	require.InDelta(t, 3.0, st.CPUSeconds, 1e-9)
	_, err = parseStat("garbage")
	require.Error(t, err)
}

func TestChildrenAndParentOfARealProcess(t *testing.T) {
	cmd := exec.Command("sleep", "5")
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	st, err := ReadStat(cmd.Process.Pid)
	require.NoError(t, err)
	require.Equal(t, os.Getpid(), st.PPID)
	require.Contains(t, Children(os.Getpid()), cmd.Process.Pid)
}
