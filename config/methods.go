package config

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Custom bootstrap and replica creation methods, as Patroni reads them: bootstrap.method names a
// section of bootstrap ("bootstrap.<method>"), and postgresql.create_replica_methods names
// sections of postgresql ("postgresql.<method>"), "basebackup" being the built-in pg_basebackup
// whose options are postgresql.basebackup.

// BasebackupMethod is the built-in replica creation method.
const BasebackupMethod = "basebackup"

// MethodParam is one key of a method's section that is passed to its command as --key=value.
type MethodParam struct{ Key, Value string }

// BootstrapMethod is a custom bootstrap method (bootstrap.method and its section).
type BootstrapMethod struct {
	Name    string
	Command string
	// KeepExistingRecoveryConf keeps the recovery settings and signal files the command left
	// (pgBackRest's and Barman's restores write their own); otherwise they are removed.
	KeepExistingRecoveryConf bool
	NoParams                 bool // no --scope and --datadir
	// RecoveryConf, when set, are the recovery settings the restored cluster starts with
	// (restore_command, recovery_target_time, recovery_target_action...), in place of the ones the
	// command left.
	RecoveryConf map[string]any
	Params       []MethodParam // the section's other keys, in their order
}

// bootstrapReserved are the keys of a bootstrap method's section that are not passed on
// (Patroni's reserved_args).
var bootstrapReserved = []string{"command", "no_params", "keep_existing_recovery_conf", "recovery_conf", "scope", "datadir"}

// Args are the arguments after the command's own: --scope and --datadir unless no_params, then
// the section's other keys, as Patroni passes them.
func (m BootstrapMethod) Args(scope, dataDir string) []string {
	var args []string
	if !m.NoParams {
		args = append(args, "--scope="+scope, "--datadir="+dataDir)
	}
	for _, p := range m.Params {
		args = append(args, "--"+p.Key+"="+p.Value)
	}
	return args
}

// ReplicaMethod is one entry of postgresql.create_replica_methods with its section.
type ReplicaMethod struct {
	Name     string
	Command  string // the section's command; the method's name when it has none
	KeepData bool   // the data directory is not emptied before (nor after a failure)
	NoParams bool   // no --scope, --role, --datadir and --connstring
	NoLeader bool   // the method works without a running leader (restores from a backup)
	// Params are the section's keys but command, in their order, as Patroni passes them (with
	// no_params false, keep_data and no_leader themselves are passed on too).
	Params []MethodParam
}

// WorksWithoutLeader reports whether the method can create a replica with no leader running
// (Patroni's no_leader; never basebackup, which copies from a running server).
func (m ReplicaMethod) WorksWithoutLeader() bool { return m.NoLeader && !m.Builtin() }

// Builtin reports whether this is the built-in basebackup.
func (m ReplicaMethod) Builtin() bool { return m.Name == BasebackupMethod }

// Args are the arguments after the command's own, as Patroni builds them: the section's keys,
// and unless no_params, scope, role, datadir and connstring (replacing a key of the same name in
// place, appended otherwise); with no_params, no_params, no_leader and keep_data are dropped.
func (m ReplicaMethod) Args(scope, dataDir, connstring string) []string {
	params := slices.Clone(m.Params)
	if m.NoParams {
		params = slices.DeleteFunc(params, func(p MethodParam) bool {
			return p.Key == "no_params" || p.Key == "no_leader" || p.Key == "keep_data"
		})
	} else {
		for _, kv := range []MethodParam{{"scope", scope}, {"role", "replica"}, {"datadir", dataDir}, {"connstring", connstring}} {
			if i := slices.IndexFunc(params, func(p MethodParam) bool { return p.Key == kv.Key }); i >= 0 {
				params[i].Value = kv.Value
			} else {
				params = append(params, kv)
			}
		}
	}
	args := make([]string, 0, len(params))
	for _, p := range params {
		args = append(args, "--"+p.Key+"="+p.Value)
	}
	return args
}

// disallowedBasebackup are the pg_basebackup options tusker sets itself (Patroni's list).
var disallowedBasebackup = []string{"pgdata", "format", "wal-method", "xlog-method", "gzip", "version",
	"dbname", "host", "port", "username", "password"}

// methodValue is a section value as Patroni passes it on (Python's str): booleans True/False.
func (d *decoder) methodValue(p string, v *node) (string, bool) {
	switch v.kind {
	case nullNode:
		return "None", true
	case scalarNode:
		if b, ok := v.val.(bool); ok {
			return map[bool]string{true: "True", false: "False"}[b], true
		}
		if msg := textProblem(v.text); msg != "" {
			d.problem(p, v, "%s", msg)
			return "", false
		}
		return v.text, true
	}
	d.problem(p, v, "expected a value to pass as --key=value (a string, number or boolean), got %s", describe(v))
	return "", false
}

// bootstrapMethod reads the section of a custom bootstrap method.
func (d *decoder) bootstrapMethod(path, name string, n *node) *BootstrapMethod {
	m := &BootstrapMethod{Name: name}
	d.section(path, n, "a map of settings (command, keep_existing_recovery_conf, no_params, recovery_conf, ...)",
		map[string]func(string, *node){
			"command":                     d.setStr(&m.Command, "a string (a command)"),
			"keep_existing_recovery_conf": d.setBool(&m.KeepExistingRecoveryConf),
			"no_params":                   d.setBool(&m.NoParams),
			"recovery_conf":               func(p string, v *node) { m.RecoveryConf = d.recoveryConf(p, v) },
			"scope":                       func(string, *node) {}, // Patroni's reserved names: never passed on
			"datadir":                     func(string, *node) {},
		}, func(p, k string, v *node) {
			if val, ok := d.methodValue(p, v); ok {
				m.Params = append(m.Params, MethodParam{k, val})
			}
		})
	return m
}

