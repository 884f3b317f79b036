package ha

import (
	"log/slog"
	"time"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/postgres"
)

// PostgresConfig derives the local PostgreSQL settings from the local and dynamic configuration.
// Local parameters win over dynamic ones, as in Patroni; pg_hba comes from the local section, else
// the dynamic one, else bootstrap.pg_hba.
func PostgresConfig(c *config.Config, d config.Dynamic, log *slog.Logger) postgres.Config {
	params := map[string]string{}
	for k, v := range d.PostgreSQL.Parameters {
		params[k] = config.ParameterString(v)
	}
	for k, v := range c.PostgreSQL.Parameters {
		params[k] = config.ParameterString(v)
	}
	if _, set := params["wal_level"]; !set && hasLogicalSlots(d) {
		// A permanent logical slot needs wal_level logical; a user who set wal_level has
		// chosen (and is told by the slot's creation error if it was wrong).
		params["wal_level"] = "logical"
	}
	recovery := map[string]string{}
	for _, m := range []map[string]any{d.PostgreSQL.RecoveryConf, c.PostgreSQL.RecoveryConf} {
		for k, v := range m {
			recovery[k] = config.ParameterString(v)
		}
	}
	hba := c.PostgreSQL.PgHBA
	if len(hba) == 0 {
		hba = d.PostgreSQL.PgHBA
	}
	if len(hba) == 0 {
		hba = c.Bootstrap.PgHBA
	}
	a := c.PostgreSQL.Authentication
	return postgres.Config{
		Name: c.Name, Scope: c.Scope,
		DataDir: c.PostgreSQL.DataDir, BinDir: c.PostgreSQL.BinDir, ConfigDir: c.PostgreSQL.ConfigDir,
		Listen: c.PostgreSQL.Listen, ConnectAddress: c.PostgreSQL.ConnectAddress,
		Superuser:   postgres.Auth{Username: a.Superuser.Username, Password: a.Superuser.Password},
		Replication: postgres.Auth{Username: a.Replication.Username, Password: a.Replication.Password},
		Rewind:      postgres.Auth{Username: a.Rewind.Username, Password: a.Rewind.Password},
		Parameters:  params, PgHBA: hba, PgIdent: c.PostgreSQL.PgIdent, Pgpass: c.PostgreSQL.Pgpass,
		UseSlots:     d.PostgreSQL.UseSlots,
		RecoveryConf: recovery, BasebackupOptions: c.PostgreSQL.Basebackup,
		PgCtlTimeout: time.Duration(c.PostgreSQL.PgCtlTimeout) * time.Second,
		Logger:       log,
	}
}

// hasLogicalSlots: the dynamic configuration has a permanent logical slot (in a primary cluster).
func hasLogicalSlots(d config.Dynamic) bool {
	if !d.PostgreSQL.UseSlots || d.Standby() != nil {
		return false
	}
	for _, s := range d.Slots {
		if s.Logical() {
			return true
		}
	}
	return false
}
