package consul

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/tusker-ha/tusker/dcs"
)

// txn runs a KV transaction. A transaction that Consul rolled back because one of its checks
// failed returns false and no error; a permission failure inside it is an error.
func (b *Backend) txn(ctx context.Context, op string, idempotent bool, ops api.TxnOps) (bool, *api.TxnResponse, error) {
	var ok bool
	var resp *api.TxnResponse
	err := b.do(ctx, op, idempotent, func(ctx context.Context) (err error) {
		ok, resp, _, err = b.cli.Txn().Txn(ops, b.consistentOpts(ctx))
		return err
	})
	if err != nil {
		return false, nil, err
	}
	if !ok && resp != nil {
		for _, e := range resp.Errors {
			if denied(errors.New(e.What)) {
				return false, nil, b.wrap(op, fmt.Errorf("operation %d: %s", e.OpIndex, e.What))
			}
		}
	}
	return ok, resp, nil
}

// createSession opens a session for a lease of ttl: behavior delete, so that the member and leader
// keys it holds vanish with it, and a lock delay of 1 ms instead of Consul's 15 s, so that another
// member may take a lock at once when the session ends.
func (b *Backend) createSession(ctx context.Context, ttl time.Duration) (string, error) {
	se := &api.SessionEntry{
		Name: b.scope + "-" + b.name, Behavior: api.SessionBehaviorDelete, LockDelay: time.Millisecond,
		TTL: fmt.Sprintf("%ds", int64(SessionTTL(ttl)/time.Second)),
	}
	var id string
	// Not sent twice after an ambiguous failure: that would leave an orphan session behind.
	err := b.do(ctx, "creating a session", false, func(ctx context.Context) (err error) {
		if len(b.opts.Checks) > 0 {
			se.Checks = b.opts.Checks
			id, _, err = b.cli.Session().Create(se, writeOpts(ctx))
		} else {
			// Without checks, as in Patroni: the session lives by its TTL alone. Consul's default
			// would tie it to the agent's serfHealth check.
			id, _, err = b.cli.Session().CreateNoChecks(se, writeOpts(ctx))
		}
		return err
	})
	if err != nil {
		return "", err
	}
	b.log.Debug("consul: session created", "session", id, "ttl", se.TTL)
	return id, nil
}

func (b *Backend) destroySession(ctx context.Context, id string) error {
	return b.do(ctx, "destroying session "+id, true, func(ctx context.Context) error {
		_, err := b.cli.Session().Destroy(id, writeOpts(ctx))
		return err
	})
}

// forget drops a session that Consul no longer knows (it expired while we were away); the keys it
// held are gone with it.
func (b *Backend) forget(id string) {
	b.mu.Lock()
	if b.session == id {
		b.session, b.lastMember, b.lastService = "", nil, ""
	}
	b.mu.Unlock()
}

// ensureSession returns this member's session, creating one when there is none, and replacing it
// when the ttl changed. A replacement moves the leader and member keys to the new session before
// the old one is destroyed, so that a ttl change never drops the lock.
func (b *Backend) ensureSession(ctx context.Context) (string, error) {
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return "", b.wrap("waiting for the session", ctx.Err())
	}
	defer func() { <-b.sem }()
	b.mu.Lock()
	old, ttl, cur, member := b.session, b.ttl, b.sessionFor, b.lastMember
	b.mu.Unlock()
	if old != "" && ttl == cur {
		return old, nil
	}
	id, err := b.createSession(ctx, ttl)
	if err != nil {
		return "", err
	}
	movedMember := false
	if old != "" {
		if movedMember, err = b.moveKeys(ctx, old, id, member); err != nil {
			// Keep the old session and its keys; the next call tries again.
			if derr := b.destroySession(ctx, id); derr != nil {
				b.log.Warn("consul: could not destroy the unused new session; it expires by itself", "session", id, "err", derr)
			}
			return "", err
		}
		if err := b.destroySession(ctx, old); err != nil {
			b.log.Warn("consul: could not destroy the session replaced after a ttl change; it expires by itself",
				"session", old, "err", err)
		}
		b.log.Info("consul: session replaced after a ttl change", "ttl", ttl, "session_ttl", SessionTTL(ttl))
	}
	b.mu.Lock()
	b.session, b.sessionFor, b.lastRenew = id, ttl, time.Now()
	if !movedMember {
		b.lastMember = nil
	}
	b.mu.Unlock()
	return id, nil
}

