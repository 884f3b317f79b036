package config

import (
	"strings"
	"testing"
	"time"
)

// checkDynamicBounds fails the test when a dynamic configuration that Validate accepted holds a
// duration outside its bounds (or one that is not positive once it is a Duration), or text that
// would break postgresql.conf or pg_hba.conf.
func checkDynamicBounds(t *testing.T, d Dynamic, from []byte) {
	t.Helper()
	ttl, lw, rt := d.TimingDurations()
	for _, c := range []struct {
		key    string
		v      time.Duration
		lo, hi time.Duration
	}{
		{"ttl", ttl, 2 * time.Second, MaxTTL * time.Second},
		{"loop_wait", lw, time.Second, MaxLoopWait * time.Second},
		{"retry_timeout", rt, time.Second, MaxRetryTimeout * time.Second},
		{"primary_start_timeout", time.Duration(d.PrimaryStartTimeout) * time.Second, 0, MaxPrimaryStartTimeout * time.Second},
		{"primary_race_backoff", time.Duration(d.PrimaryRaceBackoff) * time.Second, 0, MaxPrimaryRaceBackoff * time.Second},
	} {
		if c.v < c.lo || c.v > c.hi {
			t.Fatalf("%s = %v accepted from %q", c.key, c.v, from)
		}
	}
	if lw+2*rt > ttl {
		t.Fatalf("timing rule broken: %v + 2*%v > %v accepted from %q", lw, rt, ttl, from)
	}
	for k, v := range d.PostgreSQL.Parameters {
		if !validParameterName(k) {
			t.Fatalf("parameter name %q accepted from %q", k, from)
		}
		if strings.ContainsAny(ParameterString(v), "\n\r\x00") {
			t.Fatalf("parameter %s = %q accepted from %q", k, ParameterString(v), from)
		}
	}
	for _, l := range d.PostgreSQL.PgHBA {
		if strings.ContainsAny(strings.TrimRight(l, "\r\n"), "\n\r\x00") {
			t.Fatalf("pg_hba line %q accepted from %q", l, from)
		}
	}
}

