//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package ctl

import (
	"errors"
	"io"
	"os"
)

// isTerminal: without termios there is no reliable test; assume not, so that nothing waits for
// an editor or a screen that may not exist.
func isTerminal(*os.File) bool { return false }

func echoOff(io.Reader) (func(), error) { return nil, errors.New("not supported on this platform") }
