package watchdog

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// ioc is _IOC from asm-generic/ioctl.h.
func ioc(dir, typ, nr, size uint) uint {
	return dir<<30 | size<<16 | typ<<8 | nr
}

// TestIoctlNumbers checks x/sys/unix's request numbers against <linux/watchdog.h> computed by
// hand, on the architectures that use the generic _IOC encoding.
func TestIoctlNumbers(t *testing.T) {
	switch runtime.GOARCH {
	case "mips", "mipsle", "mips64", "mips64le", "ppc64", "ppc64le", "sparc64":
		t.Skipf("%s does not use the generic _IOC encoding", runtime.GOARCH)
	}
	const read, write = 2, 1
	const intSize, infoSize = 4, 40 // sizeof(int), sizeof(struct watchdog_info)
	assert.EqualValues(t, 40, 4+4+32)
	assert.EqualValues(t, 0x80285700, ioc(read, 'W', 0, infoSize))
	assert.EqualValues(t, 0x80045705, ioc(read, 'W', 5, intSize))
	assert.EqualValues(t, 0xC0045706, ioc(read|write, 'W', 6, intSize))
	assert.EqualValues(t, 0x80045707, ioc(read, 'W', 7, intSize))

	assert.EqualValues(t, ioc(read, 'W', 0, infoSize), uint(unix.WDIOC_GETSUPPORT))
	assert.EqualValues(t, ioc(read, 'W', 5, intSize), uint(unix.WDIOC_KEEPALIVE))
	assert.EqualValues(t, ioc(read|write, 'W', 6, intSize), uint(unix.WDIOC_SETTIMEOUT))
	assert.EqualValues(t, ioc(read, 'W', 7, intSize), uint(unix.WDIOC_GETTIMEOUT))
	assert.EqualValues(t, 0x0080, unix.WDIOF_SETTIMEOUT)
}

func TestStandInFIFO(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "watchdog.fifo")
	require.NoError(t, syscall.Mkfifo(dev, 0o600))

	t.Run("without a reader", func(t *testing.T) {
		w := New(Config{Mode: Required, Device: dev}, quiet)
		done := make(chan error, 1)
		go func() { done <- w.Activate(30 * time.Second) }()
		select {
		case err := <-done:
			require.Error(t, err, "a FIFO nobody reads fails instead of hanging")
			assert.Contains(t, err.Error(), dev)
			assert.Contains(t, err.Error(), "no reader")
			assert.True(t, w.Failed())
		case <-time.After(10 * time.Second):
			t.Fatal("Activate hung on a FIFO without a reader")
		}
	})

	t.Run("with a reader", func(t *testing.T) {
		// Non-blocking so that opening does not wait for the writer Activate opens.
		r, err := os.OpenFile(dev, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		require.NoError(t, err)
		defer r.Close()

		logger, logs := newLogger()
		w := New(Config{Mode: Required, Device: dev, SafetyMargin: -1}, logger)
		require.NoError(t, w.Activate(30*time.Second))
		assert.True(t, w.Active())
		assert.Contains(t, logs.String(), "is a stand-in")

		// Read only once a writer exists: a FIFO without writers reads as EOF.
		got := make(chan string, 1)
		go func() {
			b, _ := io.ReadAll(r)
			got <- string(b)
		}()
		require.NoError(t, w.Keepalive())
		require.NoError(t, w.Keepalive())
		require.NoError(t, w.Disable())
		assert.False(t, w.Active())
		require.NoError(t, w.Keepalive(), "a no-op after Disable")

		select {
		case s := <-got:
			assert.Equal(t, "timeout 15\nkeepalive\nkeepalive\nV", s)
		case <-time.After(10 * time.Second):
			t.Fatal("the reader did not see the writer close")
		}
	})
}

// TestCharDeviceThatIsNotAWatchdog uses /dev/null: a character device whose ioctls fail.
func TestCharDeviceThatIsNotAWatchdog(t *testing.T) {
	const dev = "/dev/null"
	fi, err := os.Stat(dev)
	if err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
		t.Skipf("%s is not a character device here (%v), cannot test a non-watchdog device", dev, err)
	}

	t.Run("required", func(t *testing.T) {
		w := New(Config{Mode: Required, Device: dev}, quiet)
		err := w.Activate(30 * time.Second)
		require.Error(t, err)
		assert.Contains(t, err.Error(), dev)
		assert.Contains(t, err.Error(), "WDIOC_GETSUPPORT")
		assert.ErrorIs(t, err, syscall.ENOTTY)
		assert.True(t, w.Failed())
		assert.False(t, w.Active())
	})

	t.Run("automatic", func(t *testing.T) {
		logger, logs := newLogger()
		w := New(Config{Mode: Automatic, Device: dev}, logger)
		require.NoError(t, w.Activate(30*time.Second))
		assert.False(t, w.Active())
		assert.False(t, w.Failed())
		assert.Contains(t, logs.String(), "level=WARN")
		assert.Contains(t, logs.String(), dev)
		assert.NotContains(t, logs.String(), "is a stand-in", "a character device is never a stand-in")
		require.NoError(t, w.Keepalive())
		require.NoError(t, w.Disable())
	})
}
