package main

import "runtime/debug"

// defaultGOGC is the garbage collector's target for tusker unless GOGC says otherwise: an idle
// member's live heap is 1-2 MB, and at Go's default of 100 the collector lets the heap grow to
// its 4 MB minimum before collecting; at 50 the minimum is 2 MB. No default GOMEMLIMIT: a limit
// near the idle footprint (10 MiB) was measured to cost five times the idle CPU for no smaller
// RSS (the collector's extra work touches more of the binary), and a limit well above it changes
// nothing while idle but could make the collector run without pause when a member does need more.
// GOMEMLIMIT in the environment still applies: the runtime reads it itself.
const defaultGOGC = 50

// setGCDefaults applies defaultGOGC when the environment (getenv) does not set GOGC, and
// reports whether it did.
func setGCDefaults(getenv func(string) string) bool {
	if getenv("GOGC") != "" {
		return false
	}
	debug.SetGCPercent(defaultGOGC)
	return true
}
