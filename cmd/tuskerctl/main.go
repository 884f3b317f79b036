// Command tuskerctl is tusker's operator CLI: patronictl's commands, flags and output, for tusker
// (and Patroni) clusters. See docs/tuskerctl.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/tusker-ha/tusker/ctl"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	// Ctrl-C ends a --watch loop or a wait cleanly, and cancels a request in flight.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ctl.Main(ctx, os.Args[1:], ctl.OSEnv(version))
	stop()
	os.Exit(code)
}
