package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// boundCase is one value of one dynamic key: the other timing keys are chosen so that only this
// key can be the problem (the timing rule holds for every accepted value).
type boundCase struct {
	name  string
	key   string // a dynamic key
	value string // as written in YAML and JSON alike
	want  string // the problem without the path prefix; "" when the value is accepted
}

// timingFor returns ttl, loop_wait and retry_timeout that leave key free to take any value
// without breaking the timing rule for accepted values.
func timingFor(key string) map[string]string {
	m := map[string]string{"ttl": "86400", "loop_wait": "1", "retry_timeout": "1"}
	delete(m, key)
	return m
}

var boundCases = func() []boundCase {
	var cs []boundCase
	for _, k := range []struct {
		key    string
		lo, hi int
		low    string
	}{
		// ttl 2 is in range, but 2 < loop_wait + 2*retry_timeout = 3: 3 is the lowest accepted.
		{"ttl", 2, MaxTTL, "must be at least 2 seconds"},
		{"loop_wait", 1, 86398, "must be at least 1 second"},
		{"retry_timeout", 1, 43199, "must be at least 1 second"},
		{"primary_start_timeout", 0, MaxPrimaryStartTimeout, "must be >= 0 seconds"},
		{"master_start_timeout", 0, MaxPrimaryStartTimeout, "must be >= 0 seconds"},
		{"primary_race_backoff", 0, MaxPrimaryRaceBackoff, "must be >= 0 seconds"},
	} {
		// master_start_timeout is reported under the name tusker reads it into.
		key := map[string]string{"master_start_timeout": "primary_start_timeout"}[k.key]
		if key == "" {
			key = k.key
		}
		hiMsg := map[string]string{
			"ttl": "must be at most 86400 seconds (1 day)", "loop_wait": "must be at most 86400 seconds (1 day)",
			"retry_timeout": "must be at most 43200 seconds (12 hours)",
		}[k.key]
		if hiMsg == "" {
			hiMsg = "must be at most 86400 seconds (1 day)"
		}
		lowest := k.lo
		if k.key == "ttl" {
			lowest = 3
		}
		cs = append(cs,
			boundCase{"lowest", k.key, fmt.Sprint(lowest), ""},
			boundCase{"highest", k.key, fmt.Sprint(k.hi), ""},
			boundCase{"below", k.key, fmt.Sprint(k.lo - 1), key + ": " + k.low + ", got " + fmt.Sprint(k.lo-1)},
			boundCase{"a day and a second", k.key, "86401", key + ": " + hiMsg + ", got 86401"},
			// 2^62 seconds: time.Duration(v)*time.Second wraps around, and 2*2^62 overflows the
			// timing rule's sum into a negative number that passed the rule.
			boundCase{"2^62", k.key, "4611686018427387904", key + ": " + hiMsg + ", got 4611686018427387904"},
			boundCase{"max int64 as a string", k.key, `"9223372036854775807"`, key + ": " + hiMsg + ", got 9223372036854775807"},
			boundCase{"min int64", k.key, "-9223372036854775808", key + ": " + k.low + ", got -9223372036854775808"},
			boundCase{"above int64", k.key, "9223372036854775808", k.key + ": expected an integer number of seconds"},
			boundCase{"1e300", k.key, "1e300", k.key + ": expected an integer number of seconds"},
			boundCase{"1e18 as a float", k.key, "1.0e18", key + ": " + hiMsg + ", got 1000000000000000000"},
			boundCase{"fraction", k.key, "1.5", k.key + ": expected an integer number of seconds"},
		)
	}
	return cs
}()

// dynamicYAML is a bootstrap.dcs section with key set to value over timingFor(key).
func dynamicYAML(key, value string) string {
	var b strings.Builder
	b.WriteString("bootstrap:\n  dcs:\n")
	for k, v := range timingFor(key) {
		fmt.Fprintf(&b, "    %s: %s\n", k, v)
	}
	fmt.Fprintf(&b, "    %s: %s\n", key, value)
	return b.String()
}

