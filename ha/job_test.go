package ha

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestJobNames(t *testing.T) {
	seen := map[string]Job{}
	for j := NoJob + 1; j <= JobReinitialize; j++ {
		name := j.String()
		require.NotEmpty(t, name, "job %d has a name", int(j))
		_, dup := seen[name]
		require.False(t, dup, "job name %q is unique", name)
		seen[name] = j
	}
	require.Equal(t, "", NoJob.String())
	require.Equal(t, "rewind check", JobRewindCheck.String(), "log lines keep their wording")
	require.Equal(t, "job?", Job(99).String())
}
