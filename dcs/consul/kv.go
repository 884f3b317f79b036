package consul

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/consul/api"

	"github.com/tusker-ha/tusker/dcs"
)

// Initialize races for (create) or sets the initialize key.
func (b *Backend) Initialize(ctx context.Context, value string, create bool) (bool, error) {
	ctx, cancel := b.call(ctx)
	defer cancel()
	k := ckey(b.keys.Initialize())
	if !create {
		err := b.do(ctx, "writing "+k, true, func(ctx context.Context) error {
			_, err := b.cli.KV().Put(&api.KVPair{Key: k, Value: []byte(value)}, writeOpts(ctx))
			return err
		})
		return err == nil, err
	}
	// ModifyIndex 0 is Consul's create-if-absent.
	var won bool
	err := b.do(ctx, "creating "+k, false, func(ctx context.Context) (err error) {
		won, _, err = b.cli.KV().CAS(&api.KVPair{Key: k, Value: []byte(value)}, writeOpts(ctx))
		return err
	})
	return won, err
}

// CancelInitialize deletes the initialize key.
func (b *Backend) CancelInitialize(ctx context.Context) error {
	return b.delete(ctx, b.keys.Initialize())
}

func (b *Backend) delete(ctx context.Context, key string) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	k := ckey(key)
	return b.do(ctx, "deleting "+k, true, func(ctx context.Context) error {
		_, err := b.cli.KV().Delete(k, writeOpts(ctx))
		return err
	})
}

// DeleteCluster removes every key under the cluster's prefix in one request. The prefix ends with
// a slash, so that scope c1 never matches c10's keys.
func (b *Backend) DeleteCluster(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	prefix := ckey(b.keys.Prefix)
	return b.do(ctx, "deleting "+prefix+"*", true, func(ctx context.Context) error {
		_, err := b.cli.KV().DeleteTree(prefix, writeOpts(ctx))
		return err
	})
}

// cas writes key: unconditionally (version -1), only if absent (0), or only if its ModifyIndex is
// still version. A lost comparison is dcs.ErrConflict.
func (b *Backend) cas(ctx context.Context, key string, value []byte, version int64) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	k := ckey(key)
	if version < 0 {
		return b.do(ctx, "writing "+k, true, func(ctx context.Context) error {
			_, err := b.cli.KV().Put(&api.KVPair{Key: k, Value: value}, writeOpts(ctx))
			return err
		})
	}
	var ok bool
	err := b.do(ctx, "writing "+k, false, func(ctx context.Context) (err error) {
		ok, _, err = b.cli.KV().CAS(&api.KVPair{Key: k, Value: value, ModifyIndex: uint64(version)}, writeOpts(ctx))
		return err
	})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("writing %s at version %d: %w", k, version, dcs.ErrConflict)
	}
	return nil
}

// SetConfig writes the config key (create-if-absent, CAS or unconditional; see dcs.DCS).
func (b *Backend) SetConfig(ctx context.Context, value []byte, version int64) error {
	return b.cas(ctx, b.keys.Config(), value, version)
}

// SetStatus writes the status key.
func (b *Backend) SetStatus(ctx context.Context, st dcs.Status) error {
	v, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding status: %w", err)
	}
	return b.cas(ctx, b.keys.Status(), v, -1)
}

// SetHistory writes the history key.
func (b *Backend) SetHistory(ctx context.Context, h []dcs.HistoryEntry) error {
	if h == nil {
		h = []dcs.HistoryEntry{}
	}
	v, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("encoding history: %w", err)
	}
	return b.cas(ctx, b.keys.History(), v, -1)
}

// SetFailover writes the failover key.
func (b *Backend) SetFailover(ctx context.Context, f dcs.Failover, version int64) error {
	v, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encoding failover: %w", err)
	}
	return b.cas(ctx, b.keys.Failover(), v, version)
}

// DeleteFailover removes the failover key.
func (b *Backend) DeleteFailover(ctx context.Context) error {
	return b.delete(ctx, b.keys.Failover())
}

// SetSync writes the sync key.
func (b *Backend) SetSync(ctx context.Context, s dcs.Sync, version int64) error {
	v, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encoding sync: %w", err)
	}
	return b.cas(ctx, b.keys.Sync(), v, version)
}

// DeleteSync removes the sync key.
func (b *Backend) DeleteSync(ctx context.Context) error {
	return b.delete(ctx, b.keys.Sync())
}

// SetFailsafe writes the failsafe key, or deletes it when members is nil.
func (b *Backend) SetFailsafe(ctx context.Context, members map[string]string) error {
	if members == nil {
		return b.delete(ctx, b.keys.Failsafe())
	}
	v, err := json.Marshal(members)
	if err != nil {
		return fmt.Errorf("encoding failsafe: %w", err)
	}
	return b.cas(ctx, b.keys.Failsafe(), v, -1)
}
