package config

import (
	"fmt"
	"math"
)

// Every integer key is a row in its section's table (below): its name, the words the decoder
// uses when the value is no integer, where the value lives and the check of its range. The
// decoder builds the key's handler from the row, so the row is also what the key catalog lists,
// and Validate checks the value with the same row, whatever set it (the file, PATRONI_*, the DCS
// config key, PATCH /config, code). keys_test.go fails when the catalog holds an integer key
// that has no row, so that no integer reaches a duration, a port or a count unbounded.

// intKey is one integer key of a section S whose value has type T.
type intKey[S any, T int | int64] struct {
	name string
	want string // what the decoder expects, e.g. "an integer number of seconds"
	get  func(*S) (T, bool)
	set  func(*S, T)
	// check returns "" when v is inside the key's range, else the problem (without the key).
	check func(v T) string
}

// plainInt places a key's value in a field that always holds one.
func plainInt[S any, T int | int64](f func(*S) *T) (func(*S) (T, bool), func(*S, T)) {
	return func(s *S) (T, bool) { return *f(s), true },
		func(s *S, v T) { *f(s) = v }
}

// optionalInt places a key's value in a pointer field, nil while the key is unset.
func optionalInt[S any, T int | int64](f func(*S) **T) (func(*S) (T, bool), func(*S, T)) {
	return func(s *S) (T, bool) {
			if p := *f(s); p != nil {
				return *p, true
			}
			return 0, false
		}, func(s *S, v T) {
			*f(s) = &v
		}
}

// secondsKey is a number of seconds in [lo, hi], held in a plain int field.
func secondsKey[S any](name string, f func(*S) *int, lo, hi int) intKey[S, int] {
	get, set := plainInt(f)
	return intKey[S, int]{name: name, want: "an integer number of seconds", get: get, set: set,
		check: func(v int) string { return secondsProblem(v, lo, hi) }}
}

// portKey is a TCP port; unless required, 0 means unset (the default applies).
func portKey[S any](name string, f func(*S) *int, required bool) intKey[S, int] {
	get, set := plainInt(f)
	return intKey[S, int]{name: name, want: "a port number", get: get, set: set, check: func(v int) string {
		if v < 0 || v > 65535 || (v == 0 && required) {
			return fmt.Sprintf("expected a port number 1-65535, got %d", v)
		}
		return ""
	}}
}

// atLeast checks v >= lo with unit ("bytes", "" for a count) in the message. There is no upper
// bound: these values are compared, never multiplied into a duration or used as a size.
func atLeast[T int | int64](lo T, unit string) func(T) string {
	return func(v T) string {
		if v >= lo {
			return ""
		}
		if unit == "" {
			return fmt.Sprintf("must be at least %d, got %d", lo, v)
		}
		return fmt.Sprintf("must be >= %d %s, got %d", lo, unit, v)
	}
}

// handler is the decoder's handler of the key for a section decoded into s.
func (k intKey[S, T]) handler(d *decoder, s *S) func(string, *node) {
	return func(p string, v *node) {
		if d.cat != nil {
			d.cat.checked[p] = true
		}
		if i, ok := d.integer(p, v, k.want); ok {
			if int64(T(i)) != i { // an int64 that a 32-bit int cannot hold
				d.problem(p, v, "expected %s, got %d (out of range)", k.want, i)
				return
			}
			k.set(s, T(i))
		}
	}
}

// intHandlers adds the handlers of keys for a section decoded into s to handlers, and returns
// handlers.
func intHandlers[S any, T int | int64](d *decoder, handlers map[string]func(string, *node),
	keys []intKey[S, T], s *S) map[string]func(string, *node) {
	for _, k := range keys {
		handlers[k.name] = k.handler(d, s)
	}
	return handlers
}

// checkInts checks every key of keys that is set in s; add receives prefix+name and the problem.
// It returns the names of the keys that failed.
func checkInts[S any, T int | int64](keys []intKey[S, T], s *S, prefix string, add func(key, msg string)) map[string]bool {
	failed := map[string]bool{}
	for _, k := range keys {
		v, ok := k.get(s)
		if !ok {
			continue
		}
		if msg := k.check(v); msg != "" {
			add(prefix+k.name, msg)
			failed[k.name] = true
		}
	}
	return failed
}

