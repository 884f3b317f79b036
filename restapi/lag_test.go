package restapi

import (
	"math"
	"strconv"
	"testing"
)

// lagCases are Patroni's parse_int(value, "B") results (None: not ok).
var lagCases = []struct {
	in   string
	want int64
	ok   bool
}{
	{"16kB", 16 << 10, true},
	{"64MB", 64 << 20, true},
	{"1GB", 1 << 30, true},
	{"1TB", 1 << 40, true},
	{"1048576", 1048576, true},
	{"100B", 100, true},
	{" 16 kB ", 16 << 10, true},
	{"\t16kB\n", 16 << 10, true},
	{"\u00a016kB\u3000", 16 << 10, true},
	{"1.5MB", 1572864, true},
	{"1.3MB", 1331 << 10, true}, // rounded to whole kB first, as Patroni
	{"4097.4kB", 4195738, true},
	{"4097.5kB", 4195840, true},
	{"0.5B", 0, true}, // Python's round(): half to even
	{"1.5B", 2, true},
	{"2.5B", 2, true},
	{"2.5", 2, true},
	{"3.5", 4, true},
	{"0x400", 1024, true},
	{"0x400kB", 1 << 20, true},
	{"+0x10", 16, true},
	{"-0x10", -16, true},
	{"070", 56, true},
	{"-070", -56, true},
	{"0", 0, true},
	{"-0", 0, true},
	{"+5", 5, true},
	{"1e3", 1000, true},
	{"1E3", 1000, true},
	{"1e3kB", 1024000, true},
	{"1e-1kB", 102, true},
	{".5MB", 512 << 10, true},
	{"0.01MB", 10 << 10, true},
	{"-1MB", -1 << 20, true},
	{"9223372036854775807", math.MaxInt64, true},
	{"9223372036854775808", math.MaxInt64, true}, // saturates
	{"-9223372036854775808", math.MinInt64, true},
	{"-9223372036854775809", math.MinInt64, true},
	{"0xFFFFFFFFFFFFFFFFFF", math.MaxInt64, true},
	{"99999999999999999999999TB", math.MaxInt64, true},
	{"9000000TB", math.MaxInt64, true},
	{"-9000000TB", math.MinInt64, true},
	{"", 0, false},
	{"   ", 0, false},
	{"abc", 0, false},
	{"1KB", 0, false}, // units are case-sensitive
	{"1kb", 0, false},
	{"1 MiB", 0, false},
	{"kB", 0, false},
	{"MB1", 0, false},
	{"1 0", 0, false},
	{"0X10", 0, false}, // only a lower-case 0x prefix is hex
	{"08", 0, false},   // octal 0, then "8" is no unit
	{"1e", 0, false},
	{"1.MB", 0, false},
	{"-.5MB", 0, false}, // Patroni only retries as a float after a "." that starts the value
	{"1e400", 0, false},
	{"1e308TB", 0, false},
	{"1ms", 0, false},
	{"16kBkB", 0, false},
}

func TestParseLag(t *testing.T) {
	for _, tt := range lagCases {
		got, ok := parseLag(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseLag(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParseLag(f *testing.F) {
	for _, tt := range lagCases {
		f.Add(tt.in)
	}
	for _, s := range []string{"16 kB", "0x", "0x1g", "+", "-", ".", "e5", "1.", "1.e5", "00", "0e5", "1\x1f", "\xff", "1\u2028kB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := parseLag(s)
		if n2, ok2 := parseLag(s); n2 != n || ok2 != ok {
			t.Fatalf("parseLag(%q) not deterministic", s)
		}
		if !ok {
			if n != 0 {
				t.Fatalf("parseLag(%q) = %d with ok false", s, n)
			}
			return
		}
		// Surrounding white space never matters.
		if n2, ok2 := parseLag(" \t" + s + "\n "); n2 != n || !ok2 {
			t.Fatalf("parseLag(%q) = %d, but with spaces around = %d, %v", s, n, n2, ok2)
		}
		// The result reads back as the same number of bytes, bare or with the B unit.
		d := strconv.FormatInt(n, 10)
		if n2, ok2 := parseLag(d); n2 != n || !ok2 {
			t.Fatalf("parseLag(%q) = %d, but parseLag(%q) = %d, %v", s, n, d, n2, ok2)
		}
		if n2, ok2 := parseLag(d + "B"); !ok2 || (n2 != n && math.Abs(float64(n)) < 1<<53) {
			t.Fatalf("parseLag(%q) = %d, but parseLag(%q) = %d, %v", s, n, d+"B", n2, ok2)
		}
		// A plain decimal integer is bytes, exactly.
		if v, err := strconv.ParseInt(s, 10, 64); err == nil && (len(s) < 2 || s[0] != '0') && s[0] != '+' && s[0] != '-' {
			if n != v {
				t.Fatalf("parseLag(%q) = %d, want %d", s, n, v)
			}
		}
	})
}
