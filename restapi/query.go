package restapi

import (
	"net/url"
	"strings"

	"github.com/tusker-ha/tusker/patroni"
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
		if patroni.String(tv) != v {
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
