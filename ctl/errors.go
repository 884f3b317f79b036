package ctl

import (
	"errors"
	"fmt"
)

// Exit codes. Scripts branch on them, so they never change meaning: 0 the command did what was
// asked, 1 it failed, was refused by a member, or was aborted at a prompt, 2 the invocation itself
// is wrong (unknown command or flag, bad argument, missing cluster name).
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// errAborted is answered "no" (or end of input) at a confirmation prompt.
var errAborted = errors.New("Aborted")

// usageError marks a mistake in the invocation (exit 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// opError marks an error returned by a command's body (exit 1): everything else cobra returns
// comes from parsing the command line and is a usage error.
type opError struct{ err error }

func (e *opError) Error() string { return e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// ExitCode maps an error returned by a command to the process exit status.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	if _, ok := errors.AsType[*usageError](err); ok {
		return ExitUsage
	}
	if _, ok := errors.AsType[*opError](err); ok {
		return ExitError
	}
	if errors.Is(err, errAborted) {
		return ExitError
	}
	// Flag and argument errors come from cobra and pflag untyped.
	return ExitUsage
}

// failures counts the members an action failed on, so that a command acting on several members
// reports each one and still exits 1 when any failed.
type failures struct {
	action string
	failed []string
	total  int
}

func (f *failures) add(member string, ok bool) {
	f.total++
	if !ok {
		f.failed = append(f.failed, member)
	}
}

func (f *failures) err() error {
	if len(f.failed) == 0 {
		return nil
	}
	return fmt.Errorf("%s failed on %d of %d members (%s)", f.action, len(f.failed), f.total, joinNames(f.failed))
}
