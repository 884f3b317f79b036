package watchdog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"time"
)

// writeTimeout bounds one write to a FIFO stand-in, so a reader that stopped reading cannot
// wedge the HA loop (which holds the Watchdog mutex while writing).
const writeTimeout = 5 * time.Second

// device is an open watchdog: the kernel device or a stand-in file.
type device interface {
	// setTimeout asks for sec seconds and returns the timeout the device actually uses.
	setTimeout(sec int) (int, error)
	keepalive() error
	// magicClose writes "V" and closes; the device is unusable afterwards even on error.
	magicClose() error
	identity() string
	standIn() bool
}

// openDevice opens path as a kernel watchdog if it is a character device and as a stand-in
// if it is a regular file or a FIFO. It never creates path: a missing device is a
// configuration error, not something to paper over with an empty file.
func openDevice(path string) (device, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("watchdog %s: %w", path, stripPath(err))
	}
	switch m := fi.Mode(); {
	case m&fs.ModeCharDevice != 0:
		return openKernel(path)
	case m.IsRegular():
		return openStandIn(path, os.O_WRONLY|os.O_APPEND)
	case m&fs.ModeNamedPipe != 0:
		// Non-blocking so that a FIFO without a reader fails with ENXIO instead of hanging
		// the caller forever in open(2).
		return openStandIn(path, os.O_WRONLY|os.O_APPEND|syscall.O_NONBLOCK)
	default:
		return nil, fmt.Errorf("watchdog %s: is a %s, want a character device (or a regular file or FIFO as a stand-in)", path, kind(m))
	}
}

// kind names a file type for an error message.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "block device"
	}
	return "file of type " + m.Type().String()
}

// stripPath drops the path from an *fs.PathError so wrapped messages name the device once;
// errors.Is still sees the errno.
func stripPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// write writes b with a deadline where the file supports one (FIFOs); regular files and
// devices do not block long enough to need it.
func write(f *os.File, b []byte) error {
	if err := f.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil && !errors.Is(err, os.ErrNoDeadline) {
		return err
	}
	_, err := f.Write(b)
	return err
}

// standIn records the watchdog protocol as text lines for tests and watchdog-less hosts.
type standIn struct {
	path string
	f    *os.File
}

func openStandIn(path string, flag int) (*standIn, error) {
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		if errors.Is(err, syscall.ENXIO) {
			return nil, fmt.Errorf("watchdog %s: open stand-in FIFO: no reader: %w", path, stripPath(err))
		}
		return nil, fmt.Errorf("watchdog %s: open stand-in: %w", path, stripPath(err))
	}
	return &standIn{path: path, f: f}, nil
}

func (s *standIn) setTimeout(sec int) (int, error) {
	if err := write(s.f, []byte("timeout "+strconv.Itoa(sec)+"\n")); err != nil {
		return 0, fmt.Errorf("watchdog %s: write timeout to stand-in: %w", s.path, stripPath(err))
	}
	return sec, nil
}

func (s *standIn) keepalive() error {
	if err := write(s.f, []byte("keepalive\n")); err != nil {
		return fmt.Errorf("watchdog %s: write keepalive to stand-in: %w", s.path, stripPath(err))
	}
	return nil
}

func (s *standIn) magicClose() error {
	werr := write(s.f, []byte("V"))
	cerr := s.f.Close()
	if werr != nil {
		return fmt.Errorf("watchdog %s: write magic close to stand-in: %w", s.path, stripPath(werr))
	}
	if cerr != nil {
		return fmt.Errorf("watchdog %s: close stand-in: %w", s.path, stripPath(cerr))
	}
	return nil
}

func (s *standIn) identity() string { return "stand-in" }
func (s *standIn) standIn() bool    { return true }

// kernel is a Linux watchdog character device.
type kernel struct {
	path    string
	f       *os.File
	ident   string
	options uint32 // WDIOF_* flags from WDIOC_GETSUPPORT
}

func openKernel(path string) (*kernel, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("watchdog %s: open: %w", path, stripPath(err))
	}
	// Opening has already started the countdown of a real watchdog, so once it is known to be
	// one, every later failure must disarm it (Activate does that with magicClose).
	k := &kernel{path: path, f: f}
	// WDIOC_GETSUPPORT is the cheapest proof that this character device is a watchdog at
	// all (/dev/null answers ENOTTY) and tells whether the timeout can be set.
	var info watchdogInfo
	if err := k.control(func(fd int) error {
		var ierr error
		info, ierr = getSupport(fd)
		return ierr
	}); err != nil {
		// No magic "V": this is most likely some other device, and every watchdog driver
		// answers GETSUPPORT (the watchdog core does it for them).
		_ = f.Close()
		return nil, fmt.Errorf("watchdog %s: not a watchdog device (WDIOC_GETSUPPORT): %w", path, err)
	}
	k.ident, k.options = info.identity, info.options
	return k, nil
}

// control runs fn on the raw descriptor without Fd(), which would switch the file to blocking
// mode and detach it from the runtime poller.
func (k *kernel) control(fn func(fd int) error) error {
	rc, err := k.f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func (k *kernel) setTimeout(sec int) (int, error) {
	var got int
	err := k.control(func(fd int) error {
		// Patroni skips WDIOC_SETTIMEOUT on drivers without WDIOF_SETTIMEOUT and then judges
		// the fixed timeout they report.
		if k.options&wdiofSetTimeout != 0 {
			if err := setTimeout(fd, sec); err != nil {
				return fmt.Errorf("set timeout to %d s (WDIOC_SETTIMEOUT): %w", sec, err)
			}
		}
		var err error
		if got, err = getTimeout(fd); err != nil {
			return fmt.Errorf("get timeout (WDIOC_GETTIMEOUT): %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("watchdog %s (%s): %w", k.path, k.identity(), err)
	}
	return got, nil
}

// keepalive writes to the device rather than using WDIOC_KEEPALIVE: every driver accepts a
// write as a ping, while the ioctl needs WDIOF_KEEPALIVEPING. It is also what Patroni does.
// The byte is not 'V', so it also cancels any half-done magic close.
func (k *kernel) keepalive() error {
	if err := write(k.f, []byte("1")); err != nil {
		return fmt.Errorf("watchdog %s (%s): keepalive: %w", k.path, k.identity(), stripPath(err))
	}
	return nil
}

func (k *kernel) magicClose() error {
	werr := write(k.f, []byte("V"))
	cerr := k.f.Close()
	if werr != nil {
		return fmt.Errorf("watchdog %s (%s): write magic close: %w", k.path, k.identity(), stripPath(werr))
	}
	if cerr != nil {
		return fmt.Errorf("watchdog %s (%s): close: %w", k.path, k.identity(), stripPath(cerr))
	}
	return nil
}

func (k *kernel) identity() string {
	if k.ident == "" {
		return "unnamed watchdog"
	}
	return k.ident
}

func (k *kernel) standIn() bool { return false }

// watchdogInfo is the part of struct watchdog_info tusker uses.
type watchdogInfo struct {
	options  uint32
	identity string
}
