package dcs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
)

// Keys is Patroni's key layout under /<namespace>/<scope>/.
type Keys struct{ Prefix string }

// NewKeys builds the layout for a namespace (default "/service") and a scope.
func NewKeys(namespace, scope string) Keys {
	if namespace == "" {
		namespace = "/service"
	}
	return Keys{Prefix: path.Join("/", namespace, scope) + "/"}
}

func (k Keys) Initialize() string        { return k.Prefix + "initialize" }
func (k Keys) Config() string            { return k.Prefix + "config" }
func (k Keys) Leader() string            { return k.Prefix + "leader" }
func (k Keys) Status() string            { return k.Prefix + "status" }
func (k Keys) Failover() string          { return k.Prefix + "failover" }
func (k Keys) History() string           { return k.Prefix + "history" }
func (k Keys) Sync() string              { return k.Prefix + "sync" }
func (k Keys) Failsafe() string          { return k.Prefix + "failsafe" }
func (k Keys) Members() string           { return k.Prefix + "members/" }
func (k Keys) Member(name string) string { return k.Prefix + "members/" + name }

// KV is one raw key with its version, as a backend read it.
type KV struct {
	Key     string
	Value   []byte
	Version int64
}

// Decode builds a Cluster from the raw keys under k.Prefix. Values that do not parse are listed in
// Cluster.Invalid and skipped, so that garbage written by hand never crashes a reader.
func (k Keys) Decode(kvs []KV) *Cluster {
	c := &Cluster{}
	for _, kv := range kvs {
		rel := strings.TrimPrefix(kv.Key, k.Prefix)
		switch {
		case rel == "initialize":
			v := string(kv.Value)
			c.Initialize = &v
		case rel == "config":
			c.Config = &ConfigKey{Value: kv.Value, Version: kv.Version}
		case rel == "leader":
			name := strings.TrimSpace(string(kv.Value))
			if name == "" || strings.ContainsAny(name, "{}[]\"\n") {
				c.Invalid = append(c.Invalid, kv.Key)
				continue
			}
			c.Leader = &Leader{Name: name, Version: kv.Version}
		case rel == "status":
			var st Status
			if err := json.Unmarshal(kv.Value, &st); err != nil {
				c.Invalid = append(c.Invalid, kv.Key)
				continue
			}
			c.Status = st
		case rel == "failover":
			f, err := ParseFailover(kv.Value)
			if err != nil {
				c.Invalid = append(c.Invalid, kv.Key)
				continue
			}
			if f != nil {
				f.Version = kv.Version
				c.Failover = f
			}
		case rel == "history":
			h, err := ParseHistory(kv.Value)
			if err != nil {
				c.Invalid = append(c.Invalid, kv.Key)
				continue
			}
			c.History = h
		case rel == "sync":
			sy, err := ParseSync(kv.Value)
			if err != nil {
				c.Invalid = append(c.Invalid, kv.Key)
			}
			if sy == nil {
				if c.Sync != nil {
					continue
				}
				// An unusable (garbage or empty) sync key names nobody, but it exists: its
				// version lets the leader replace it by compare-and-set.
				sy = &Sync{}
			}
			sy.Version = kv.Version
			c.Sync = sy
		case rel == "failsafe":
			var fs map[string]string
			if err := json.Unmarshal(kv.Value, &fs); err != nil {
				c.Invalid = append(c.Invalid, kv.Key)
				continue
			}
			c.Failsafe = fs
		case strings.HasPrefix(rel, "members/"):
			name := strings.TrimPrefix(rel, "members/")
			var d MemberData
			if name == "" || strings.Contains(name, "/") || json.Unmarshal(kv.Value, &d) != nil {
				c.Invalid = append(c.Invalid, kv.Key)
				continue
			}
			c.Members = append(c.Members, Member{Name: name, Data: d, Version: kv.Version})
		}
	}
	sortMembers(c.Members)
	return c
}

func sortMembers(m []Member) {
	for i := 1; i < len(m); i++ {
		for j := i; j > 0 && m[j].Name < m[j-1].Name; j-- {
			m[j], m[j-1] = m[j-1], m[j]
		}
	}
}

