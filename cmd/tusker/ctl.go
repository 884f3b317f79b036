package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/tusker-ha/tusker/ctl"
)

// ctlName is the name under which this binary is tuskerctl. The container image installs
// tuskerctl as a symbolic link to tusker: the two binaries are mostly the same libraries (the DCS
// clients, the REST types), and one copy saves the image a third of its size.
const ctlName = "tuskerctl"

// runCtl is cmd/tuskerctl's main.
func runCtl(args []string) int {
	// Ctrl-C ends a --watch loop or a wait cleanly, and cancels a request in flight.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return ctl.Main(ctx, args, ctl.OSEnv(version))
}