// FuzzDynamicBounds parses arbitrary values of the DCS config key as the HA loop does (ParseDynamic,
// then Validate): no panic, and what is accepted is within the bounds and writes cleanly into
// postgresql.conf and pg_hba.conf, also after the round trip through JSON that tusker writes back.
func FuzzDynamicBounds(f *testing.F) {
	for _, seed := range []string{
		`{"ttl":30,"loop_wait":10,"retry_timeout":10}`, `{"ttl":86400,"loop_wait":1,"retry_timeout":43199}`,
		`{"ttl":86401}`, `{"ttl":4611686018427387904}`, `{"retry_timeout":4611686018427387904}`,
		`{"loop_wait":-9223372036854775808,"retry_timeout":4611686018427387904}`, `{"ttl":"9223372036854775807"}`,
		`{"ttl":1e300}`, `{"ttl":1e400}`, `{"ttl":-1e400}`, `{"ttl":1.0e18}`, `{"ttl":"1e18"}`, `{"ttl":"0x10"}`,
		`{"primary_start_timeout":86401}`, `{"master_start_timeout":-1}`, `{"primary_race_backoff":1e18}`,
		`{"postgresql":{"parameters":{"archive_command":"a\nb"}}}`, `{"postgresql":{"parameters":{"a b":"1"}}}`,
		`{"postgresql":{"parameters":{"pg_stat_statements.max":10000,"x.y.z":1}}}`,
		`{"postgresql":{"pg_hba":["local all all peer\nhost all all 0.0.0.0/0 trust"]}}`,
		`{"postgresql":{"pg_hba":["local all all peer\n"]}}`, `{"postgresql":{"recovery_conf":{"restore_command":"\u0000"}}}`,
		`{"synchronous_node_count":9223372036854775807}`, `null`, ``, `[]`, `{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := ParseDynamic(raw)
		if err != nil || len(d.Validate()) > 0 {
			return
		}
		checkDynamicBounds(t, d, raw)
		out, err := d.JSON()
		if err != nil {
			t.Fatalf("JSON of an accepted configuration failed: %v (from %q)", err, raw)
		}
		d2, err := ParseDynamic(out)
		if err != nil {
			t.Fatalf("round trip of %q failed: %v", out, err)
		}
		if probs := d2.Validate(); len(probs) > 0 {
			t.Fatalf("round trip of %q is invalid: %v", out, probs)
		}
		checkDynamicBounds(t, d2, out)
	})
}

// FuzzLoadEnvironment loads a whole configuration from PATRONI_CONFIGURATION (a YAML document
// the environment hands over) and one other variable: no panic, and an accepted configuration is
// within the bounds and has no line break where tusker writes it into a file.
func FuzzLoadEnvironment(f *testing.F) {
	f.Add(minimal, "PATRONI_NAME", "x")
	f.Add(minimal+"bootstrap:\n  dcs:\n    ttl: 86401\n", "", "")
	f.Add(minimal+"bootstrap:\n  dcs:\n    retry_timeout: 4611686018427387904\n", "", "")
	f.Add(minimal+"postgresql:\n  pg_ctl_timeout: 1e300\n  parameters:\n    work_mem: \"a\\nb\"\n", "", "")
	f.Add(minimal+"bootstrap:\n  pg_hba:\n  - \"host all all 0.0.0.0/0 trust\\nlocal all all peer\"\n", "", "")
	f.Add(minimal+"consul:\n  host: h:1\n  service_check_interval: 9999999999h\n", "", "")
	f.Add("a: &a [*a]\n", "", "")
	f.Add("", "PATRONI_REPLICATION_PASSWORD", "p\nq")
	f.Add("", "PATRONI_CONSUL_SERVICE_CHECK_INTERVAL", "-1")
	f.Fuzz(func(t *testing.T, doc, name, value string) {
		env := []string{"PATRONI_CONFIGURATION=" + doc}
		if doc == "" {
			env = []string{"PATRONI_NAME=n", "PATRONI_SCOPE=s", "PATRONI_RESTAPI_LISTEN=127.0.0.1:8008",
				"PATRONI_POSTGRESQL_LISTEN=127.0.0.1:5432", "PATRONI_POSTGRESQL_DATA_DIR=/d",
				"PATRONI_ETCD3_HOSTS=127.0.0.1:2379"}
		}
		if strings.HasPrefix(name, "PATRONI_") && !strings.ContainsAny(name, "=\x00") {
			env = append(env, name+"="+value)
		}
		c, err := LoadWithEnv("", env)
		if err != nil {
			return
		}
		checkDynamicBounds(t, c.Bootstrap.DCS, []byte(doc))
		pg := c.PostgreSQL
		if pg.PgCtlTimeout < 1 || pg.PgCtlTimeout > MaxPgCtlTimeout {
			t.Fatalf("pg_ctl_timeout %d accepted from %q", pg.PgCtlTimeout, doc)
		}
		if k := c.Consul; k != nil && (k.ServiceCheckInterval < 0 || k.ServiceCheckInterval > maxSettingDuration) {
			t.Fatalf("service_check_interval %v accepted", k.ServiceCheckInterval)
		}
		texts := append([]string{c.Name, c.Scope, pg.DataDir, pg.Authentication.Replication.Password,
			pg.Authentication.Superuser.Password}, pg.PgHBA...)
		texts = append(texts, c.Bootstrap.PgHBA...)
		for k, v := range pg.Parameters {
			texts = append(texts, k, ParameterString(v))
		}
		for _, s := range texts {
			if strings.ContainsAny(strings.TrimRight(s, "\r\n"), "\n\r\x00") {
				t.Fatalf("%q accepted from %q / %s=%q", s, doc, name, value)
			}
		}
	})
}
