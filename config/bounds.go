package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The bounds of every duration tusker accepts, in one place. The configuration file, the
// PATRONI_* environment, the DCS config key and PATCH/PUT /config all go through
// Dynamic.Validate and Config.Validate, and the REST API checks the restart timeout and the
// schedules against MaxRestartTimeout and MaxScheduleAhead.
//
// Why upper bounds at all: each of these is multiplied into a time.Duration (int64 nanoseconds,
// about 292 years), and an integer of 2^62 seconds wraps into a negative or tiny duration, a
// lease that expires at once or a timer that fires at once; loop_wait + 2*retry_timeout <= ttl
// overflows too and lets such values through. The bounds sit far below any overflow and far
// above any setting that still makes a cluster highly available.
const (
	// MaxTTL is a day. With a longer lease a dead primary is not replaced for more than a day,
	// which is no longer failover; Consul's session TTL (ttl/2 here) is capped at a day as well.
	MaxTTL = 86400
	// MaxLoopWait is MaxTTL: the timing rule already keeps loop_wait below ttl, and this bound
	// is checked first, so that the rule's sum cannot overflow.
	MaxLoopWait = MaxTTL
	// MaxRetryTimeout is MaxTTL/2, the largest value the timing rule allows with the largest ttl.
	MaxRetryTimeout = MaxTTL / 2
	// MaxPrimaryStartTimeout is a day: the longest the leader may wait for its PostgreSQL to come
	// back before it hands over. Patroni's default is 300 s.
	MaxPrimaryStartTimeout = 86400
	// MaxPrimaryRaceBackoff is a day, as primary_start_timeout: both only delay a failover.
	MaxPrimaryRaceBackoff = 86400
	// MaxPgCtlTimeout is a day: how long one start, stop or promotion may take.
	MaxPgCtlTimeout = 86400
	// MaxRestartTimeout bounds POST /restart's timeout, as pg_ctl_timeout.
	MaxRestartTimeout = 24 * time.Hour
	// MaxScheduleAhead bounds how far ahead POST /switchover's scheduled_at and POST /restart's
	// schedule may be: a year (366 days, so that "the same date next year" always fits). A
	// scheduled action that far out is more likely a typo in the year than a plan.
	MaxScheduleAhead = 366 * 24 * time.Hour
	// maxSettingDuration bounds the other durations of the configuration (the DCS sections'
	// intervals, e.g. consul.service_check_interval).
	maxSettingDuration = 24 * time.Hour
)

// secondsProblem checks a number of seconds against [lo, hi]: "" when it is inside, else the
// problem (without the key). The messages keep the forms the documentation shows.
func secondsProblem(v, lo, hi int) string {
	switch {
	case v < lo && lo == 0:
		return fmt.Sprintf("must be >= 0 seconds, got %d", v)
	case v < lo && lo == 1:
		return fmt.Sprintf("must be at least 1 second, got %d", v)
	case v < lo:
		return fmt.Sprintf("must be at least %d seconds, got %d", lo, v)
	case v > hi:
		return fmt.Sprintf("must be at most %d seconds (%s), got %d", hi, humanSeconds(hi), v)
	}
	return ""
}

// humanSeconds says a bound in words: "1 day", "12 hours".
func humanSeconds(s int) string {
	switch {
	case s%86400 == 0:
		return plural(s/86400, "day")
	case s%3600 == 0:
		return plural(s/3600, "hour")
	case s%60 == 0:
		return plural(s/60, "minute")
	}
	return plural(s, "second")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// controlChar returns the first character of s that would break a line of postgresql.conf,
// pg_hba.conf or the passfile: a line break or any other C0 control character but the tab, or
// DEL. ok is false when there is none.
func controlChar(s string) (c byte, ok bool) {
	for i := 0; i < len(s); i++ {
		if b := s[i]; (b < 0x20 && b != '\t') || b == 0x7f {
			return b, true
		}
	}
	return 0, false
}

// textProblem is "" when s may be written into a line of a configuration file, else the problem.
func textProblem(s string) string {
	c, bad := controlChar(s)
	if !bad {
		return ""
	}
	what := "a control character"
	if c == '\n' || c == '\r' {
		what = "a line break"
	}
	return fmt.Sprintf("must not contain %s (%q): it would break the generated configuration file", what, string(c))
}

// validParameterName reports whether name is a parameter name postgresql.conf can hold, as
// PostgreSQL's configuration lexer reads it: a name, or two joined by one dot (an extension's
// "pg_stat_statements.max"), each starting with a letter or "_" and made of letters, digits and
// "_" (bytes above 0x7f count as letters). Anything else would not be read back as one name:
// "a = 1 #" would set a parameter of its own.
func validParameterName(name string) bool {
	first, rest, qualified := strings.Cut(name, ".")
	if !validIdent(first) {
		return false
	}
	return !qualified || validIdent(rest)
}

func validIdent(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '_', b >= 0x80:
		default:
			return false
		}
	}
	return true
}

// parameterProblems checks a map of PostgreSQL parameters (path is its key path, e.g.
// "postgresql.parameters"): each name must be one postgresql.conf can hold, and each string value
// must fit on one line. add receives the key path and the problem.
func parameterProblems(path string, params map[string]any, add func(key, msg string)) {
	for _, k := range slices.Sorted(maps.Keys(params)) {
		if !validParameterName(k) {
			add(path+"."+strconv.Quote(k), "not a valid PostgreSQL parameter name (letters, digits and _, "+
				"optionally one dot: \"work_mem\", \"pg_stat_statements.max\")")
			continue
		}
		if s, ok := params[k].(string); ok {
			if p := textProblem(s); p != "" {
				add(path+"."+k, p)
			}
		}
	}
}

// linesProblems checks a list of lines written as they are (pg_hba.conf): none may hold a line
// break, which would add a line of its own (for example "host all all 0.0.0.0/0 trust"). A line
// break at the end is no harm (the file is written with it trimmed; YAML's "|" leaves one).
func linesProblems(path string, lines []string, add func(key, msg string)) {
	for i, l := range lines {
		if p := textProblem(strings.TrimRight(l, "\r\n")); p != "" {
			add(indexPath(path, i), p)
		}
	}
}