// The tables. Their order is the order problems are listed in.
var (
	dynamicSeconds = []intKey[Dynamic, int]{
		// Each duration is bounded (bounds.go) before the timing rule adds them up.
		secondsKey("ttl", func(d *Dynamic) *int { return &d.TTL }, 2, MaxTTL),
		secondsKey("loop_wait", func(d *Dynamic) *int { return &d.LoopWait }, 1, MaxLoopWait),
		secondsKey("retry_timeout", func(d *Dynamic) *int { return &d.RetryTimeout }, 1, MaxRetryTimeout),
		secondsKey("primary_race_backoff", func(d *Dynamic) *int { return &d.PrimaryRaceBackoff }, 0, MaxPrimaryRaceBackoff),
		secondsKey("primary_start_timeout", func(d *Dynamic) *int { return &d.PrimaryStartTimeout }, 0, MaxPrimaryStartTimeout),
		{name: "synchronous_node_count", want: "an integer >= 1", check: atLeast(1, ""),
			get: func(d *Dynamic) (int, bool) { return d.SynchronousNodeCount, true },
			set: func(d *Dynamic, v int) { d.SynchronousNodeCount = v }},
	}
	dynamicBytes = []intKey[Dynamic, int64]{
		{name: "maximum_lag_on_failover", want: "an integer number of bytes", check: atLeast[int64](0, "bytes"),
			get: func(d *Dynamic) (int64, bool) { return d.MaximumLagOnFailover, true },
			set: func(d *Dynamic, v int64) { d.MaximumLagOnFailover = v }},
		{name: "maximum_lag_on_syncnode", want: "an integer number of bytes (-1 for off)",
			get:   func(d *Dynamic) (int64, bool) { return d.MaximumLagOnSyncnode, true },
			set:   func(d *Dynamic, v int64) { d.MaximumLagOnSyncnode = v },
			check: syncnodeLagProblem},
	}
	postgresqlInts = []intKey[PostgreSQL, int]{
		secondsKey("pg_ctl_timeout", func(pg *PostgreSQL) *int { return &pg.PgCtlTimeout }, 1, MaxPgCtlTimeout),
	}
	watchdogInts = []intKey[Watchdog, int]{
		func() intKey[Watchdog, int] {
			get, set := optionalInt(func(w *Watchdog) **int { return &w.SafetyMargin })
			return intKey[Watchdog, int]{name: "safety_margin", want: "an integer number of seconds (-1 for ttl/2)",
				get: get, set: set, check: safetyMarginProblem}
		}(),
	}
	tagsInts = []intKey[Tags, int]{
		priorityKey("sync_priority", func(t *Tags) **int { return &t.SyncPriority }),
		priorityKey("failover_priority", func(t *Tags) **int { return &t.FailoverPriority }),
	}
	consulInts     = []intKey[Consul, int]{portKey("port", func(c *Consul) *int { return &c.Port }, false)}
	kubePortInts   = []intKey[KubePort, int]{portKey("port", func(p *KubePort) *int { return &p.Port }, true)}
	masterStartKey = secondsKey("master_start_timeout", func(d *Dynamic) *int { return &d.PrimaryStartTimeout }, 0, MaxPrimaryStartTimeout)
)

func syncnodeLagProblem(v int64) string {
	if v < -1 {
		return fmt.Sprintf("must be -1 (off) or >= 0 bytes, got %d", v)
	}
	return ""
}

// safetyMarginProblem bounds watchdog.safety_margin: a negative value means ttl/2, and a margin
// is subtracted from the lease, so one longer than the longest lease means nothing.
func safetyMarginProblem(v int) string {
	if v > MaxTTL {
		return fmt.Sprintf("must be at most %d seconds (%s), got %d", MaxTTL, humanSeconds(MaxTTL), v)
	}
	return ""
}

// priorityKey is a tag priority: an integer >= 0 (0 turns the behaviour off), below 2^31 as
// Patroni's comparisons and the JSON of other members' readers expect.
func priorityKey(name string, f func(*Tags) **int) intKey[Tags, int] {
	get, set := optionalInt(f)
	return intKey[Tags, int]{name: name, want: "an integer >= 0", get: get, set: set, check: func(v int) string {
		switch {
		case v < 0:
			return fmt.Sprintf("must be an integer >= 0, got %d", v)
		case v > math.MaxInt32:
			return fmt.Sprintf("must be below 2^31, got %d", v)
		}
		return ""
	}}
}
