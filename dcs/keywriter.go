package dcs

import (
	"context"
	"encoding/json"
	"fmt"
)

// KVStore is what a key-value backend (etcd, Consul, ZooKeeper) offers for the plain keys: every
// key but the leader, the members and initialize, whose lifetimes are the backend's own business.
type KVStore interface {
	// CAS writes key: create-if-absent when version is 0, compare-and-swap on version otherwise,
	// unconditional when version is -1. A lost compare returns ErrConflict.
	CAS(ctx context.Context, key string, value []byte, version int64) error
	// Delete removes key; an absent key is not an error.
	Delete(ctx context.Context, key string) error
}

// KeyWriter implements the DCS methods that write plain keys, with Patroni's values in Patroni's
// layout, on a KVStore; key-value backends embed it so that they encode the keys alike.
type KeyWriter struct {
	Keys  Keys
	Store KVStore
}

// SetConfig writes the config key (see DCS.SetConfig).
func (w KeyWriter) SetConfig(ctx context.Context, value []byte, version int64) error {
	return w.Store.CAS(ctx, w.Keys.Config(), value, version)
}

// SetStatus writes the status key.
func (w KeyWriter) SetStatus(ctx context.Context, st Status) error {
	return w.set(ctx, "status", w.Keys.Status(), st, -1)
}

// SetHistory writes the history key ([] for none, as Patroni does).
func (w KeyWriter) SetHistory(ctx context.Context, h []HistoryEntry) error {
	if h == nil {
		h = []HistoryEntry{}
	}
	return w.set(ctx, "history", w.Keys.History(), h, -1)
}

// SetFailover writes the failover key (CAS like SetConfig).
func (w KeyWriter) SetFailover(ctx context.Context, f Failover, version int64) error {
	return w.set(ctx, "failover", w.Keys.Failover(), f, version)
}

// DeleteFailover removes the failover key.
func (w KeyWriter) DeleteFailover(ctx context.Context) error {
	return w.Store.Delete(ctx, w.Keys.Failover())
}

// SetSync writes the sync key (CAS like SetConfig).
func (w KeyWriter) SetSync(ctx context.Context, s Sync, version int64) error {
	return w.set(ctx, "sync", w.Keys.Sync(), s, version)
}

// DeleteSync removes the sync key.
func (w KeyWriter) DeleteSync(ctx context.Context) error {
	return w.Store.Delete(ctx, w.Keys.Sync())
}

// SetFailsafe writes the failsafe key, or deletes it when members is nil.
func (w KeyWriter) SetFailsafe(ctx context.Context, members map[string]string) error {
	if members == nil {
		return w.Store.Delete(ctx, w.Keys.Failsafe())
	}
	return w.set(ctx, "failsafe", w.Keys.Failsafe(), members, -1)
}

func (w KeyWriter) set(ctx context.Context, what, key string, v any, version int64) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", what, err)
	}
	return w.Store.CAS(ctx, key, b, version)
}
