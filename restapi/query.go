package restapi

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
)

// nextParam splits the first key=value pair off a raw query string and unescapes it. Like
// Python's parse_qs, which Patroni uses, callers skip pairs whose value is empty ("?lag=", "?lag").
// It allocates only when the pair is escaped.
func nextParam(query string) (key, value, rest string) {
	pair, rest, _ := strings.Cut(query, "&")
	key, value, _ = strings.Cut(pair, "=")
	return unescape(key), unescape(value), rest
}

func unescape(s string) string {
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		plain = s[i] != '%' && s[i] != '+'
	}
	if plain {
		return s
	}
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// tagsMatch applies the ?tag_<name>=<value> filters: every named tag must be set and equal the
// value. Strings compare as they are; other values (booleans, numbers) as their lower-case text,
// as Patroni does (tag_nofailover=true matches nofailover: true). When a filter is repeated the
// first value counts.
func tagsMatch(tags map[string]any, query string) bool {
	for rest := query; rest != ""; {
		before := query[:len(query)-len(rest)]
		var k, v string
		k, v, rest = nextParam(rest)
		if v == "" || !strings.HasPrefix(k, "tag_") || seenBefore(before, k) {
			continue
		}
		tv, ok := tags[k[len("tag_"):]]
		if !ok || tv == nil {
			return false
		}
		if tagString(tv) != v {
			return false
		}
	}
	return true
}

func seenBefore(query, key string) bool {
	for query != "" {
		var k, v string
		k, v, query = nextParam(query)
		if k == key && v != "" {
			return true
		}
	}
	return false
}

// tagString is a tag value as Patroni compares it: strings as they are, anything else as
// str(value).lower(). Whole floats print without a fraction because JSON-decoded tags cannot tell
// 1 from 1.0 (a YAML or JSON 1 is an int in Patroni).
func tagString(v any) string {
	switch t := v.(type) {
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
	}
	return strings.ToLower(fmt.Sprint(v))
}

// tagTrue is Patroni's parse_bool on a tag (noloadbalance, nofailover...): on, true, yes or 1 in
// any case.
func tagTrue(v any) bool {
	if v == nil {
		return false
	}
	switch strings.ToLower(tagString(v)) {
	case "on", "true", "yes", "1":
		return true
	}
	return false
}