// replicaMethod reads the section of a replica creation method (n may be null: no section).
func (d *decoder) replicaMethod(path, name string, n *node) ReplicaMethod {
	m := ReplicaMethod{Name: name}
	// keep_data, no_params and no_leader are passed on too (as Patroni prints a boolean,
	// whichever spelling the file used).
	passOn := func(dst *bool) func(string, *node) {
		return func(p string, v *node) {
			if b, ok := d.boolean(p, v); ok {
				*dst = b
				m.Params = append(m.Params, MethodParam{p[strings.LastIndex(p, ".")+1:], map[bool]string{true: "True", false: "False"}[b]})
			}
		}
	}
	d.section(path, n, "a map of settings (command, keep_data, no_params, no_leader, ...)",
		map[string]func(string, *node){
			"command":   d.setStr(&m.Command, "a string (a command)"),
			"keep_data": passOn(&m.KeepData),
			"no_params": passOn(&m.NoParams),
			"no_leader": passOn(&m.NoLeader),
		}, func(p, k string, v *node) {
			if val, ok := d.methodValue(p, v); ok {
				m.Params = append(m.Params, MethodParam{k, val})
			}
		})
	if m.Command == "" {
		m.Command = name
	}
	return m
}

// recoveryConf reads a recovery_conf section: PostgreSQL recovery settings (restore_command,
// recovery_target_time, ...), each a string, number or boolean; Validate checks that names and
// values fit into postgresql.conf.
func (d *decoder) recoveryConf(path string, n *node) map[string]any {
	return d.parameters(path, n)
}

// methodName checks a method name: it names a section and, without one, a command.
func methodName(name string) string {
	switch {
	case strings.TrimSpace(name) == "":
		return "empty method name"
	case strings.ContainsAny(name, ".\n\r\x00"):
		return fmt.Sprintf("method name %q must not contain '.' or control characters", name)
	}
	return ""
}

// BootstrapUser is one entry of bootstrap.users (Patroni 3; removed in Patroni 4, which logs an
// error instead): a role created after the bootstrap, with its password and role options.
type BootstrapUser struct {
	Name     string
	Password string
	Options  []string // upper case: "CREATEDB", "CONNECTION LIMIT 5", "VALID UNTIL '2027-01-01'"
}

// roleKeywords are the role options of CREATE ROLE that bootstrap.users may name.
var roleKeywords = []string{"SUPERUSER", "NOSUPERUSER", "CREATEDB", "NOCREATEDB", "CREATEROLE", "NOCREATEROLE",
	"INHERIT", "NOINHERIT", "LOGIN", "NOLOGIN", "REPLICATION", "NOREPLICATION", "BYPASSRLS", "NOBYPASSRLS"}

var validUntilRE = regexp.MustCompile(`(?is)^\s*valid\s+until\s+(.*)$`)

// roleOption normalises one option of bootstrap.users; ok is false when it is none CREATE ROLE
// takes as tusker writes it into SQL: a keyword, CONNECTION LIMIT n or VALID UNTIL 'timestamp'.
func roleOption(o string) (string, bool) {
	f := strings.Fields(strings.ToUpper(o))
	switch {
	case len(f) == 1 && slices.Contains(roleKeywords, f[0]):
		return f[0], true
	case len(f) == 3 && f[0] == "CONNECTION" && f[1] == "LIMIT":
		if _, err := strconv.Atoi(f[2]); err == nil {
			return strings.Join(f, " "), true
		}
	case len(f) >= 3 && f[0] == "VALID" && f[1] == "UNTIL":
		// The timestamp as written (an index into the upper-cased text would not fit the
		// original: upper case can change a character's length in bytes).
		m := validUntilRE.FindStringSubmatch(o)
		if m == nil {
			return "", false
		}
		ts := strings.Trim(strings.TrimSpace(m[1]), "'")
		if ts != "" && !strings.ContainsAny(ts, "'\\") && textProblem(ts) == "" {
			return "VALID UNTIL '" + ts + "'", true
		}
	}
	return "", false
}

// users reads bootstrap.users: a map of role names to {password, options}.
func (d *decoder) users(path string, n *node) []BootstrapUser {
	if !d.freeMap(path, n, "a map of role names to {password, options}") {
		return nil
	}
	var out []BootstrapUser
	for _, name := range n.keys {
		p := joinPath(path, name)
		u := BootstrapUser{Name: name}
		d.fields(p, n.m[name], map[string]func(string, *node){
			"password": d.setStr(&u.Password, "a string"),
			"options": func(p string, v *node) {
				for i, o := range d.stringList(p, v, "a list of role options (createdb, createrole, ...)") {
					norm, ok := roleOption(o)
					if !ok {
						d.problem(indexPath(p, i), v, "%q is not a role option tusker passes to CREATE ROLE "+
							"(%s, CONNECTION LIMIT n, VALID UNTIL 'timestamp')", o, strings.ToLower(strings.Join(roleKeywords, ", ")))
						continue
					}
					u.Options = append(u.Options, norm)
				}
			},
		})
		if strings.TrimSpace(name) == "" || textProblem(name) != "" {
			d.problem(p, n.m[name], "not a role name")
			continue
		}
		out = append(out, u)
	}
	return out
}
