package main

import (
	"runtime/debug"
	"testing"
)

func TestGCDefaultsYieldToTheEnvironment(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	if setGCDefaults(func(k string) string { return map[string]string{"GOGC": "200"}[k] }) {
		t.Fatal("GOGC from the environment overridden")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent %d with GOGC set, want it untouched (100)", got)
	}
	if !setGCDefaults(func(string) string { return "" }) {
		t.Fatal("default not applied without GOGC")
	}
	if got := debug.SetGCPercent(100); got != defaultGOGC {
		t.Fatalf("GC percent %d, want %d", got, defaultGOGC)
	}
}
