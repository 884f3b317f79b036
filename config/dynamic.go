package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Defaults of the dynamic configuration. They are deliberately faster than Patroni's
// (ttl 30, loop_wait 10, retry_timeout 10) while keeping loop_wait + 2*retry_timeout <= ttl.
const (
	DefaultTTL                  = 6
	DefaultLoopWait             = 1
	DefaultRetryTimeout         = 2
	DefaultMaximumLagOnFailover = 1048576
	DefaultPrimaryStartTimeout  = 300
	DefaultSynchronousNodeCount = 1
	DefaultMaximumLagOnSyncnode = -1
)

// Standby is the standby_cluster section when it makes this a standby cluster, else nil.
func (d Dynamic) Standby() *StandbyCluster {
	if d.StandbyCluster.Active() {
		return d.StandbyCluster
	}
	return nil
}

// DefaultDynamic returns tusker's default dynamic configuration (Raw is empty).
func DefaultDynamic() Dynamic {
	return Dynamic{
		TTL:                  DefaultTTL,
		LoopWait:             DefaultLoopWait,
		RetryTimeout:         DefaultRetryTimeout,
		MaximumLagOnFailover: DefaultMaximumLagOnFailover,
		PrimaryStartTimeout:  DefaultPrimaryStartTimeout,
		SynchronousMode:      "off",
		SynchronousNodeCount: DefaultSynchronousNodeCount,
		MaximumLagOnSyncnode: DefaultMaximumLagOnSyncnode,
		PostgreSQL:           DynamicPostgreSQL{UseSlots: true, UsePgRewind: true},
		MemberSlotsTTL:       DefaultMemberSlotsTTL,
		Raw:                  map[string]any{},
	}
}

// ParseDynamic parses the JSON value of the DCS "config" key over the defaults. It is as lax as
// the YAML loader ("30" for 30, "on" for true, master_start_timeout for primary_start_timeout).
// An empty value or "null" gives the defaults. On type problems it returns a *ValidationError
// (problems named by key, e.g. "ttl: expected an integer number of seconds, got \"abc\"") together
// with a best-effort Dynamic in which the offending keys keep their defaults. ParseDynamic does not
// check ranges and the timing rule: call Validate for that.
func ParseDynamic(raw []byte) (Dynamic, error) {
	if len(strings.TrimSpace(string(raw))) == 0 {
		return DefaultDynamic(), nil
	}
	n, err := fromJSON(raw)
	if err != nil {
		return DefaultDynamic(), fmt.Errorf("dynamic configuration: invalid JSON: %w", err)
	}
	switch n.kind {
	case nullNode:
		return DefaultDynamic(), nil
	case mapNode:
	default:
		return DefaultDynamic(), fmt.Errorf("dynamic configuration: expected a JSON object, got %s", describe(n))
	}
	d := newDecoder()
	dyn := decodeDynamic(d, "", n)
	if len(d.problems) > 0 {
		return dyn, &ValidationError{Source: "dynamic configuration", Problems: d.problems}
	}
	return dyn, nil
}

// Unimplemented lists the keys of Raw that tusker accepts but does not act on yet (for example
// "synchronous_mode", "postgresql.recovery_conf"), sorted. User-defined parameter names are not
// listed.
func (d Dynamic) Unimplemented() []string {
	dec := newDecoder()
	decodeDynamic(dec, "", fromAny(d.Raw))
	return dec.unimplementedList()
}

// JSON serialises the dynamic configuration for the DCS "config" key: Raw (so that keys tusker
// does not know survive) with the typed fields written over it. master_start_timeout is replaced
// by primary_start_timeout, and pause is only written when true (as Patroni does).
func (d Dynamic) JSON() ([]byte, error) {
	out := deepCopyMap(d.Raw)
	out["ttl"] = d.TTL
	out["loop_wait"] = d.LoopWait
	out["retry_timeout"] = d.RetryTimeout
	out["maximum_lag_on_failover"] = d.MaximumLagOnFailover
	out["check_timeline"] = d.CheckTimeline
	out["primary_start_timeout"] = d.PrimaryStartTimeout
	delete(out, "master_start_timeout")
	if d.Pause {
		out["pause"] = true
	} else {
		delete(out, "pause")
	}
	if d.FailsafeMode {
		out["failsafe_mode"] = true
	} else {
		delete(out, "failsafe_mode")
	}
	if d.PrimaryRaceBackoff != 0 {
		out["primary_race_backoff"] = d.PrimaryRaceBackoff
	} else {
		delete(out, "primary_race_backoff")
	}
	// The synchronous settings are written when they were given or differ from the default, so
	// that a configuration without them stays without them.
	setIf := func(key string, v any, isDefault bool) {
		if _, given := out[key]; given || !isDefault {
			out[key] = v
		}
	}
	setIf("synchronous_mode", d.SyncMode(), d.SyncMode() == "off")
	setIf("synchronous_mode_strict", d.SynchronousModeStrict, !d.SynchronousModeStrict)
	setIf("synchronous_node_count", d.SynchronousNodeCount, d.SynchronousNodeCount == DefaultSynchronousNodeCount)
	setIf("maximum_lag_on_syncnode", d.MaximumLagOnSyncnode, d.MaximumLagOnSyncnode == DefaultMaximumLagOnSyncnode)
	pg, _ := out["postgresql"].(map[string]any)
	if pg == nil {
		pg = map[string]any{}
	}
	pg["use_pg_rewind"] = d.PostgreSQL.UsePgRewind
	pg["use_slots"] = d.PostgreSQL.UseSlots
	if len(d.PostgreSQL.Parameters) > 0 {
		pg["parameters"] = maps.Clone(d.PostgreSQL.Parameters)
	} else {
		delete(pg, "parameters")
	}
	if len(d.PostgreSQL.PgHBA) > 0 {
		pg["pg_hba"] = slices.Clone(d.PostgreSQL.PgHBA)
	} else {
		delete(pg, "pg_hba")
	}
	out["postgresql"] = pg
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode dynamic configuration: %w", err)
	}
	return b, nil
}

