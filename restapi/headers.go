package restapi

import (
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// header is one response header with its value, ready to be assigned into an http.Header.
type header struct {
	name string // canonical
	val  []string
}

// product is the Server header's product token.
const product = "tusker"

// serverHeader is the Server header for restapi.server_tokens (case-insensitive): "Minimal" adds
// the version; "", "Original" and "ProductOnly" send the product only. Patroni's "Original" leaves
// Python's "BaseHTTP/0.6 Python/3.x" there, which tells a scanner more than it needs: tusker sends
// no version unless asked to. An unknown value is Patroni's default with a warning, as in Patroni.
func serverHeader(tokens, version string, log *slog.Logger) string {
	switch strings.ToLower(tokens) {
	case "", "original", "productonly":
	case "minimal":
		if version != "" {
			return product + "/" + version
		}
	default:
		log.Warn("restapi.server_tokens is not one of Original, Minimal, ProductOnly; sending the product name only",
			"server_tokens", tokens)
	}
	return product
}

// responseHeaders returns the headers every response starts with: Server, then the extra headers
// (the HTTPS ones too when tls). Both lists are built once: the handler assigns their values
// without allocating. The handler's own headers (Content-Type, Content-Length, Allow...) are set
// afterwards and win over an extra header of the same name.
func responseHeaders(server string, extra, extraTLS map[string]string) (plain, tls []header, err error) {
	merged := maps.Clone(extra)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, extraTLS) // the HTTPS value wins, as Patroni's dict update
	build := func(m map[string]string) ([]header, error) {
		hs := []header{{"Server", []string{server}}}
		byName := map[string]int{"Server": 0}
		for _, name := range slices.Sorted(maps.Keys(m)) {
			val := m[name]
			if err := checkHeader(name, val); err != nil {
				return nil, err
			}
			c := http.CanonicalHeaderKey(name)
			if i, dup := byName[c]; dup { // "x-a" and "X-A": one header, the last in sorted order
				hs[i].val = []string{val}
				continue
			}
			byName[c] = len(hs)
			hs = append(hs, header{c, []string{val}})
		}
		return hs, nil
	}
	if plain, err = build(extra); err != nil {
		return nil, nil, fmt.Errorf("http_extra_headers: %w", err)
	}
	if tls, err = build(merged); err != nil {
		return nil, nil, fmt.Errorf("https_extra_headers: %w", err)
	}
	return plain, tls, nil
}

// checkHeader refuses a header that net/http would drop or mangle, and those that decide how a
// response is framed: a configured value there would corrupt the responses.
func checkHeader(name, val string) error {
	if name == "" {
		return fmt.Errorf("empty header name")
	}
	for _, c := range name {
		if c > 0x7e || c <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c) {
			return fmt.Errorf("header name %q: invalid character %q", name, c)
		}
	}
	switch http.CanonicalHeaderKey(name) {
	case "Content-Length", "Transfer-Encoding", "Connection", "Content-Type", "Trailer":
		return fmt.Errorf("header %q is set by the server and cannot be configured", name)
	}
	for _, c := range val {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return fmt.Errorf("header %q: value has a control character", name)
		}
	}
	return nil
}