// dynamicJSON is the same as a DCS config value.
func dynamicJSON(key, value string) string {
	var parts []string
	for k, v := range timingFor(key) {
		parts = append(parts, fmt.Sprintf("%q:%s", k, v))
	}
	parts = append(parts, fmt.Sprintf("%q:%s", key, value))
	return "{" + strings.Join(parts, ",") + "}"
}

// checkProblems asserts that problems is empty when want is "", else that it is exactly one
// problem starting with prefix+want.
func checkProblems(t *testing.T, problems []string, prefix, want string) {
	t.Helper()
	if want == "" {
		assert.Empty(t, problems)
		return
	}
	require.Len(t, problems, 1, "%q", problems)
	assert.True(t, strings.HasPrefix(problems[0], prefix+want), "got %q, want prefix %q", problems[0], prefix+want)
}

// TestDynamicBoundsFile: bootstrap.dcs in the configuration file.
func TestDynamicBoundsFile(t *testing.T) {
	for _, tc := range boundCases {
		t.Run(tc.key+"/"+tc.name, func(t *testing.T) {
			c, err := loadYAML(t, dynamicYAML(tc.key, tc.value))
			if tc.want == "" {
				require.NoError(t, err)
				durs := [3]int{c.Bootstrap.DCS.TTL, c.Bootstrap.DCS.LoopWait, c.Bootstrap.DCS.RetryTimeout}
				for _, d := range durs {
					assert.Positive(t, d)
				}
				return
			}
			checkProblems(t, problemsOf(t, err), "bootstrap.dcs.", tc.want)
		})
	}
}

// TestDynamicBoundsEnvironment: bootstrap.dcs in PATRONI_CONFIGURATION, the only variable that
// carries dynamic keys (Patroni has no PATRONI_TTL).
func TestDynamicBoundsEnvironment(t *testing.T) {
	for _, tc := range boundCases {
		t.Run(tc.key+"/"+tc.name, func(t *testing.T) {
			_, err := LoadWithEnv("", []string{"PATRONI_CONFIGURATION=" + minimal + dynamicYAML(tc.key, tc.value)})
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			checkProblems(t, problemsOf(t, err), "bootstrap.dcs.", tc.want)
			assert.Contains(t, err.Error(), "PATRONI_CONFIGURATION")
		})
	}
}

// TestDynamicBoundsConfigKey: the JSON of the DCS config key, as the HA loop and PATCH /config
// check it (ParseDynamic, then Validate).
func TestDynamicBoundsConfigKey(t *testing.T) {
	for _, tc := range boundCases {
		t.Run(tc.key+"/"+tc.name, func(t *testing.T) {
			d, err := ParseDynamic([]byte(dynamicJSON(tc.key, tc.value)))
			var problems []string
			if err != nil {
				problems = problemsOf(t, err)
			} else {
				problems = d.Validate()
			}
			checkProblems(t, problems, "", tc.want)
			if tc.want == "" {
				ttl, lw, rt := d.TimingDurations()
				assert.Positive(t, ttl)
				assert.Positive(t, lw)
				assert.Positive(t, rt)
			}
		})
	}
}

// TestTimingRuleCannotOverflow: values whose sum loop_wait + 2*retry_timeout wrapped around
// into a negative number used to pass the rule.
func TestTimingRuleCannotOverflow(t *testing.T) {
	d := DefaultDynamic()
	d.RetryTimeout = 1 << 62
	assert.Equal(t, []string{"retry_timeout: must be at most 43200 seconds (12 hours), got 4611686018427387904"}, d.Validate())
	d = DefaultDynamic()
	d.LoopWait = -1 << 63
	d.RetryTimeout = 1 << 62
	assert.Len(t, d.Validate(), 2, "both named, and no rule check on them")
}

func TestPgCtlTimeoutBounds(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"1", ""}, {"86400", ""},
		{"-1", "postgresql.pg_ctl_timeout: must be at least 1 second, got -1"},
		{"86401", "postgresql.pg_ctl_timeout: must be at most 86400 seconds (1 day), got 86401"},
		{"4611686018427387904", "postgresql.pg_ctl_timeout: must be at most 86400 seconds (1 day)"},
		{"1e300", "postgresql.pg_ctl_timeout: expected an integer number of seconds"},
	} {
		t.Run(tc.value, func(t *testing.T) {
			_, err := loadYAML(t, "postgresql:\n  pg_ctl_timeout: "+tc.value+"\n")
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			checkProblems(t, problemsOf(t, err), "", tc.want)
		})
	}
}

