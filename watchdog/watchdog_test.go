package watchdog

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// logBuf collects log output; slog handlers may be called from several goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// quiet is for tests that do not look at the log.
var quiet = slog.New(slog.DiscardHandler)

func newLogger() (*slog.Logger, *logBuf) {
	lb := &logBuf{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// standInFile creates an empty regular file to serve as the device.
func standInFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "watchdog")
	require.NoError(t, os.WriteFile(p, nil, 0o600))
	return p
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return string(b)
}

func TestTimeout(t *testing.T) {
	tests := []struct {
		name   string
		margin int
		ttl    time.Duration
		want   time.Duration
	}{
		{"ttl 30 margin 5", 5, 30 * time.Second, 25 * time.Second},
		{"margin -1 is ttl/2", -1, 30 * time.Second, 15 * time.Second},
		{"margin -1 odd ttl rounds down", -1, 31 * time.Second, 15 * time.Second},
		{"other negative margin is ttl/2", -3, 30 * time.Second, 15 * time.Second},
		{"margin 0 means default 5", 0, 30 * time.Second, 25 * time.Second},
		{"margin 10", 10, 30 * time.Second, 20 * time.Second},
		{"fractional ttl rounds down", 5, 30*time.Second + 900*time.Millisecond, 25 * time.Second},
		{"tiny ttl is at least 1s", 5, 3 * time.Second, time.Second},
		{"ttl equal to margin is at least 1s", 5, 5 * time.Second, time.Second},
		{"sub-second ttl is at least 1s", 5, 500 * time.Millisecond, time.Second},
		{"zero ttl with margin -1 is at least 1s", -1, 0, time.Second},
		{"ttl 1 with margin -1 is at least 1s", -1, time.Second, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Config{SafetyMargin: tc.margin}.Timeout(tc.ttl)
			assert.Equal(t, tc.want, got)
			assert.GreaterOrEqual(t, got, time.Second)
		})
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		in   string
		want Mode
	}{
		{"off", Off}, {"OFF", Off}, {"Off", Off}, {"false", Off}, {"False", Off}, {"no", Off},
		{"disable", Off}, {"disabled", Off}, {"Disabled", Off},
		{"automatic", Automatic}, {"Automatic", Automatic}, {"auto", Automatic}, {"AUTO", Automatic},
		{"true", Automatic}, {"True", Automatic}, {"yes", Automatic}, {"on", Automatic},
		{"", Automatic}, {"  ", Automatic},
		{"required", Required}, {"REQUIRED", Required}, {"require", Required}, {" required ", Required},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseMode(tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	for _, bad := range []string{"requried", "always", "1", "0", "enabled"} {
		t.Run("bad "+bad, func(t *testing.T) {
			got, err := ParseMode(bad)
			require.Error(t, err)
			assert.Empty(t, got)
			assert.Contains(t, err.Error(), `"`+bad+`"`, "the error names the bad value")
		})
	}
}

func TestNewDefaults(t *testing.T) {
	w := New(Config{}, nil)
	assert.Equal(t, Automatic, w.Mode(), "Patroni's default mode is automatic")
	assert.Equal(t, DefaultDevice, w.cfg.Device)
	assert.False(t, w.Active())
	assert.False(t, w.Failed())

	logger, logs := newLogger()
	w = New(Config{Mode: "bogus"}, logger)
	assert.Equal(t, Off, w.Mode(), "an unknown mode is treated as off, like Patroni")
	assert.Contains(t, logs.String(), "bogus")

	w = New(Config{Mode: "REQUIRE"}, logger)
	assert.Equal(t, Required, w.Mode(), "New normalises spellings")
}

func TestStandInRegularFile(t *testing.T) {
	for _, mode := range []Mode{Automatic, Required} {
		t.Run(string(mode), func(t *testing.T) {
			dev := standInFile(t)
			logger, logs := newLogger()
			w := New(Config{Mode: mode, Device: dev, SafetyMargin: 5}, logger)
			assert.False(t, w.Active())

			require.NoError(t, w.Activate(30*time.Second))
			assert.True(t, w.Active())
			assert.False(t, w.Failed())
			assert.Equal(t, "timeout 25\n", readFile(t, dev))

			// Same ttl again: nothing is written.
			require.NoError(t, w.Activate(30*time.Second))
			assert.Equal(t, "timeout 25\n", readFile(t, dev))

			// A changed ttl updates the timeout on the open device.
			require.NoError(t, w.Activate(20*time.Second))
			assert.Equal(t, "timeout 25\ntimeout 15\n", readFile(t, dev))

			require.NoError(t, w.Keepalive())
			require.NoError(t, w.Keepalive())
			assert.Equal(t, "timeout 25\ntimeout 15\nkeepalive\nkeepalive\n", readFile(t, dev))

			require.NoError(t, w.Disable())
			assert.False(t, w.Active())
			want := "timeout 25\ntimeout 15\nkeepalive\nkeepalive\nV"
			assert.Equal(t, want, readFile(t, dev))

			// Inactive: Keepalive and Disable are no-ops.
			require.NoError(t, w.Keepalive())
			require.NoError(t, w.Disable())
			assert.Equal(t, want, readFile(t, dev))

			// Reactivation reopens and sets the timeout even though ttl is unchanged.
			require.NoError(t, w.Activate(20*time.Second))
			assert.True(t, w.Active())
			assert.Equal(t, want+"timeout 15\n", readFile(t, dev))
			require.NoError(t, w.Disable())

			assert.Equal(t, 1, strings.Count(logs.String(), "is a stand-in"), "the stand-in warning is logged once:\n%s", logs)
		})
	}
}

func TestMissingDevice(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "no-such-watchdog")

	t.Run("required", func(t *testing.T) {
		logger, _ := newLogger()
		w := New(Config{Mode: Required, Device: dev}, logger)
		err := w.Activate(30 * time.Second)
		require.Error(t, err)
		assert.Contains(t, err.Error(), dev)
		assert.True(t, errors.Is(err, fs.ErrNotExist), "the cause is kept: %v", err)
		assert.True(t, w.Failed())
		assert.False(t, w.Active())
		require.NoError(t, w.Keepalive())
		require.NoError(t, w.Disable())
		assert.True(t, w.Failed(), "Disable does not clear a failed activation")
		assert.NoFileExists(t, dev, "the device is never created")

		// Once the device appears, activation succeeds and clears Failed.
		require.NoError(t, os.WriteFile(dev, nil, 0o600))
		t.Cleanup(func() { _ = os.Remove(dev) })
		require.NoError(t, w.Activate(30*time.Second))
		assert.False(t, w.Failed())
		assert.True(t, w.Active())
		require.NoError(t, w.Disable())
		require.NoError(t, os.Remove(dev))
	})

	t.Run("automatic", func(t *testing.T) {
		logger, logs := newLogger()
		w := New(Config{Mode: Automatic, Device: dev}, logger)
		require.NoError(t, w.Activate(30*time.Second))
		assert.False(t, w.Active())
		assert.False(t, w.Failed())
		assert.Contains(t, logs.String(), dev, "the failure is logged with the device")
		require.NoError(t, w.Keepalive())
		require.NoError(t, w.Disable())
		assert.NoFileExists(t, dev)
	})

	t.Run("off", func(t *testing.T) {
		w := New(Config{Mode: Off, Device: dev}, quiet)
		require.NoError(t, w.Activate(30*time.Second))
		assert.False(t, w.Active())
		assert.False(t, w.Failed())
		assert.NoFileExists(t, dev)
	})
}