// moveKeys hands the leader key (when old holds it) and the member key from session old to session
// id, each in one transaction: check that old holds it, release it, acquire it with id.
func (b *Backend) moveKeys(ctx context.Context, old, id string, member []byte) (movedMember bool, err error) {
	move := func(key string, value []byte) api.TxnOps {
		return api.TxnOps{
			{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: key, Session: old}},
			{KV: &api.KVTxnOp{Verb: api.KVUnlock, Key: key, Value: value, Session: old}},
			{KV: &api.KVTxnOp{Verb: api.KVLock, Key: key, Value: value, Session: id}},
		}
	}
	lk := ckey(b.keys.Leader())
	moved, _, err := b.txn(ctx, "moving "+lk+" to a new session", false, move(lk, []byte(b.name)))
	if err != nil {
		return false, err
	}
	if moved {
		b.log.Info("consul: leader key moved to the new session", "key", lk)
	}
	if member == nil {
		return false, nil
	}
	mk := ckey(b.keys.Member(b.name))
	movedMember, _, err = b.txn(ctx, "moving "+mk+" to a new session", false, move(mk, member))
	return movedMember, err
}

// renew refreshes session id; false means Consul no longer knows it.
func (b *Backend) renew(ctx context.Context, id string) (bool, error) {
	renewOnce := func() (*api.SessionEntry, error) {
		var entry *api.SessionEntry
		err := b.do(ctx, "renewing session "+id, true, func(ctx context.Context) (err error) {
			entry, _, err = b.cli.Session().Renew(id, writeOpts(ctx))
			return err
		})
		return entry, err
	}
	entry, err := renewOnce()
	if err != nil {
		return false, err
	}
	if entry == nil {
		// A Consul leader elected a moment ago may not have applied its whole log yet, and then
		// answers "not found" for a live session; forgetting it would cost the lock. Only a
		// consistent read waits for that log: the session is gone only if it says so too.
		var info *api.SessionEntry
		err := b.do(ctx, "reading session "+id, true, func(ctx context.Context) (err error) {
			info, _, err = b.cli.Session().Info(id, b.consistentOpts(ctx))
			return err
		})
		if err != nil {
			return false, err
		}
		if info != nil {
			if entry, err = renewOnce(); err != nil {
				return false, err
			}
		}
	}
	if entry == nil {
		b.log.Info("consul: session expired; its keys are gone", "session", id)
		b.forget(id)
		return false, nil
	}
	b.mu.Lock()
	if b.session == id {
		b.lastRenew = time.Now()
	}
	b.mu.Unlock()
	return true, nil
}

// liveSession returns a session Consul knows, replacing it when Consul forgot it. It renews the
// session when its last renewal is older than ttl/4, or always with fresh: then the lease runs
// from this call, as the caller of AcquireLeader counts it.
func (b *Backend) liveSession(ctx context.Context, fresh bool) (string, error) {
	start := time.Now()
	id, err := b.ensureSession(ctx)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	last, ttl := b.lastRenew, b.sessionFor
	b.mu.Unlock()
	if fresh && !last.Before(start) || !fresh && time.Since(last) <= ttl/4 {
		return id, nil
	}
	found, err := b.renew(ctx, id)
	if err != nil {
		return "", err
	}
	if found {
		return id, nil
	}
	return b.ensureSession(ctx)
}

// AcquireLeader takes the leader key with this member's session if no session holds it. A leader
// key that carries this member's name under another session (this member's previous incarnation,
// restarted within ttl) is taken back, as the etcd backend does.
func (b *Backend) AcquireLeader(ctx context.Context) (bool, error) {
	ctx, cancel := b.call(ctx)
	defer cancel()
	lk := ckey(b.keys.Leader())
	var (
		id  string
		ok  bool
		err error
	)
	for attempt := 0; ; attempt++ {
		if id, err = b.liveSession(ctx, true); err != nil {
			return false, err
		}
		err = b.do(ctx, "acquiring "+lk, true, func(ctx context.Context) (err error) {
			ok, _, err = b.cli.KV().Acquire(&api.KVPair{Key: lk, Value: []byte(b.name), Session: id}, writeOpts(ctx))
			return err
		})
		if attempt == 0 && invalidSession(err) {
			b.forget(id) // ended since its renewal (a check failed, or it was destroyed): once more
			continue
		}
		if err != nil || ok {
			return ok, err
		}
		break
	}
	var cur *api.KVPair
	err = b.do(ctx, "reading "+lk, true, func(ctx context.Context) (err error) {
		cur, _, err = b.cli.KV().Get(lk, b.consistentOpts(ctx))
		return err
	})
	if err != nil || cur == nil || string(cur.Value) != b.name || cur.Session == "" || cur.Session == id {
		return false, err
	}
	ok, _, err = b.txn(ctx, "taking back "+lk, false, api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: lk, Index: cur.ModifyIndex}},
		{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: lk}},
		{KV: &api.KVTxnOp{Verb: api.KVLock, Key: lk, Value: []byte(b.name), Session: id}},
	})
	if ok {
		b.log.Info("consul: took back the leader key from this member's previous session", "session", cur.Session)
	}
	return ok, err
}

