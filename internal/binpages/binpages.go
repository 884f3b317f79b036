// Package binpages gives back the pages of tusker's own binary that the process has mapped but
// no longer uses.
//
// RSS counts every page of the binary a process has mapped, and the kernel maps up to 64 KB
// around each page touched (fault-around). Package initialisation and start-up (config, DCS
// client set-up, bootstrap or clone) touch code and read-only data scattered over most of the
// binary; an idle member then runs a fraction of it. Unmapping the binary's read-only mappings
// (madvise MADV_DONTNEED) drops those start-up pages from the process: they stay in the page
// cache, shared and clean, and whatever is used again comes back on a minor fault. RSS then
// shows the pages the member uses, and the pages it does not use are no longer mapped, which
// lets the kernel reclaim them before anything mapped when memory is short.
//
// Only read-only private mappings of the executable's own file are released: discarding a
// writable private mapping would throw away its data.
package binpages

import (
	"context"
	"log/slog"
	"time"
)

// Schedule is when Run releases: First after start, then every Every.
type Schedule struct {
	First, Every time.Duration
}

// DefaultSchedule: after start-up (a replica's first loops, a primary's bootstrap), then often
// enough that the pages of a rare excursion (a switchover, a REST burst) do not stay mapped.
var DefaultSchedule = Schedule{First: 30 * time.Second, Every: 5 * time.Minute}

// Run releases the binary's read-only pages on schedule until ctx ends. A failure is logged
// once and ends Run: it only ever costs memory.
func Run(ctx context.Context, s Schedule, log *slog.Logger) {
	t := time.NewTimer(s.First)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := Release()
		if err != nil {
			log.Warn("releasing the binary's unused pages failed; not trying again", "err", err)
			return
		}
		log.Debug("released the binary's read-only mappings", "bytes", n)
		t.Reset(s.Every)
	}
}
