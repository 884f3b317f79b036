// Package patroni holds Patroni's rules for the values in member keys and REST payloads: tags,
// conn_url, WAL positions. A key written by Patroni, by tusker or by hand means one thing
// everywhere: ha decides with these functions, and restapi, the metrics and tuskerctl show what
// they return, so a member that one of them takes for promotable is promotable to all of them,
// and to Patroni members of the same cluster.
package patroni

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
)

// Bool reads a tag as Patroni reads a member's tags (Python truthiness, patroni/tags.py): false
// for a missing tag, false, 0, "" and empty lists and maps; true for anything else. So the string
// "false" is true, as it is to Patroni: both daemons must agree about who may be promoted, and
// for nofailover and nosync true is the safe reading. tusker's own configuration only takes YAML
// booleans for these tags, so its keys never carry such strings.
func Bool(v any) bool {
	switch t := v.(type) {
	case nil:
		return false
	case bool:
		return t
	case string:
		return t != ""
	case float64:
		return t != 0
	case int:
		return t != 0
	case int64:
		return t != 0
	case json.Number:
		f, err := t.Float64()
		return err != nil || f != 0
	case []any:
		return len(t) > 0
	case map[string]any:
		return len(t) > 0
	}
	return true
}

// Int reads an integer tag (failover_priority, sync_priority) as Patroni's parse_int does for a
// unitless value: a JSON number with no fraction, or a decimal integer in a string (spaces
// around it allowed). ok is false for anything else, which Patroni treats as the tag's default.
func Int(v any) (n int, ok bool) {
	var f float64
	switch t := v.(type) {
	case bool:
		// Python's int(True) is 1, but parse_int("True") is None: tags are parsed from text.
		return 0, false
	case float64:
		f = t
	case int:
		return t, true
	case int64:
		if t < math.MinInt32 || t > math.MaxInt32 {
			return 0, false
		}
		return int(t), true
	case json.Number:
		i, err := strconv.Atoi(string(t))
		return i, err == nil
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(t))
		return i, err == nil
	default:
		return 0, false
	}
	if f != math.Trunc(f) || f < math.MinInt32 || f > math.MaxInt32 {
		return 0, false
	}
	return int(f), true
}

// String is a tag value as Patroni compares it in the REST API's ?tag_NAME= filters: strings as
// they are, anything else as Python's str(value).lower(). Whole numbers print without a fraction
// because JSON-decoded tags cannot tell 1 from 1.0 (a YAML or JSON 1 is an int in Patroni).
func String(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	case int:
		return strconv.Itoa(t)
	case int64:
		return strconv.FormatInt(t, 10)
	case uint64:
		return strconv.FormatUint(t, 10)
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1e15 {
			return strconv.FormatInt(int64(t), 10)
		}
		return strings.ToLower(strconv.FormatFloat(t, 'g', -1, 64))
	case json.Number:
		return string(t)
	}
	return strings.ToLower(fmt.Sprint(v))
}

// NoFailover is whether a member with these tags may never be promoted, as Patroni 4 reads it:
// the nofailover tag when it is present at all (it takes precedence over failover_priority, even
// when false), else a failover_priority of 0 or less.
func NoFailover(tags map[string]any) bool { return boolTag(tags, "nofailover", "failover_priority") }

// FailoverPriority is a member's failover_priority: 0 with a true nofailover tag, else the tag's
// value, 1 when it is missing or not an integer.
func FailoverPriority(tags map[string]any) int {
	return priorityTag(tags, "nofailover", "failover_priority")
}

// NoSync is whether a member may never be a synchronous standby: the nosync tag when present,
// else a sync_priority of 0 or less (Patroni 4).
func NoSync(tags map[string]any) bool { return boolTag(tags, "nosync", "sync_priority") }

// SyncPriority is a member's sync_priority: 0 with a true nosync tag, else the tag's value, 1
// when it is missing or not an integer.
func SyncPriority(tags map[string]any) int { return priorityTag(tags, "nosync", "sync_priority") }

// NoLoadBalance and CloneFrom read the boolean tags of those names.
func NoLoadBalance(tags map[string]any) bool { return Bool(tags["noloadbalance"]) }
func CloneFrom(tags map[string]any) bool     { return Bool(tags["clonefrom"]) }

// NoStream is the nostream tag, read with ParseBool as Patroni 4 reads it (an unknown spelling
// is false).
func NoStream(tags map[string]any) bool {
	b, _ := ParseBool(tags["nostream"])
	return b
}

// ReplicateFrom is the replicatefrom tag: the member to stream from ("" for none).
func ReplicateFrom(tags map[string]any) string {
	s, _ := tags["replicatefrom"].(string)
	return s
}

// ParseBool is Patroni's parse_bool: on, true, yes and 1 are true, off, false, no and 0 false, in
// any case; ok is false for anything else.
func ParseBool(v any) (b, ok bool) {
	if v == nil {
		return false, false
	}
	switch strings.ToLower(String(v)) {
	case "on", "true", "yes", "1":
		return true, true
	case "off", "false", "no", "0":
		return false, true
	}
	return false, false
}

func boolTag(tags map[string]any, boolName, priorityName string) bool {
	if v, ok := tags[boolName]; ok && v != nil {
		return Bool(v)
	}
	p, ok := Int(tags[priorityName])
	return ok && p <= 0
}

func priorityTag(tags map[string]any, boolName, priorityName string) int {
	if Bool(tags[boolName]) {
		return 0
	}
	if p, ok := Int(tags[priorityName]); ok {
		return p
	}
	return 1
}

// ConnHostPort reads host and port from a member's conn_url (postgres://host:port/db) as Patroni
// does: the host lower-cased (and without brackets for IPv6), the port 5432 when absent. Without
// a host the URL is an error; with a port that is not 1-65535, the host is returned with port 0
// and an error.
func ConnHostPort(connURL string) (host string, port int, err error) {
	u, perr := url.Parse(connURL)
	if perr != nil || u.Hostname() == "" {
		return "", 0, fmt.Errorf("conn_url %q is not postgres://host:port/...", connURL)
	}
	host = strings.ToLower(u.Hostname())
	p := u.Port()
	if p == "" {
		return host, 5432, nil
	}
	n, aerr := strconv.Atoi(p)
	if aerr != nil || n <= 0 || n > 65535 {
		return host, 0, fmt.Errorf("conn_url %q: port %q is not 1-65535", connURL, p)
	}
	return host, n, nil
}

// FormatLSN writes a WAL position as PostgreSQL does: two halves of 32 bits in upper-case
// hexadecimal, "16/B374D848".
func FormatLSN(lsn int64) string {
	u := uint64(lsn)
	return strings.ToUpper(strconv.FormatUint(u>>32, 16) + "/" + strconv.FormatUint(u&0xFFFFFFFF, 16))
}

// ParseLSN reads a WAL position "X/Y" (hexadecimal halves of at most 32 bits).
func ParseLSN(s string) (int64, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, fmt.Errorf("invalid LSN %q: not X/Y", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid LSN %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid LSN %q: %w", s, err)
	}
	return int64(h<<32 | l), nil
}
