package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDaemonConfigPath(t *testing.T) {
	for _, tt := range []struct {
		cmdline string
		path    string
		tusker  bool
	}{
		{"/usr/local/bin/tusker\x00/etc/tusker/tusker.yml\x00", "/etc/tusker/tusker.yml", true},
		{"tusker\x00", "", true},
		{"tusker\x00--validate-config\x00/x.yml\x00", "/x.yml", true},
		{"/sbin/init\x00splash\x00", "", false},
		{"", "", false},
	} {
		p, ok := daemonConfigPath([]byte(tt.cmdline))
		require.Equal(t, tt.path, p, "%q", tt.cmdline)
		require.Equal(t, tt.tusker, ok, "%q", tt.cmdline)
	}
}

// TestHealthcheckTarget: the probe finds the REST port and scheme the daemon uses, from the file
// PID 1 names, from the environment alone, or falls back to 8008 when there is nothing to read.
func TestHealthcheckTarget(t *testing.T) {
	clearPatroniEnv(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tusker.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(`scope: s
name: n1
restapi: {listen: 0.0.0.0:18123, connect_address: 10.0.0.1:18123}
etcd3: {hosts: 127.0.0.1:2379}
postgresql: {listen: 127.0.0.1:5432, connect_address: 127.0.0.1:5432, data_dir: /tmp/x}
`), 0o600))
	u, _ := healthcheckTarget([]byte("tusker\x00" + cfg + "\x00"))
	require.Equal(t, "http://127.0.0.1:18123/liveness", u)

	u, _ = healthcheckTarget([]byte("/sbin/init\x00"))
	require.Equal(t, defaultHealthcheckURL, u, "PID 1 is not tusker and no PATRONI_* variables")

	t.Setenv("PATRONI_SCOPE", "s")
	t.Setenv("PATRONI_NAME", "n1")
	t.Setenv("PATRONI_ETCD3_HOSTS", "127.0.0.1:2379")
	t.Setenv("PATRONI_RESTAPI_LISTEN", "0.0.0.0:18999")
	t.Setenv("PATRONI_RESTAPI_CONNECT_ADDRESS", "10.0.0.1:18999")
	t.Setenv("PATRONI_POSTGRESQL_LISTEN", "127.0.0.1:5432")
	t.Setenv("PATRONI_POSTGRESQL_CONNECT_ADDRESS", "127.0.0.1:5432")
	t.Setenv("PATRONI_POSTGRESQL_DATA_DIR", "/tmp/x")
	u, _ = healthcheckTarget([]byte("tusker\x00"))
	require.Equal(t, "http://127.0.0.1:18999/liveness", u, "configured by the environment alone")
	u, _ = healthcheckTarget([]byte("tusker\x00" + cfg + "\x00"))
	require.Equal(t, "http://127.0.0.1:18999/liveness", u, "the environment wins over the file, as in the daemon")
}

// clearPatroniEnv removes the PATRONI_* variables of the test's environment for its duration.
func clearPatroniEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "PATRONI_") {
			t.Setenv(k, "") // restores the value afterwards
			os.Unsetenv(k)
		}
	}
}

func TestHealthcheck(t *testing.T) {
	code := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/liveness", r.URL.Path)
		w.WriteHeader(code)
	}))
	defer srv.Close()
	require.Equal(t, 0, healthcheck(srv.URL+"/liveness"))
	code = http.StatusServiceUnavailable
	require.Equal(t, 1, healthcheck(srv.URL+"/liveness"))
	srv.Close()
	require.Equal(t, 1, healthcheck(srv.URL+"/liveness"), "nobody listens")
	require.Equal(t, 1, healthcheck("ftp://127.0.0.1/liveness"))

	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsSrv.Close()
	require.Equal(t, 0, healthcheck(tlsSrv.URL+"/liveness"), "a self-signed certificate on loopback is accepted")
}