// MarshalJSON is JSON, so that json.Marshal of a Dynamic keeps the unknown keys too.
func (d Dynamic) MarshalJSON() ([]byte, error) {
	return d.JSON()
}

// UnmarshalJSON is ParseDynamic (including its laxness and its type errors).
func (d *Dynamic) UnmarshalJSON(b []byte) error {
	dyn, err := ParseDynamic(b)
	if err != nil {
		return err
	}
	*d = dyn
	return nil
}

// Validate checks the ranges (the bounds of bounds.go among them) and the timing rule of the
// dynamic configuration, and that parameter names and values and pg_hba lines can be written into
// postgresql.conf and pg_hba.conf. Each problem is "key: message" with the key relative to the
// dynamic configuration (e.g. "loop_wait: ..."); the result is empty when the configuration is
// valid. Every path that adopts a dynamic configuration calls it: loading the local file
// (bootstrap.dcs), the HA loop reading the DCS config key, PATCH and PUT /config, tuskerctl
// edit-config.
func (d Dynamic) Validate() []string {
	var p []string
	add := func(key, format string, args ...any) {
		p = append(p, key+": "+fmt.Sprintf(format, args...))
	}
	// The integer keys are checked against their rows (intkeys.go) before the timing rule, so
	// that the rule's sum is computed on bounded values only and cannot overflow.
	failed := checkInts(dynamicSeconds, &d, "", func(key, msg string) { add(key, "%s", msg) })
	checkInts(dynamicBytes, &d, "", func(key, msg string) { add(key, "%s", msg) })
	if !failed["ttl"] && !failed["loop_wait"] && !failed["retry_timeout"] && d.LoopWait+2*d.RetryTimeout > d.TTL {
		add("loop_wait", "loop_wait + 2*retry_timeout must be <= ttl, got %d + 2*%d = %d > ttl %d "+
			"(lower loop_wait or retry_timeout, or raise ttl)",
			d.LoopWait, d.RetryTimeout, d.LoopWait+2*d.RetryTimeout, d.TTL)
	}
	switch d.SynchronousMode {
	case "off", "on", "quorum":
	default:
		add("synchronous_mode", "must be off, on or quorum (or a boolean), got %q", d.SynchronousMode)
	}
	for _, k := range slices.Sorted(maps.Keys(d.PostgreSQL.Parameters)) {
		switch d.PostgreSQL.Parameters[k].(type) {
		case nil, map[string]any, []any:
			add("postgresql.parameters."+k, "expected a string, number or boolean")
		}
	}
	addKey := func(key, msg string) { add(key, "%s", msg) }
	parameterProblems("postgresql.parameters", d.PostgreSQL.Parameters, addKey)
	linesProblems("postgresql.pg_hba", d.PostgreSQL.PgHBA, addKey)
	parameterProblems("postgresql.recovery_conf", d.PostgreSQL.RecoveryConf, addKey)
	d.StandbyCluster.problems(addKey)
	d.slotProblems(addKey)
	return p
}

func deepCopyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = deepCopy(v)
	}
	return out
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return deepCopyMap(x)
	case []any:
		l := make([]any, len(x))
		for i, it := range x {
			l[i] = deepCopy(it)
		}
		return l
	}
	return v
}

// dynamicKeys are the top-level keys of Patroni's dynamic configuration (and tusker's own
// primary_race_backoff). Keys tusker does not implement yet are accepted so that a cluster's
// configuration survives; anything else is a typo the REST API refuses.
var dynamicKeys = map[string]bool{
	"ttl": true, "loop_wait": true, "retry_timeout": true, "maximum_lag_on_failover": true,
	"maximum_lag_on_syncnode": true, "max_timelines_history": true, "primary_start_timeout": true,
	"master_start_timeout": true, "primary_stop_timeout": true, "master_stop_timeout": true,
	"synchronous_mode": true, "synchronous_mode_strict": true, "synchronous_node_count": true,
	"failsafe_mode": true, "check_timeline": true, "postgresql": true, "standby_cluster": true,
	"slots": true, "permanent_slots": true, "permanent_replication_slots": true,
	"ignore_slots": true, "member_slots_ttl": true, "pause": true,
	"primary_race_backoff": true,
}

// KnownDynamicKey reports whether key is a top-level key of the dynamic configuration.
func KnownDynamicKey(key string) bool { return dynamicKeys[key] }
