package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// watchTimeout is how long one watch request lasts at most: the server ends it then, and the
// client gives up a little later, so that a watch stuck on a dead connection does not stay deaf
// for longer than that even when no call fails meanwhile.
const watchTimeout = 60 * time.Second

var errKicked = errors.New("a call failed to reach the API server")

// watch follows the scope's objects until Close, re-establishing the watch after errors with a
// backoff; every event on the leader, config or failover object (and every re-establishment that
// may have missed one) signals Changes.
func (b *Backend) watch(ctx context.Context) {
	defer b.wg.Done()
	kinds := []*kind{b.objs}
	if b.leaderKind != b.objs {
		kinds = append(kinds, b.leaderKind)
	}
	rvs := make([]string, len(kinds)) // where each watch resumes; "" after an error
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := b.watchOnce(ctx, kinds, rvs)
		if ctx.Err() != nil {
			return
		}
		if err == nil && time.Since(start) < time.Second {
			err = errors.New("the watch ended as soon as it started") // never spin on a server that does that
		}
		if err == nil {
			backoff = 500 * time.Millisecond
			continue // the server ended the watch at its timeout: resume where it was
		}
		b.signal()
		for i := range rvs {
			rvs[i] = "" // start over from the current state: the initial events signal again
		}
		if time.Since(start) > watchTimeout {
			backoff = 500 * time.Millisecond
		}
		b.log.Debug("kubernetes watch ended; re-establishing", "in", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// watchOnce runs one watch per kind until one of them ends or a failed call kicks them.
func (b *Backend) watchOnce(ctx context.Context, kinds []*kind, rvs []string) error {
	// A failed call before this watch started says nothing about this one.
	select {
	case <-b.kick:
	default:
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(kinds))
	for i, k := range kinds {
		go func() { errc <- b.watchKind(wctx, k, &rvs[i]) }()
	}
	var err error
	received := 0
	select {
	case err = <-errc:
		received++
	case <-b.kick:
		err = errKicked
	case <-ctx.Done():
	}
	cancel()
	for ; received < len(kinds); received++ { // every watch goroutine ends before we return
		if e := <-errc; err == nil {
			err = e
		}
	}
	// nil: one watch ended at its timeout and stopped the others, which all resume where they were.
	return err
}

// watchKind watches one kind from *rv, keeping *rv at the last version seen. It returns nil when
// the server ends the watch at its timeout.
func (b *Backend) watchKind(ctx context.Context, k *kind, rv *string) error {
	timeout := int64(watchTimeout / time.Second)
	wctx, cancel := context.WithTimeout(ctx, watchTimeout+b.retryTimeout())
	defer cancel()
	// A black-holed server never answers the request itself: give up after retry_timeout.
	connect := time.AfterFunc(b.retryTimeout(), cancel)
	w, err := k.watch(wctx, &metav1.ListOptions{LabelSelector: b.selector, ResourceVersion: *rv,
		TimeoutSeconds: &timeout, AllowWatchBookmarks: true})
	connect.Stop()
	if err != nil {
		return fmt.Errorf("watching %s %s: %w", k.resource, b.selector, err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				if wctx.Err() != nil && ctx.Err() == nil {
					return fmt.Errorf("watching %s: no end from the server after %s", k.resource, watchTimeout)
				}
				return nil
			}
			if ev.Type == watch.Error {
				return fmt.Errorf("watching %s: %w", k.resource, apierrors.FromObject(ev.Object))
			}
			m, err := meta.Accessor(ev.Object)
			if err != nil {
				continue
			}
			*rv = m.GetResourceVersion()
			if ev.Type == watch.Bookmark {
				continue
			}
			switch m.GetName() {
			case b.names.leader, b.names.config, b.names.failover:
				b.signal()
			}
		}
	}
}

func (b *Backend) signal() {
	select {
	case b.changes <- struct{}{}:
	default:
	}
}
