package config

import (
	"encoding/json"
	"testing"
)

// FuzzDynamicPatch applies an arbitrary JSON merge patch to a valid dynamic configuration and
// parses the result, as PATCH /config does: no panic, and a result that parses is valid JSON
// whose typed fields survive a round trip.
func FuzzDynamicPatch(f *testing.F) {
	doc := []byte(`{"ttl":30,"loop_wait":10,"retry_timeout":10,"postgresql":{"parameters":{"max_connections":100},"use_pg_rewind":true}}`)
	for _, seed := range []string{
		`{"ttl":20}`, `{"ttl":null}`, `{"ttl":"x"}`, `{"ttl":1e308}`, `{"ttl":-5}`, `{"pause":true}`,
		`{"postgresql":{"parameters":{"max_connections":null,"wal_level":"logical"}}}`, `{"postgresql":null}`,
		`{"postgresql":[1]}`, `{"loop_wait":100}`, `{"maximum_lag_on_failover":"1MB"}`, `[]`, `null`, `{`,
		`{"slots":{"s":{"type":"logical"}}}`, `{"check_timeline":"yes"}`, `{"primary_start_timeout":0}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, patch []byte) {
		merged, err := MergePatch(doc, patch)
		if err != nil {
			return
		}
		if !json.Valid(merged) {
			t.Fatalf("MergePatch produced invalid JSON %q from %q", merged, patch)
		}
		d, err := ParseDynamic(merged)
		if err != nil {
			return
		}
		_ = d.Validate()
		out, err := d.JSON()
		if err != nil {
			t.Fatalf("JSON of a parsed configuration failed: %v (from %q)", err, merged)
		}
		d2, err := ParseDynamic(out)
		if err != nil {
			t.Fatalf("round trip of %q failed: %v", out, err)
		}
		if d2.TTL != d.TTL || d2.LoopWait != d.LoopWait || d2.Pause != d.Pause {
			t.Fatalf("round trip changed %q into %q", merged, out)
		}
	})
}
