package dcs

import (
	"testing"
)

// FuzzDecode feeds arbitrary values under every key of a cluster: Decode never panics, and a key
// it cannot parse is reported in Invalid rather than half-filled.
func FuzzDecode(f *testing.F) {
	for _, seed := range []struct{ key, value string }{
		{"leader", "n1"}, {"leader", ""}, {"leader", "{\"x\":1}"}, {"config", `{"ttl":30}`},
		{"status", `{"optime":67395656,"slots":{"n1":1}}`}, {"status", `{"optime":"x"}`},
		{"failover", `{"leader":"n1","member":"n2","scheduled_at":"2030-01-01T00:00:00+00:00"}`},
		{"failover", `{"scheduled_at":5}`}, {"history", `[[1,50331808,"no recovery target specified","2024-01-02T15:00:00+00:00","n1"]]`},
		{"history", `[[1]]`}, {"history", `{}`}, {"members/n1", `{"conn_url":"postgres://h/db","api_url":"http://h/patroni","state":"running","role":"primary","xlog_location":1,"tags":{"nofailover":true}}`},
		{"members/n1", `{"xlog_location":"0/1"}`}, {"members/", `{}`}, {"failsafe", `{"n1":"http://h/patroni"}`},
		{"failsafe", `[1]`}, {"sync", `{"leader":"n1","sync_standby":"n2"}`}, {"initialize", "7408277255830290455"},
		{"optime/leader", "1"}, {"members/n1", "\xff\xfe"},
	} {
		f.Add(seed.key, []byte(seed.value))
	}
	k := NewKeys("/service", "c")
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		c := k.Decode([]KV{{Key: k.Prefix + key, Value: value, Version: 1}})
		if c == nil {
			t.Fatal("nil cluster")
		}
		if c.Leader != nil && c.Leader.Name == "" {
			t.Fatalf("empty leader name from %q", value)
		}
		for _, m := range c.Members {
			if m.Name == "" {
				t.Fatalf("member without a name from key %q", key)
			}
		}
	})
}