func TestOffNeverTouchesDevice(t *testing.T) {
	dev := standInFile(t)
	logger, logs := newLogger()
	w := New(Config{Mode: Off, Device: dev}, logger)
	assert.Equal(t, Off, w.Mode())
	require.NoError(t, w.Activate(30*time.Second))
	require.NoError(t, w.Keepalive())
	require.NoError(t, w.Disable())
	assert.False(t, w.Active())
	assert.False(t, w.Failed())
	assert.Empty(t, readFile(t, dev))
	assert.Empty(t, logs.String())
}

func TestDirectoryIsRejected(t *testing.T) {
	dir := t.TempDir()
	w := New(Config{Mode: Required, Device: dir}, quiet)
	err := w.Activate(30 * time.Second)
	require.Error(t, err)
	assert.Contains(t, err.Error(), dir)
	assert.Contains(t, err.Error(), "is a directory, want a character device")
	assert.True(t, w.Failed())
}

func TestConcurrentKeepaliveAndDisable(t *testing.T) {
	dev := standInFile(t)
	logger, _ := newLogger()
	w := New(Config{Mode: Required, Device: dev}, logger)
	require.NoError(t, w.Activate(30*time.Second))

	const workers, rounds = 8, 200
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, workers*rounds+1)
	for range workers {
		wg.Go(func() {
			<-start
			for range rounds {
				errs <- w.Keepalive()
				_ = w.Active()
				_ = w.Failed()
			}
		})
	}
	wg.Go(func() {
		<-start
		time.Sleep(time.Millisecond)
		errs <- w.Disable()
	})
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	assert.False(t, w.Active())
	got := readFile(t, dev)
	assert.Regexp(t, regexp.MustCompile(`\Atimeout 25\n(keepalive\n)*V\z`), got,
		"keepalives after Disable are no-ops, so V is the last byte")
}