// TestIntegerKeyBounds: the integer keys bounded by their intKey rows, beyond the dynamic
// durations and pg_ctl_timeout above.
func TestIntegerKeyBounds(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"watchdog:\n  safety_margin: -1\n", ""},
		{"watchdog:\n  safety_margin: 5\n", ""},
		{"watchdog:\n  safety_margin: -2\n", ""},
		{"watchdog:\n  safety_margin: 86401\n", "watchdog.safety_margin: must be at most 86400 seconds (1 day), got 86401"},
		{"watchdog:\n  safety_margin: 4611686018427387904\n", "watchdog.safety_margin: must be at most 86400 seconds (1 day)"},
		{"tags:\n  sync_priority: -3\n", "tags.sync_priority: must be an integer >= 0, got -3"},
		{"tags:\n  failover_priority: 4294967296\n", "tags.failover_priority: must be below 2^31, got 4294967296"},
		{"bootstrap:\n  dcs:\n    master_start_timeout: 86401\n", "bootstrap.dcs.primary_start_timeout: must be at most 86400 seconds"},
		{"bootstrap:\n  dcs:\n    synchronous_node_count: 0\n", "bootstrap.dcs.synchronous_node_count: must be at least 1, got 0"},
		{"bootstrap:\n  dcs:\n    maximum_lag_on_failover: -1\n", "bootstrap.dcs.maximum_lag_on_failover: must be >= 0 bytes, got -1"},
	} {
		t.Run(tc.yaml, func(t *testing.T) {
			_, err := loadYAML(t, tc.yaml)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			checkProblems(t, problemsOf(t, err), "", tc.want)
		})
	}
}

// TestAliasYieldsToNewName: master_start_timeout applies only when primary_start_timeout is
// absent, wherever either stands in the document.
func TestAliasYieldsToNewName(t *testing.T) {
	for _, doc := range []string{
		`{"master_start_timeout": 7, "primary_start_timeout": 9}`,
		`{"primary_start_timeout": 9, "master_start_timeout": 7}`,
	} {
		d, err := ParseDynamic([]byte(doc))
		require.NoError(t, err)
		assert.Equal(t, 9, d.PrimaryStartTimeout, doc)
	}
	d, err := ParseDynamic([]byte(`{"master_start_timeout": 7}`))
	require.NoError(t, err)
	assert.Equal(t, 7, d.PrimaryStartTimeout)
	d, err = ParseDynamic([]byte(`{"master_start_timeout": "x"}`))
	require.Error(t, err)
	assert.Equal(t, DefaultPrimaryStartTimeout, d.PrimaryStartTimeout, "a bad alias keeps the default")
}

// TestSettingDurationBounds: durations of the DCS sections (consul.service_check_interval), in
// the file and from PATRONI_CONSUL_SERVICE_CHECK_INTERVAL.
func TestSettingDurationBounds(t *testing.T) {
	const consul = "scope: s\nname: n\nrestapi:\n  listen: 127.0.0.1:8008\npostgresql:\n  listen: 127.0.0.1:5432\n" +
		"  data_dir: /d\nconsul:\n  host: 127.0.0.1:8500\n"
	const key = "consul.service_check_interval: "
	for _, tc := range []struct{ value, want string }{
		{"0", ""}, {"5s", ""}, {"86400", ""}, {"24h", ""},
		{"86401", key + "must be between 0 and 24h0m0s, got 86401"},
		{"25h", key + "must be between 0 and 24h0m0s, got 25h"},
		{"-5s", key + "must be between 0 and 24h0m0s, got -5s"},
		{"-1", key + "must be between 0 and 24h0m0s, got -1"},
		{"9223372036854775807", key + "must be between 0 and 24h0m0s"},
		{"9999999999h", key + `expected a duration ("5s") or a number of seconds`},
		{"1e300", key + `expected a duration ("5s") or a number of seconds`},
	} {
		t.Run(tc.value, func(t *testing.T) {
			dir := t.TempDir()
			_, err := LoadWithEnv(writeFile(t, dir, "c.yml", consul+"  service_check_interval: "+tc.value+"\n"), nil)
			_, envErr := LoadWithEnv(writeFile(t, dir, "e.yml", consul), []string{"PATRONI_CONSUL_SERVICE_CHECK_INTERVAL=" + tc.value})
			if tc.want == "" {
				require.NoError(t, err)
				require.NoError(t, envErr)
				return
			}
			checkProblems(t, problemsOf(t, err), "", tc.want)
			checkProblems(t, problemsOf(t, envErr), "", tc.want)
			assert.Contains(t, envErr.Error(), "from PATRONI_CONSUL_SERVICE_CHECK_INTERVAL")
		})
	}
}

