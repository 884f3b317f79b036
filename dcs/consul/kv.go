package consul

import (
	"context"
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
