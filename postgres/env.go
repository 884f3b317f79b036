package postgres

import (
	"os"
	"strings"
)

// serverEnv is the environment of the PostgreSQL programs tusker runs (the postmaster, initdb,
// the single-user backend, pg_basebackup, pg_rewind, pg_controldata, pg_waldump): environ
// without the PATRONI_* and KUBERNETES_* variables and NOTIFY_SOCKET, as Patroni starts the
// postmaster (postmaster.py). None of them reads those: PATRONI_* is tusker's configuration,
// passwords included; systemd is told about readiness by tusker, never by PostgreSQL.
// PG_MALLOC_ARENA_MAX becomes MALLOC_ARENA_MAX (it wins over one already set), Patroni's way of
// limiting glibc's malloc arenas for PostgreSQL alone. extra is appended.
func serverEnv(environ []string, extra ...string) []string {
	out := make([]string, 0, len(environ)+len(extra))
	arena, hasArena := "", false
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "PATRONI_"), strings.HasPrefix(name, "KUBERNETES_"), name == "NOTIFY_SOCKET":
			continue
		case name == "PG_MALLOC_ARENA_MAX":
			arena, hasArena = value, true
			continue
		}
		out = append(out, kv)
	}
	if hasArena {
		kept := out[:0]
		for _, kv := range out {
			if !strings.HasPrefix(kv, "MALLOC_ARENA_MAX=") {
				kept = append(kept, kv)
			}
		}
		out = append(kept, "MALLOC_ARENA_MAX="+arena)
	}
	return append(out, extra...)
}

// processEnv is serverEnv of the daemon's environment.
func processEnv(extra ...string) []string { return serverEnv(os.Environ(), extra...) }
