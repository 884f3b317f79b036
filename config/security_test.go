package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPgIdentKey(t *testing.T) {
	c, err := loadYAML(t, "postgresql:\n  pg_ident:\n  - ops alice postgres\n  - ops bob replicator\n")
	require.NoError(t, err)
	assert.Equal(t, []string{"ops alice postgres", "ops bob replicator"}, c.PostgreSQL.PgIdent)
	assert.NotContains(t, c.Unimplemented, "postgresql.pg_ident")
	_, err = loadYAML(t, "postgresql:\n  pg_ident: {a: b}\n")
	assert.ErrorContains(t, err, "postgresql.pg_ident: expected a list of pg_ident.conf lines")
}
