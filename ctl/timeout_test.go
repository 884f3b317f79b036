package ctl

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestParseSecondsBounds: --timeout is positive and at most a day, as the members accept it, and
// never wraps around into a negative HTTP timeout.
func TestParseSecondsBounds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration // 0: refused
	}{
		{"30", 30 * time.Second}, {"1.5", 1500 * time.Millisecond}, {"2m", 2 * time.Minute},
		{"86400", 24 * time.Hour}, {"24h", 24 * time.Hour},
		{"86401", 0}, {"25h", 0}, {"1e300", 0}, {"1e400", 0}, {"2562047h", 0}, {"Inf", 0}, {"NaN", 0},
		{"0", 0}, {"-5", 0}, {"-1s", 0}, {"1e-12", 0}, {"soon", 0},
	} {
		d, ok := parseSeconds(tc.in)
		assert.Equal(t, tc.want != 0, ok, tc.in)
		if ok {
			assert.Equal(t, tc.want, d, tc.in)
		}
	}
}
