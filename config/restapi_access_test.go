package config

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// tusker's two access keys, from the file and from the environment.
func TestRestAPIAccessKeys(t *testing.T) {
	c, err := loadYAML(t, "restapi:\n  verify_client_names: [a.example, b]\n  protect_reads: true\n")
	require.NoError(t, err)
	require.Equal(t, []string{"a.example", "b"}, c.RestAPI.VerifyClientNames)
	require.True(t, c.RestAPI.ProtectReads)

	dir := t.TempDir()
	writeFile(t, dir, "00-base.yml", minimal)
	c, err = LoadWithEnv(filepath.Join(dir, "00-base.yml"), []string{
		"PATRONI_RESTAPI_VERIFY_CLIENT_NAMES=x.example, y", "PATRONI_RESTAPI_PROTECT_READS=on"})
	require.NoError(t, err)
	require.Equal(t, []string{"x.example", "y"}, c.RestAPI.VerifyClientNames)
	require.True(t, c.RestAPI.ProtectReads)

	_, err = loadYAML(t, "restapi:\n  protect_reads: maybe\n")
	require.ErrorContains(t, err, "restapi.protect_reads")
}
