// Package watchdog drives the Linux watchdog device the way Patroni does, so that a leader
// whose tusker process hangs is reset by the kernel before its leader key expires and another
// node promotes.
//
// The HA loop calls Activate before promoting, Keepalive right after every successful
// leader-key renewal, and Disable on demote, pause and shutdown. The device timeout is
// ttl - safety_margin, so the machine resets safety_margin seconds before the lease lapses.
//
// A device path that is a regular file or a FIFO is a stand-in: the same calls are recorded as
// text lines instead of ioctls, so tests and hosts without a watchdog can observe the protocol.
//
// It imports no other tusker package.
package watchdog

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Mode is watchdog.mode from the configuration.
type Mode string

// The modes Patroni knows.
const (
	// Off: never touch the device.
	Off Mode = "off"
	// Automatic: use the device when it works, carry on without it when it does not.
	Automatic Mode = "automatic"
	// Required: never become leader without a working watchdog.
	Required Mode = "required"
)

// Defaults Patroni uses when the keys are absent.
const (
	DefaultDevice       = "/dev/watchdog"
	DefaultSafetyMargin = 5
)

// ParseMode turns a configured watchdog.mode into a Mode. It accepts Patroni's spellings in
// any case: off/disable/disabled (and the YAML 1.1 false words false/no, because PyYAML hands
// Patroni a boolean False for `mode: off`), auto/automatic (and true/yes/on), require/required.
// "" means the key is unset and yields Patroni's default, Automatic. Patroni logs and falls back
// to off on anything else; we return an error instead so a typo in "required" cannot silently
// remove the fencing the operator asked for.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return Automatic, nil
	case "off", "disable", "disabled", "false", "no":
		return Off, nil
	case "auto", "automatic", "true", "yes", "on":
		return Automatic, nil
	case "require", "required":
		return Required, nil
	}
	return "", fmt.Errorf("invalid watchdog mode %q: want off, automatic or required", s)
}

// Config is the watchdog section of the configuration.
type Config struct {
	Mode Mode // "" = Automatic, Patroni's default
	// Device is the watchdog device, "" = DefaultDevice. A regular file or FIFO is a stand-in.
	Device string
	// SafetyMargin is how many seconds before the lease expires the machine must be reset.
	// 0 = DefaultSafetyMargin: a zero margin would let the lease expire while the machine is
	// still running, so it is never what anyone wants. Negative (Patroni: -1) = ttl/2.
	SafetyMargin int
}

// Timeout is the device timeout for a lease ttl: ttl - SafetyMargin, or ttl/2 when
// SafetyMargin is negative; at least 1 s because the kernel rejects 0. Whole seconds, rounded
// down, because the device only takes seconds and rounding up could outlast the lease.
func (c Config) Timeout(ttl time.Duration) time.Duration {
	ttlSec := int(ttl / time.Second)
	var sec int
	switch m := c.SafetyMargin; {
	case m < 0:
		sec = ttlSec / 2
	case m == 0:
		sec = ttlSec - DefaultSafetyMargin
	default:
		sec = ttlSec - m
	}
	return time.Duration(max(sec, 1)) * time.Second
}

// Watchdog is one watchdog device. It is safe for concurrent use: the lease fence timer and
// the HA loop both call it, and one mutex serialises every device operation so a Keepalive
// can never reach a file descriptor that Disable has already closed.
type Watchdog struct {
	cfg    Config
	mode   Mode
	logger *slog.Logger
	open   func(path string) (device, error) // openDevice; tests substitute fakes

	mu          sync.Mutex
	dev         device        // nil = inactive
	ttl         time.Duration // ttl the active device's timeout was set for
	failed      bool          // mode is Required and the last Activate failed
	warned      bool          // the stand-in warning was logged
	lastAutoErr string        // the last activation failure logged in automatic mode
}

// New returns an inactive Watchdog; nothing is opened until Activate. Empty fields get
// Patroni's defaults. An unknown Mode is a programming error (ParseMode rejects it); like
// Patroni it is treated as Off, loudly.
func New(cfg Config, logger *slog.Logger) *Watchdog {
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.Device == "" {
		cfg.Device = DefaultDevice
	}
	mode, err := ParseMode(string(cfg.Mode))
	if err != nil {
		logger.Error("watchdog disabled: unknown mode", "mode", string(cfg.Mode), "device", cfg.Device)
		mode = Off
	}
	cfg.Mode = mode
	return &Watchdog{cfg: cfg, mode: mode, logger: logger.With("device", cfg.Device), open: openDevice}
}