// RenewLeader renews the session, then checks in one read that the leader key is held by it and
// carries this member's name. A ttl change takes effect here, moving the key to a new session.
func (b *Backend) RenewLeader(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	lk := ckey(b.keys.Leader())
	b.mu.Lock()
	id := b.session
	b.mu.Unlock()
	if id == "" {
		// Nothing to renew; still ask Consul, so that an unreachable store reads as unreachable
		// and not as a lost lock.
		err := b.do(ctx, "reading "+lk, true, func(ctx context.Context) error {
			_, _, err := b.cli.KV().Get(lk, b.consistentOpts(ctx))
			return err
		})
		if err != nil {
			return err
		}
		return fmt.Errorf("renewing %s: no session: %w", lk, dcs.ErrNotLeader)
	}
	found, err := b.renew(ctx, id)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("renewing %s: session %s expired: %w", lk, id, dcs.ErrNotLeader)
	}
	ok, resp, err := b.txn(ctx, "checking "+lk, true, api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: lk, Session: id}},
		{KV: &api.KVTxnOp{Verb: api.KVGet, Key: lk}},
	})
	if err != nil {
		return err
	}
	if !ok || len(resp.Results) < 2 || resp.Results[1].KV == nil || string(resp.Results[1].KV.Value) != b.name {
		return fmt.Errorf("renewing %s: %w", lk, dcs.ErrNotLeader)
	}
	b.mu.Lock()
	changed := b.ttl != b.sessionFor
	b.mu.Unlock()
	if changed {
		// The lease was renewed: a failed switch only postpones the new ttl to the next renewal.
		if _, err := b.ensureSession(ctx); err != nil {
			b.log.Warn("consul: could not move to a session with the new ttl; will retry", "err", err)
		}
	}
	return nil
}

// ReleaseLeader deletes the leader key if this member's session holds it.
func (b *Backend) ReleaseLeader(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	b.mu.Lock()
	id := b.session
	b.mu.Unlock()
	if id == "" {
		return nil
	}
	lk := ckey(b.keys.Leader())
	_, _, err := b.txn(ctx, "releasing "+lk, true, api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: lk, Session: id}},
		{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: lk}},
	})
	return err
}

// TouchMember keeps the session alive and writes the member key, held by the session, when its
// value changed; with register_service it also keeps the agent's service registration in step.
func (b *Backend) TouchMember(ctx context.Context, data dcs.MemberData) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	val, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encoding member %s: %w", b.name, err)
	}
	for attempt := 0; ; attempt++ {
		id, err := b.liveSession(ctx, false)
		if err != nil {
			return err
		}
		b.mu.Lock()
		same := string(b.lastMember) == string(val)
		b.mu.Unlock()
		if same {
			break
		}
		err = b.writeMember(ctx, id, val)
		if attempt == 0 && invalidSession(err) {
			b.forget(id) // ended since its renewal (a check failed, or it was destroyed): once more
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	if b.opts.RegisterService {
		b.updateService(ctx, data)
	}
	return nil
}

func (b *Backend) writeMember(ctx context.Context, id string, val []byte) error {
	mk := ckey(b.keys.Member(b.name))
	var ok bool
	err := b.do(ctx, "writing "+mk, true, func(ctx context.Context) (err error) {
		ok, _, err = b.cli.KV().Acquire(&api.KVPair{Key: mk, Value: val, Session: id}, writeOpts(ctx))
		return err
	})
	if err != nil {
		return err
	}
	if !ok {
		// Another session holds the key: this member's previous incarnation. Replace the key, as
		// Patroni does.
		ok, _, err = b.txn(ctx, "replacing "+mk, true, api.TxnOps{
			{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: mk}},
			{KV: &api.KVTxnOp{Verb: api.KVLock, Key: mk, Value: val, Session: id}},
		})
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("consul writing %s at %s: the key is locked by another session", mk, b.addr)
		}
	}
	b.mu.Lock()
	if b.session == id {
		b.lastMember = val
	}
	b.mu.Unlock()
	return nil
}

// DeleteMember removes the member key and the service registration and destroys the session (and
// with it a leader key it holds).
func (b *Backend) DeleteMember(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	mk := ckey(b.keys.Member(b.name))
	err := b.do(ctx, "deleting "+mk, true, func(ctx context.Context) error {
		_, err := b.cli.KV().Delete(mk, writeOpts(ctx))
		return err
	})
	if err != nil {
		return err
	}
	if b.opts.RegisterService {
		if err := b.deregister(ctx); err != nil {
			b.log.Warn("consul: could not deregister the service", "service_id", b.serviceID(), "err", err)
		}
	}
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return b.wrap("waiting for the session", ctx.Err())
	}
	defer func() { <-b.sem }()
	b.mu.Lock()
	id := b.session
	b.session, b.lastMember = "", nil
	b.mu.Unlock()
	if id == "" {
		return nil
	}
	return b.destroySession(ctx, id)
}

// sessionID is the current session's ID, or "" (for tests).
func (b *Backend) sessionID() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.session
}