// textCases are values that would break a line of postgresql.conf or pg_hba.conf.
var textCases = []struct{ name, value, want string }{
	{"newline", "a\nb", `must not contain a line break ("\n")`},
	{"carriage return", "a\rb", `must not contain a line break ("\r")`},
	{"NUL", "a\x00b", `must not contain a control character ("\x00")`},
	{"escape", "a\x1bb", `must not contain a control character ("\x1b")`},
	{"DEL", "a\x7fb", `must not contain a control character ("\x7f")`},
}

// TestParameterTexts: parameter values and names, and pg_hba lines, in the file
// (postgresql.parameters, postgresql.pg_hba, bootstrap.pg_hba, bootstrap.dcs.postgresql.*,
// recovery_conf) and in the DCS config key.
func TestParameterTexts(t *testing.T) {
	for _, tc := range textCases {
		q := fmt.Sprintf("%q", tc.value) // a YAML string with the escape
		j, err := json.Marshal(tc.value)
		require.NoError(t, err)
		jq := string(j)
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range []struct{ yaml, key string }{
				{"postgresql:\n  parameters:\n    archive_command: " + q + "\n", "postgresql.parameters.archive_command: "},
				{"postgresql:\n  pg_hba:\n  - local all all peer\n  - " + q + "\n", "postgresql.pg_hba[1]: "},
				{"bootstrap:\n  pg_hba:\n  - " + q + "\n", "bootstrap.pg_hba[0]: "},
				{"postgresql:\n  pg_ident:\n  - " + q + "\n", "postgresql.pg_ident[0]: "},
				{"bootstrap:\n  dcs:\n    postgresql:\n      parameters:\n        work_mem: " + q + "\n",
					"bootstrap.dcs.postgresql.parameters.work_mem: "},
				{"bootstrap:\n  dcs:\n    postgresql:\n      pg_hba:\n      - " + q + "\n", "bootstrap.dcs.postgresql.pg_hba[0]: "},
				{"bootstrap:\n  dcs:\n    postgresql:\n      recovery_conf:\n        restore_command: " + q + "\n",
					"bootstrap.dcs.postgresql.recovery_conf.restore_command: "},
				{"postgresql:\n  recovery_conf:\n    restore_command: " + q + "\n", "postgresql.recovery_conf.restore_command: "},
			} {
				_, err := loadYAML(t, f.yaml)
				checkProblems(t, problemsOf(t, err), f.key, tc.want)
			}
			for _, f := range []struct{ json, key string }{
				{`{"postgresql":{"parameters":{"archive_command":` + jq + `}}}`, "postgresql.parameters.archive_command: "},
				{`{"postgresql":{"pg_hba":["local all all peer",` + jq + `]}}`, "postgresql.pg_hba[1]: "},
				{`{"postgresql":{"recovery_conf":{"restore_command":` + jq + `}}}`, "postgresql.recovery_conf.restore_command: "},
			} {
				d, err := ParseDynamic([]byte(f.json))
				problems := d.Validate()
				if err != nil {
					problems = problemsOf(t, err)
				}
				checkProblems(t, problems, f.key, tc.want)
			}
		})
	}

	// Tabs are fine (a separator in pg_hba.conf), and so is a line break ending a pg_hba line
	// (YAML's "|" leaves one; the file is written with it trimmed).
	_, err := loadYAML(t, "postgresql:\n  parameters:\n    application_name: \"a\\tb\"\n  pg_hba:\n  - \"local\\tall all peer\\n\"\n")
	require.NoError(t, err)
}

func TestParameterNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"work_mem", true}, {"pg_stat_statements.max", true}, {"_x1", true}, {"Max_Connections", true},
		{"auto_explain.log_min_duration", true}, {"café", true},
		{"", false}, {"1abc", false}, {"a.b.c", false}, {"a.", false}, {".a", false}, {"a-b", false},
		{"a b", false}, {"a=1", false}, {"archive_command = 'rm -rf /' #", false}, {"a\nb", false}, {"a#", false},
	} {
		assert.Equal(t, tc.ok, validParameterName(tc.name), "%q", tc.name)
	}
	_, err := loadYAML(t, "postgresql:\n  parameters:\n    \"archive_command = 'x' #\": on\n")
	checkProblems(t, problemsOf(t, err), `postgresql.parameters."archive_command = 'x' #": `, "not a valid PostgreSQL parameter name")
	d, err := ParseDynamic([]byte(`{"postgresql":{"parameters":{"a\nb":"1"}}}`))
	require.NoError(t, err)
	checkProblems(t, d.Validate(), `postgresql.parameters."a\nb": `, "not a valid PostgreSQL parameter name")
}

// TestLocalTexts: the values tusker writes into primary_conninfo, the passfile or the member key,
// from the file and from PATRONI_* variables.
func TestLocalTexts(t *testing.T) {
	for _, tc := range []struct{ variable, key string }{
		{"PATRONI_NAME", "name"},
		{"PATRONI_SCOPE", "scope"},
		{"PATRONI_NAMESPACE", "namespace"},
		{"PATRONI_RESTAPI_CONNECT_ADDRESS", "restapi.connect_address"},
		{"PATRONI_POSTGRESQL_CONNECT_ADDRESS", "postgresql.connect_address"},
		{"PATRONI_POSTGRESQL_DATA_DIR", "postgresql.data_dir"},
		{"PATRONI_POSTGRESQL_CONFIG_DIR", "postgresql.config_dir"},
		{"PATRONI_POSTGRESQL_BIN_DIR", "postgresql.bin_dir"},
		{"PATRONI_POSTGRESQL_PGPASS", "postgresql.pgpass"},
		{"PATRONI_SUPERUSER_USERNAME", "postgresql.authentication.superuser.username"},
		{"PATRONI_SUPERUSER_PASSWORD", "postgresql.authentication.superuser.password"},
		{"PATRONI_REPLICATION_USERNAME", "postgresql.authentication.replication.username"},
		{"PATRONI_REPLICATION_PASSWORD", "postgresql.authentication.replication.password"},
		{"PATRONI_REWIND_USERNAME", "postgresql.authentication.rewind.username"},
		{"PATRONI_REWIND_PASSWORD", "postgresql.authentication.rewind.password"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			dir := t.TempDir()
			p := writeFile(t, dir, "c.yml", minimal)
			value := "x\nhost all all 0.0.0.0/0 trust"
			if strings.HasSuffix(tc.key, "address") {
				value = "h\n:5432"
			}
			_, err := LoadWithEnv(p, []string{tc.variable + "=" + value})
			var found bool
			for _, pr := range problemsOf(t, err) {
				if strings.HasPrefix(pr, tc.key+`: must not contain a line break ("\n")`) {
					found = true
					assert.Contains(t, pr, "(from "+tc.variable+")")
					assert.NotContains(t, pr, "0.0.0.0/0", "the value (perhaps a password) is not repeated")
				}
			}
			assert.True(t, found, "%v", err)
		})
	}
	_, err := loadYAML(t, "postgresql:\n  authentication:\n    replication:\n      password: \"a\\nb\"\n")
	checkProblems(t, problemsOf(t, err), "postgresql.authentication.replication.password: ", "must not contain a line break")
}
