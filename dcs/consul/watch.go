package consul

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// watchWait is how long one blocking query waits for a change. Short, so that a server that went
// away silently is noticed, and long enough to cost almost nothing.
const watchWait = 5 * time.Second

// watch follows the cluster's prefix with blocking queries until Close, and signals Changes when
// the leader, failover or config key changed (their ModifyIndex or holder), when the watch starts,
// and when it recovers from an error (it may have missed changes). One query on the prefix instead
// of one per key keeps a single connection per member.
func (b *Backend) watch(ctx context.Context) {
	defer b.wg.Done()
	prefix := ckey(b.keys.Prefix)
	watched := map[string]bool{
		ckey(b.keys.Leader()): true, ckey(b.keys.Failover()): true, ckey(b.keys.Config()): true,
	}
	var (
		index   uint64
		last    string
		started bool
		failing bool
	)
	for ctx.Err() == nil {
		b.mu.Lock()
		retry := b.retry
		b.mu.Unlock()
		// Consul adds up to wait/16 of jitter; beyond that (and a request's own time) the server is
		// not answering.
		qctx, cancel := context.WithTimeout(ctx, watchWait+watchWait/16+retry)
		q := b.readOpts(qctx)
		q.WaitIndex, q.WaitTime = index, watchWait
		start := time.Now()
		pairs, meta, err := b.cli.KV().List(prefix, q)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !failing {
				b.log.Debug("consul: watch failed; retrying", "prefix", prefix, "err", b.wrap("watching "+prefix, err))
			}
			failing, index = true, 0
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		fp := fingerprint(pairs, watched)
		if !started || failing || fp != last {
			b.signal()
		}
		started, failing, last = true, false, fp
		switch {
		case meta.LastIndex < index:
			// The index went backwards (a restored snapshot): start over, as Consul advises.
			index = 0
		case meta.LastIndex == index && time.Since(start) < 50*time.Millisecond:
			// The query did not block: do not spin.
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		default:
			index = meta.LastIndex
		}
	}
}

// fingerprint identifies the state of the watched keys: which exist, their ModifyIndex and holder.
func fingerprint(pairs api.KVPairs, watched map[string]bool) string {
	var sb strings.Builder
	for _, p := range pairs {
		if watched[p.Key] {
			fmt.Fprintf(&sb, "%s@%d/%s;", p.Key, p.ModifyIndex, p.Session)
		}
	}
	return sb.String()
}

func (b *Backend) signal() {
	select {
	case b.changes <- struct{}{}:
	default:
	}
}