// fakeDevice reports a fixed timeout, to exercise drivers that cannot honour the request.
type fakeDevice struct {
	mu       sync.Mutex
	timeout  int
	setErr   error
	closed   bool
	setCalls []int
	pings    int
}

func (f *fakeDevice) setTimeout(sec int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setCalls = append(f.setCalls, sec)
	if f.setErr != nil {
		return 0, f.setErr
	}
	return f.timeout, nil
}

func (f *fakeDevice) keepalive() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pings++
	return nil
}

func (f *fakeDevice) magicClose() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeDevice) identity() string { return "fake" }
func (f *fakeDevice) standIn() bool    { return false }

func TestTimeoutLongerThanSafe(t *testing.T) {
	t.Run("required refuses and disarms", func(t *testing.T) {
		fake := &fakeDevice{timeout: 60}
		w := New(Config{Mode: Required, Device: "/dev/fake"}, quiet)
		w.open = func(string) (device, error) { return fake, nil }
		err := w.Activate(30 * time.Second)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "/dev/fake")
		assert.Contains(t, err.Error(), "60 s")
		assert.True(t, w.Failed())
		assert.False(t, w.Active())
		assert.True(t, fake.closed, "an armed device the caller will not keep alive is disarmed")
	})
	t.Run("automatic warns and uses it", func(t *testing.T) {
		fake := &fakeDevice{timeout: 60}
		logger, logs := newLogger()
		w := New(Config{Mode: Automatic, Device: "/dev/fake"}, logger)
		w.open = func(string) (device, error) { return fake, nil }
		require.NoError(t, w.Activate(30*time.Second))
		assert.True(t, w.Active())
		assert.False(t, w.Failed())
		assert.Contains(t, logs.String(), "level=WARN")
		require.NoError(t, w.Keepalive())
		assert.Equal(t, 1, fake.pings)
	})
	t.Run("a shorter timeout is fine", func(t *testing.T) {
		fake := &fakeDevice{timeout: 10}
		w := New(Config{Mode: Required, Device: "/dev/fake"}, quiet)
		w.open = func(string) (device, error) { return fake, nil }
		require.NoError(t, w.Activate(30*time.Second))
		assert.True(t, w.Active())
		assert.Equal(t, []int{25}, fake.setCalls)
	})
}

func TestTimeoutUpdateFailureDisarms(t *testing.T) {
	for _, mode := range []Mode{Automatic, Required} {
		t.Run(string(mode), func(t *testing.T) {
			fake := &fakeDevice{timeout: 25}
			w := New(Config{Mode: mode, Device: "/dev/fake"}, quiet)
			w.open = func(string) (device, error) { return fake, nil }
			require.NoError(t, w.Activate(30*time.Second))
			fake.setErr = errors.New("boom")
			err := w.Activate(40 * time.Second)
			if mode == Required {
				require.ErrorContains(t, err, "boom")
				assert.True(t, w.Failed())
			} else {
				require.NoError(t, err)
				assert.False(t, w.Failed())
			}
			assert.False(t, w.Active())
			assert.True(t, fake.closed)
		})
	}
}

// TestAutomaticMissingDeviceWarnsOnce: automatic mode retries the activation on every renewal of
// a primary; a machine without a watchdog gets one warning, not one per loop, and a new failure
// after a success is logged again.
func TestAutomaticMissingDeviceWarnsOnce(t *testing.T) {
	logger, logs := newLogger()
	dev := filepath.Join(t.TempDir(), "missing")
	w := New(Config{Mode: Automatic, Device: dev, SafetyMargin: 5}, logger)
	for range 5 {
		require.NoError(t, w.Activate(30*time.Second))
	}
	assert.Equal(t, 1, strings.Count(logs.String(), "could not be activated"), logs.String())
	require.NoError(t, os.WriteFile(dev, nil, 0o600))
	require.NoError(t, w.Activate(30*time.Second))
	assert.True(t, w.Active())
	require.NoError(t, w.Disable())
	require.NoError(t, os.Remove(dev))
	require.NoError(t, w.Activate(30*time.Second))
	assert.Equal(t, 2, strings.Count(logs.String(), "could not be activated"), logs.String())
}
