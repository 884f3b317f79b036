package restapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tusker-ha/tusker/config"
)

// member is one key of a JSON object body with its raw value.
type member struct {
	key string
	val json.RawMessage
}

// object is a JSON object body with its keys in the order of the body. A repeated key keeps its
// first place and its last value, as Python's json module does.
type object []member

var (
	errNotObject = errors.New("not a JSON object")
	errNotUTF8   = errors.New("not UTF-8")
	errTrailing  = errors.New("data after the JSON object")
)

// decodeObject decodes a request body that must be one JSON object.
func decodeObject(body []byte) (object, error) {
	if !utf8.Valid(body) {
		return nil, errNotUTF8
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errNotObject
	}
	var obj object
	var seen map[string]int
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errNotObject
		}
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, err
		}
		if i, dup := seen[key]; dup {
			obj[i].val = val
			continue
		}
		if seen == nil {
			seen = make(map[string]int)
		}
		seen[key] = len(obj)
		obj = append(obj, member{key, val})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errTrailing
	}
	return obj, nil
}

// get returns the raw value of key.
func (o object) get(key string) (json.RawMessage, bool) {
	for _, kv := range o {
		if kv.key == key {
			return kv.val, true
		}
	}
	return nil, false
}

// unknownKey returns a message naming the first key of the body that is not one of allowed, or "".
func (o object) unknownKey(allowed ...string) string {
	for _, kv := range o {
		if !slices.Contains(allowed, kv.key) {
			return "unknown key " + strconv.Quote(kv.key) + ": expected " + strings.Join(allowed, ", ")
		}
	}
	return ""
}

// str returns the string value of key: "" when the key is absent or null; ok is false when the
// value is of another type.
func (o object) str(key string) (s string, ok bool) {
	raw, found := o.get(key)
	if !found {
		return "", true
	}
	var p *string
	if json.Unmarshal(raw, &p) != nil {
		return "", false
	}
	if p == nil {
		return "", true
	}
	return *p, true
}

// falsy reports whether a JSON value is false in Python (null, false, 0, "", [], {}): Patroni
// treats such a scheduled_at as absent.
func falsy(raw json.RawMessage) bool {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return false
	}
	switch t := v.(type) {
	case nil:
		return true
	case bool:
		return !t
	case float64:
		return t == 0
	case string:
		return t == ""
	case []any:
		return len(t) == 0
	case map[string]any:
		return len(t) == 0
	}
	return false
}

// parseBool is Patroni's parse_bool on a JSON value: on, true, yes, 1 and off, false, no, 0 in any
// case, as booleans, strings or numbers; null is false. ok is false for anything else.
func parseBool(raw json.RawMessage) (v, ok bool) {
	var x any
	if json.Unmarshal(raw, &x) != nil {
		return false, false
	}
	var s string
	switch t := x.(type) {
	case nil:
		return false, true
	case bool:
		return t, true
	case string:
		s = strings.ToLower(t)
	case float64:
		s = string(bytes.TrimSpace(raw)) // the literal, as Python's str() of an int
	default:
		return false, false
	}
	switch s {
	case "on", "true", "yes", "1":
		return true, true
	case "off", "false", "no", "0":
		return false, true
	}
	return false, false
}

var (
	zonedLayouts = []string{
		"2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05Z07",
		"2006-01-02T15:04Z07:00", "2006-01-02T15:04Z0700", "2006-01-02T15:04Z07",
	}
	naiveLayouts = []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"}
)

// parseISO8601 parses an ISO 8601 timestamp: a date, "T" or a space, hours and minutes, optional
// seconds and fraction, and a time zone ("Z", "+02:00", "+0200" or "+02"). tz is false for a valid
// timestamp without a time zone (Patroni refuses those with a message of their own).
func parseISO8601(s string) (t time.Time, tz, ok bool) {
	s = strings.TrimSpace(s)
	if len(s) > 10 && (s[10] == ' ' || s[10] == 't') {
		s = s[:10] + "T" + s[11:]
	}
	if strings.HasSuffix(s, "z") {
		s = s[:len(s)-1] + "Z"
	}
	for _, l := range zonedLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true, true
		}
	}
	for _, l := range naiveLayouts {
		if _, err := time.Parse(l, s); err == nil {
			return time.Time{}, false, true
		}
	}
	return time.Time{}, false, false
}

