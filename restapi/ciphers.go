package restapi

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
)

// openSSLNames maps the OpenSSL spelling of every TLS 1.2 suite Go implements to its IANA name
// (crypto/tls uses the IANA names). Patroni passes restapi.ciphers to OpenSSL, so configurations
// written for it use these; TestOpenSSLNamesCoverGo fails when a Go release adds a suite missing
// here.
var openSSLNames = map[string]string{
	"ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
	"ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
	"ECDHE-RSA-AES128-GCM-SHA256":   "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	"ECDHE-RSA-AES256-GCM-SHA384":   "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
	"ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
	"ECDHE-RSA-CHACHA20-POLY1305":   "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
	"ECDHE-ECDSA-AES128-SHA":        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
	"ECDHE-ECDSA-AES256-SHA":        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
	"ECDHE-RSA-AES128-SHA":          "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
	"ECDHE-RSA-AES256-SHA":          "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
	"ECDHE-ECDSA-AES128-SHA256":     "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
	"ECDHE-RSA-AES128-SHA256":       "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
	"ECDHE-ECDSA-RC4-SHA":           "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
	"ECDHE-RSA-RC4-SHA":             "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
	"ECDHE-RSA-DES-CBC3-SHA":        "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
	"AES128-GCM-SHA256":             "TLS_RSA_WITH_AES_128_GCM_SHA256",
	"AES256-GCM-SHA384":             "TLS_RSA_WITH_AES_256_GCM_SHA384",
	"AES128-SHA":                    "TLS_RSA_WITH_AES_128_CBC_SHA",
	"AES256-SHA":                    "TLS_RSA_WITH_AES_256_CBC_SHA",
	"AES128-SHA256":                 "TLS_RSA_WITH_AES_128_CBC_SHA256",
	"RC4-SHA":                       "TLS_RSA_WITH_RC4_128_SHA",
	"DES-CBC3-SHA":                  "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
}

// suiteInfo is what parseCiphers needs to know about a suite named in restapi.ciphers.
type suiteInfo struct {
	id       uint16
	name     string // IANA
	tls13    bool   // TLS 1.3 only: Go does not let these be configured
	insecure bool   // in tls.InsecureCipherSuites
}

// suitesByName indexes Go's suites by their IANA and OpenSSL names (upper case). TLS 1.3 suites
// have the same name in both.
var suitesByName = func() map[string]suiteInfo {
	m := make(map[string]suiteInfo)
	add := func(cs *tls.CipherSuite, insecure bool) {
		tls13 := len(cs.SupportedVersions) == 1 && cs.SupportedVersions[0] == tls.VersionTLS13
		m[cs.Name] = suiteInfo{id: cs.ID, name: cs.Name, tls13: tls13, insecure: insecure}
	}
	for _, cs := range tls.CipherSuites() {
		add(cs, false)
	}
	for _, cs := range tls.InsecureCipherSuites() {
		add(cs, true)
	}
	for openssl, iana := range openSSLNames {
		if si, ok := m[iana]; ok {
			m[openssl] = si
		}
	}
	return m
}()

// parseCiphers turns restapi.ciphers into the TLS 1.2 suites to enable. The list is separated by
// ':' (OpenSSL), ',' or spaces and names suites in OpenSSL (ECDHE-RSA-AES256-GCM-SHA384) or IANA
// (TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) spelling. An empty list returns nil: Go's defaults.
//
// Names that Patroni's OpenSSL accepts but that cannot take effect here are skipped and returned
// in skipped, so that a list written for Patroni (its documentation's example names DHE suites and
// "!TLSv1") still works: OpenSSL exclusions ("!X", "-X", which only remove X), TLS 1.3 suites
// (Go always enables all of them), DHE suites (Go has no finite-field Diffie-Hellman) and the
// suites Go deems insecure (RC4, 3DES, RSA key exchange, CBC with SHA-256), which tusker refuses
// to enable. Anything else unknown, OpenSSL keywords such as HIGH included, is an error naming it,
// as is a list that leaves no TLS 1.2 suite.
func parseCiphers(list string) (suites []uint16, skipped []string, err error) {
	names := strings.FieldsFunc(list, func(r rune) bool {
		return r == ':' || r == ',' || r == ' ' || r == '\t' || r == '\n'
	})
	if len(names) == 0 {
		return nil, nil, nil
	}
	var excluded []uint16
	for _, name := range names {
		up := strings.ToUpper(name)
		if x, ok := strings.CutPrefix(up, "!"); ok || strings.HasPrefix(up, "-") {
			if !ok {
				x = up[1:]
			}
			if si, known := suitesByName[x]; known {
				excluded = append(excluded, si.id)
			}
			skipped = append(skipped, name)
			continue
		}
		si, known := suitesByName[up]
		switch {
		case !known && (strings.HasPrefix(up, "DHE-") || strings.HasPrefix(up, "EDH-") ||
			strings.HasPrefix(up, "TLS_DHE_")):
			skipped = append(skipped, name)
		case !known:
			return nil, nil, fmt.Errorf("unknown cipher suite %q (list suite names such as "+
				"ECDHE-RSA-AES256-GCM-SHA384; OpenSSL keywords like HIGH are not supported)", name)
		case si.tls13, si.insecure:
			skipped = append(skipped, name)
		default:
			suites = append(suites, si.id)
		}
	}
	var kept []uint16
	for _, id := range suites {
		if !slices.Contains(kept, id) && !slices.Contains(excluded, id) {
			kept = append(kept, id)
		}
	}
	if len(kept) == 0 {
		return nil, nil, fmt.Errorf("cipher list %q leaves no usable TLS 1.2 suite (TLS 1.3 "+
			"suites are always enabled and cannot be listed; DHE and insecure suites are not "+
			"supported)", list)
	}
	return kept, skipped, nil
}
