package restapi

import (
	"math"
	"strconv"
	"strings"
)

// parseLag parses the ?lag= query parameter the way Patroni's parse_int(value, "B") does, so that
// the same HAProxy and Kubernetes configurations behave the same:
//
//   - surrounding white space is ignored;
//   - a plain integer is bytes; C strtol prefixes work ("0x400" is hex, "070" is octal);
//   - a number may be followed by a unit, case-sensitive and 1024-based: B, kB, MB, GB, TB
//     ("16kB", "64MB", "1GB", "16 kB");
//   - decimals and exponents are accepted ("1.5MB", "1e6"); the result is rounded like Patroni
//     (to the next smaller unit, then to whole bytes, half to even);
//   - negative values are accepted ("-1MB");
//   - values beyond the int64 range saturate.
//
// ok is false when the value cannot be parsed ("", "abc", "1KB", "10 MiB", "08"); callers then
// behave as if the parameter was absent, as Patroni does.
func parseLag(s string) (lag int64, ok bool) {
	v := strings.TrimFunc(s, isPySpace)
	i, unit, isInt := strtol(v)
	var f float64
	isFloat := false
	if (!isInt && strings.HasPrefix(unit, ".")) || (unit != "" && (unit[0] == '.' || unit[0] == 'e' || unit[0] == 'E')) {
		f, unit, isFloat = strtod(v)
		if !isFloat {
			return 0, false
		}
		isInt = false
	}
	if !isInt && !isFloat {
		return 0, false
	}
	unit = strings.TrimFunc(unit, isPySpace)
	if unit == "" {
		if isInt {
			return i, true
		}
		return roundToInt64(f)
	}
	var factor float64
	switch unit {
	case "B":
		factor = 1
	case "kB":
		factor = 1 << 10
	case "MB":
		factor = 1 << 20
	case "GB":
		factor = 1 << 30
	case "TB":
		factor = 1 << 40
	default:
		return 0, false
	}
	if isInt {
		f = float64(i)
	}
	val := f * factor
	if unit == "B" {
		return roundToInt64(val)
	}
	// Patroni rounds to the next smaller unit first (MB to whole kB, kB to whole bytes...).
	mult := factor / 1024
	n, ok := roundToInt64(val / mult)
	if !ok {
		return 0, false
	}
	return satMul(n, int64(mult)), true
}

// strtol extracts a leading integer like C strtol with base 0 (Patroni's strtol): optional sign,
// then hex ("0x" and digits), octal (leading 0) or decimal. rest is the remainder of s; ok is false
// when s does not start with an integer, and rest is s then.
func strtol(s string) (n int64, rest string, ok bool) {
	i := 0
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	base := 10
	switch {
	case i+2 < len(s) && s[i] == '0' && s[i+1] == 'x' && isHex(s[i+2]):
		base = 16
		start = i + 2
		i += 2
		for i < len(s) && isHex(s[i]) {
			i++
		}
	case i < len(s) && s[i] == '0':
		base = 8
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '7' {
			i++
		}
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return 0, s, false
	}
	u, err := strconv.ParseUint(s[start:i], base, 64)
	switch {
	case err != nil || (!neg && u > math.MaxInt64):
		n = math.MaxInt64 // only a range error is possible: the digits were checked above
		if neg {
			n = math.MinInt64
		}
	case neg && u > math.MaxInt64:
		n = math.MinInt64
	case neg:
		n = -int64(u)
	default:
		n = int64(u)
	}
	return n, s[i:], true
}

// strtod extracts a leading decimal floating-point number (Patroni's DBL_RE:
// [-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?). ok is false when there is none or it is infinite.
func strtod(s string) (f float64, rest string, ok bool) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	end := -1
	if j+1 < len(s) && s[j] == '.' && isDigit(s[j+1]) {
		end = j + 1
		for end < len(s) && isDigit(s[end]) {
			end++
		}
	} else if j > i {
		end = j
	}
	if end < 0 {
		return 0, s, false
	}
	if end < len(s) && (s[end] == 'e' || s[end] == 'E') {
		k := end + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		d := k
		for d < len(s) && isDigit(s[d]) {
			d++
		}
		if d > k {
			end = d
		}
	}
	f, err := strconv.ParseFloat(s[:end], 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, s, false
	}
	return f, s[end:], true
}

// roundToInt64 rounds half to even like Python's round() and saturates at the int64 range.
func roundToInt64(f float64) (int64, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	r := math.RoundToEven(f)
	switch {
	case r >= math.MaxInt64: // float64(MaxInt64) is 2^63
		return math.MaxInt64, true
	case r <= math.MinInt64:
		return math.MinInt64, true
	}
	return int64(r), true
}

// satMul multiplies with saturation at the int64 range; m > 0.
func satMul(n, m int64) int64 {
	switch {
	case n > math.MaxInt64/m:
		return math.MaxInt64
	case n < math.MinInt64/m:
		return math.MinInt64
	}
	return n * m
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// isPySpace is Python's str.isspace(), which Patroni's strip() uses: Go's unicode.IsSpace plus the
// ASCII file, group, record and unit separators.
func isPySpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1d, 0x1e, 0x1f, 0x85, 0xa0:
		return true
	}
	if r < 0x1680 {
		return false
	}
	switch {
	case r == 0x1680, r >= 0x2000 && r <= 0x200a, r == 0x2028, r == 0x2029, r == 0x202f, r == 0x205f, r == 0x3000:
		return true
	}
	return false
}