// parsePostgresVersion converts a version as people write it into server_version_num: "15.3" is
// 150003 and "15" is 150000 (major*10000 + minor from version 10 on); "9.6.1" is 90601 and "9.6"
// is 90600 (major*10000 + minor*100 + patch before 10).
func parsePostgresVersion(s string) (int, bool) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) > 3 {
		return 0, false
	}
	var n [3]int
	for i, p := range parts {
		if p == "" || len(p) > 4 || strings.Trim(p, "0123456789") != "" {
			return 0, false
		}
		n[i], _ = strconv.Atoi(p)
	}
	major := n[0]
	switch {
	case major < 1:
		return 0, false
	case major >= 10:
		if len(parts) > 2 {
			return 0, false
		}
		return major*10000 + n[1], true
	case n[1] > 99 || n[2] > 99:
		return 0, false
	}
	return major*10000 + n[1]*100 + n[2], true
}

// pgUnits are the PostgreSQL time units Go's durations do not know.
var pgUnits = []struct {
	unit    string
	seconds float64
}{{"min", 60}, {"d", 86400}}

// Answers to a POST /restart timeout that is not a positive duration, or is one longer than
// config.MaxRestartTimeout.
const (
	msgBadTimeout  = "Timeout should be a positive number of seconds or a duration"
	msgLongTimeout = "Timeout should be at most 1 day (86400 seconds)"
)

var (
	errBadTimeout  = errors.New(msgBadTimeout)
	errLongTimeout = errors.New(msgLongTimeout)
)

// restartTimeout parses and bounds POST /restart's timeout: the Duration, or the message to
// answer with (400).
func restartTimeout(raw json.RawMessage) (time.Duration, string) {
	d, err := parseTimeout(raw)
	if err != nil {
		return 0, err.Error()
	}
	return d, ""
}

// parseTimeout parses a restart timeout: a positive JSON number of seconds, or a string holding
// a number of seconds ("30"), a Go duration ("30s", "2m", "1h30m", "500ms") or a number with a
// PostgreSQL unit ("2min", "1d"), of at most config.MaxRestartTimeout. The number is compared
// with the bound before it becomes a Duration, so that 1e300 cannot wrap around into a negative
// one. The error is errBadTimeout or errLongTimeout.
func parseTimeout(raw json.RawMessage) (time.Duration, error) {
	var x any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&x) != nil {
		return 0, errBadTimeout
	}
	switch t := x.(type) {
	case json.Number:
		if d, ok, err := numberSeconds(string(t), 1); ok {
			return d, err
		}
	case string:
		s := strings.TrimSpace(t)
		if d, ok, err := numberSeconds(s, 1); ok {
			return d, err
		}
		if d, err := time.ParseDuration(s); err == nil {
			switch {
			case d <= 0:
				return 0, errBadTimeout
			case d > config.MaxRestartTimeout:
				return 0, errLongTimeout
			}
			return d, nil
		}
		for _, u := range pgUnits {
			if num, ok := strings.CutSuffix(s, u.unit); ok {
				if d, ok, err := numberSeconds(strings.TrimSpace(num), u.seconds); ok {
					return d, err
				}
			}
		}
	}
	return 0, errBadTimeout
}

// numberSeconds converts a decimal number of units of unit seconds into a Duration of at most
// config.MaxRestartTimeout; ok is false when s is no number at all. The number is compared with
// the bound before it becomes a Duration, so that it cannot wrap around: one too large for a
// float64 (1e400) is too long, and Inf and NaN written out are no timeouts.
func numberSeconds(s string, unit float64) (d time.Duration, ok bool, err error) {
	f, perr := strconv.ParseFloat(s, 64)
	switch {
	case perr != nil && !errors.Is(perr, strconv.ErrRange):
		return 0, false, nil
	case perr == nil && (math.IsInf(f, 0) || math.IsNaN(f)):
		return 0, true, errBadTimeout
	}
	f *= unit
	switch {
	case !(f > 0): // a negative number too large for a float64 too
		return 0, true, errBadTimeout
	case f > config.MaxRestartTimeout.Seconds():
		return 0, true, errLongTimeout
	}
	d = time.Duration(f * float64(time.Second))
	if d <= 0 { // below a nanosecond
		return 0, true, errBadTimeout
	}
	return d, true, nil
}

// scheduleTooFar is the answer (422, like a schedule in the past) to a switchover or restart
// scheduled more than config.MaxScheduleAhead from now; action is "switchover" or "restart".
func scheduleTooFar(action string) string {
	key := "scheduled_at"
	if action == "restart" {
		key = "schedule"
	}
	return "Cannot schedule " + action + " more than a year ahead (" + key + " must be at most 366 days from now)"
}
