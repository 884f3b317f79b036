package postgres

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestServerEnvHasNoPatroniVariables(t *testing.T) {
	in := []string{
		"PATH=/usr/bin", "PATRONI_SUPERUSER_PASSWORD=s3cret", "PATRONI_NAME=n1",
		"PATRONI_CONFIGURATION=scope: x", "KUBERNETES_SERVICE_HOST=10.0.0.1", "NOTIFY_SOCKET=/run/notify",
		"MALLOC_ARENA_MAX=4", "PG_MALLOC_ARENA_MAX=1", "LANG=C.UTF-8", "PATRONIX=kept", "TUSKER_X=1",
	}
	assert.Equal(t, []string{"PATH=/usr/bin", "LANG=C.UTF-8", "PATRONIX=kept", "TUSKER_X=1", "MALLOC_ARENA_MAX=1", "LC_ALL=C"},
		serverEnv(in, "LC_ALL=C"))
	assert.Equal(t, []string{"MALLOC_ARENA_MAX=4"}, serverEnv([]string{"MALLOC_ARENA_MAX=4"}))
	assert.Empty(t, serverEnv(nil))
}