// ParseFailover reads the failover key: JSON, or Patroni's legacy "leader:candidate" text.
// An empty value means no failover request.
func ParseFailover(b []byte) (*Failover, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] != '{' {
		leader, member, ok := strings.Cut(string(b), ":")
		if !ok {
			return nil, fmt.Errorf("failover value %q is neither JSON nor leader:candidate", b)
		}
		return namesSomebody(&Failover{Leader: leader, Member: member}, b)
	}
	var raw struct {
		Leader      string `json:"leader"`
		Member      string `json:"member"`
		ScheduledAt string `json:"scheduled_at"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("failover value: %w", err)
	}
	f := &Failover{Leader: raw.Leader, Member: raw.Member}
	if raw.ScheduledAt != "" {
		t, err := time.Parse(time.RFC3339Nano, raw.ScheduledAt)
		if err != nil {
			return nil, fmt.Errorf("failover scheduled_at %q: %w", raw.ScheduledAt, err)
		}
		f.ScheduledAt = &t
	}
	return namesSomebody(f, b)
}

// namesSomebody rejects a request that names neither a leader nor a candidate ("{}", ":"): read
// as valid, it would ask the leader to hand over to whichever member it picks.
func namesSomebody(f *Failover, b []byte) (*Failover, error) {
	if strings.TrimSpace(f.Leader) == "" && strings.TrimSpace(f.Member) == "" {
		return nil, fmt.Errorf("failover value %q names neither a leader nor a candidate", b)
	}
	return f, nil
}

// ParseSync reads the sync key: {"leader": "n0", "sync_standby": "n1,n2", "quorum": 1}, where
// sync_standby may be null and quorum absent (Patroni before quorum mode). An empty value is no key.
func ParseSync(b []byte) (*Sync, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, nil
	}
	var raw struct {
		Leader      *string `json:"leader"`
		SyncStandby *string `json:"sync_standby"`
		Quorum      *int    `json:"quorum"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("sync value: %w", err)
	}
	s := &Sync{}
	if raw.Leader != nil {
		s.Leader = *raw.Leader
	}
	if raw.SyncStandby != nil {
		for _, n := range strings.Split(*raw.SyncStandby, ",") {
			if n = strings.TrimSpace(n); n != "" {
				s.SyncStandby = append(s.SyncStandby, n)
			}
		}
	}
	if raw.Quorum != nil {
		if *raw.Quorum < 0 {
			return nil, fmt.Errorf("sync value: negative quorum %d", *raw.Quorum)
		}
		s.Quorum = *raw.Quorum
	}
	return s, nil
}

// MarshalJSON writes the sync key as Patroni does: sync_standby comma-separated or null.
func (s Sync) MarshalJSON() ([]byte, error) {
	var standby *string
	if len(s.SyncStandby) > 0 {
		j := strings.Join(s.SyncStandby, ",")
		standby = &j
	}
	return json.Marshal(struct {
		Leader      string  `json:"leader"`
		SyncStandby *string `json:"sync_standby"`
		Quorum      int     `json:"quorum"`
	}{s.Leader, standby, s.Quorum})
}

// ParseHistory reads the history key: a JSON list of [timeline, lsn, reason, timestamp?, leader?].
func ParseHistory(b []byte) ([]HistoryEntry, error) {
	var rows [][]any
	if err := json.Unmarshal(b, &rows); err != nil {
		return nil, fmt.Errorf("history value: %w", err)
	}
	out := make([]HistoryEntry, 0, len(rows))
	for i, r := range rows {
		if len(r) < 3 {
			return nil, fmt.Errorf("history row %d has %d fields, want at least 3", i, len(r))
		}
		tl, ok1 := asInt(r[0])
		lsn, ok2 := asInt(r[1])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("history row %d: timeline and lsn must be numbers", i)
		}
		e := HistoryEntry{Timeline: int(tl), LSN: lsn, Reason: fmt.Sprint(r[2])}
		if len(r) > 3 && r[3] != nil {
			e.Timestamp = fmt.Sprint(r[3])
		}
		if len(r) > 4 && r[4] != nil {
			e.NewLeader = fmt.Sprint(r[4])
		}
		out = append(out, e)
	}
	return out, nil
}

// MarshalJSON writes an entry in Patroni's list form.
func (e HistoryEntry) MarshalJSON() ([]byte, error) {
	row := []any{e.Timeline, e.LSN, e.Reason}
	if e.Timestamp != "" || e.NewLeader != "" {
		row = append(row, e.Timestamp)
	}
	if e.NewLeader != "" {
		row = append(row, e.NewLeader)
	}
	return json.Marshal(row)
}

// MarshalJSON writes the failover key with scheduled_at in ISO 8601.
func (f Failover) MarshalJSON() ([]byte, error) {
	m := map[string]string{}
	if f.Leader != "" {
		m["leader"] = f.Leader
	}
	if f.Member != "" {
		m["member"] = f.Member
	}
	if f.ScheduledAt != nil {
		m["scheduled_at"] = f.ScheduledAt.Format(time.RFC3339Nano)
	}
	return json.Marshal(m)
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case float64:
		return int64(n), true
	case string:
		i, err := strconv.ParseInt(n, 10, 64)
		return i, err == nil
	}
	return 0, false
}