// Mode is the effective mode.
func (w *Watchdog) Mode() Mode { return w.mode }

// Active reports whether the device is open and being kept alive.
func (w *Watchdog) Active() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dev != nil
}

// Failed reports that mode is Required and the last Activate failed (Patroni's
// watchdog_failed); the node must not be leader.
func (w *Watchdog) Failed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
}

// Activate opens the device (if not already open) and sets its timeout for ttl. Call it before
// promoting. Off: no-op. Automatic: a failure is logged, nil is returned and Active stays false.
// Required: a failure returns an error naming the device and the cause, Failed becomes true,
// and the caller must not promote. Calling it again while active only touches the device when
// ttl changed.
//
// A device whose timeout cannot be brought down to Config.Timeout(ttl) is a failure in
// Required mode (the lease could expire before the machine resets) and a warning in Automatic
// mode, as in Patroni.
func (w *Watchdog) Activate(ttl time.Duration) error {
	if w.mode == Off {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dev != nil && w.ttl == ttl {
		return nil
	}
	err := w.activateLocked(ttl)
	if err == nil {
		w.failed, w.lastAutoErr = false, ""
		return nil
	}
	// An opened real device is already counting down; leaving it armed while the caller
	// refuses to promote (and so never sends keepalives) would reset a healthy replica.
	if w.dev != nil {
		if cerr := w.closeLocked(); cerr != nil {
			w.logger.Error("watchdog: magic close after failed activation failed; the machine may be reset", "error", cerr)
		}
	}
	if w.mode == Required {
		w.failed = true
		w.logger.Error("watchdog required but could not be activated", "error", err)
		return err
	}
	w.failed = false
	// Automatic mode retries on every lease renewal of a primary; on a machine without a
	// watchdog that would be one warning per loop, so the same failure is logged once.
	if msg := err.Error(); msg != w.lastAutoErr {
		w.lastAutoErr = msg
		w.logger.Warn("watchdog could not be activated; continuing without it", "error", err)
	}
	return nil
}

func (w *Watchdog) activateLocked(ttl time.Duration) error {
	wantSec := int(w.cfg.Timeout(ttl) / time.Second)
	msg := "watchdog timeout changed"
	if w.dev == nil {
		msg = "watchdog activated"
		dev, err := w.open(w.cfg.Device)
		if err != nil {
			return err
		}
		w.dev = dev
		if dev.standIn() && !w.warned {
			w.warned = true
			w.logger.Warn("watchdog device is a stand-in (regular file or FIFO): it records calls but will not reset the machine")
		}
	}
	gotSec, err := w.dev.setTimeout(wantSec)
	if err != nil {
		return err
	}
	if gotSec > wantSec {
		err := fmt.Errorf("watchdog %s (%s): timeout is %d s after asking for %d s, the leader key could expire before the machine is reset",
			w.cfg.Device, w.dev.identity(), gotSec, wantSec)
		if w.mode == Required {
			return err
		}
		w.logger.Warn("watchdog timeout is longer than the safe timeout; using it anyway", "error", err)
	}
	w.ttl = ttl
	w.logger.Info(msg, "identity", w.dev.identity(), "timeout_s", gotSec, "ttl", ttl)
	return nil
}

// Keepalive pings an active watchdog; it is a no-op when inactive. Call it right after each
// successful leader-key renewal. An error leaves the watchdog active: the device is still
// armed, and whether to keep leading is the caller's decision.
func (w *Watchdog) Keepalive() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dev == nil {
		return nil
	}
	return w.dev.keepalive()
}

// Disable disarms the watchdog with the magic close (write "V", then close) so that stepping
// down does not reset the machine; it is a no-op when inactive. The watchdog is inactive
// afterwards even on error, because the file descriptor is closed either way.
func (w *Watchdog) Disable() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dev == nil {
		return nil
	}
	if err := w.closeLocked(); err != nil {
		w.logger.Error("watchdog magic close failed; the machine may be reset", "error", err)
		return err
	}
	w.logger.Info("watchdog disabled")
	return nil
}

func (w *Watchdog) closeLocked() error {
	dev := w.dev
	w.dev = nil
	w.ttl = 0
	return dev.magicClose()
}
