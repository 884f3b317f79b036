package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
)

// SplitHostPort splits "host:port", "[v6]:port" (and, like Patroni, an unbracketed IPv6
// "::1:5432") into host and a port in 1..65535. The host may be empty (":8008").
func SplitHostPort(s string) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		// Patroni splits on the last colon, which also accepts "::1:5432".
		i := strings.LastIndexByte(s, ':')
		if i < 0 || !strings.Contains(s[:i], ":") || net.ParseIP(s[:i]) == nil {
			return "", 0, fmt.Errorf("%q is not host:port: %w", s, err)
		}
		h, p = s[:i], s[i+1:]
	}
	port, err = parsePort(p)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port: %w", s, err)
	}
	return h, port, nil
}

func parsePort(p string) (int, error) {
	if p == "" {
		return 0, errors.New("missing port")
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return 0, fmt.Errorf("port %q is not a number", p)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d out of range 1-65535", n)
	}
	return n, nil
}

// ListenHosts parses postgresql.listen, "host[,host...]:port" (e.g. "127.0.0.1,::1:5432" or
// "[::1]:5432" or "*:5432"), into the hosts (brackets removed) and the port.
func (c *Config) ListenHosts() ([]string, int, error) {
	return parseListen(c.PostgreSQL.Listen)
}

func parseListen(s string) ([]string, int, error) {
	s = strings.TrimSpace(s)
	i := strings.LastIndexByte(s, ':')
	if i < 0 || strings.HasSuffix(s, "]") {
		return nil, 0, fmt.Errorf("%q is not \"host[,host...]:port\": missing port", s)
	}
	port, err := parsePort(strings.TrimSpace(s[i+1:]))
	if err != nil {
		return nil, 0, fmt.Errorf("%q is not \"host[,host...]:port\": %w", s, err)
	}
	var hosts []string
	for _, h := range strings.Split(s[:i], ",") {
		h = strings.TrimSpace(h)
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if h == "" {
			return nil, 0, fmt.Errorf("%q is not \"host[,host...]:port\": empty host", s)
		}
		if strings.Contains(h, ":") && net.ParseIP(h) == nil {
			return nil, 0, fmt.Errorf("%q is not \"host[,host...]:port\": %q is not a host", s, h)
		}
		hosts = append(hosts, h)
	}
	return hosts, port, nil
}

// ParameterString renders a parameter value the way PostgreSQL expects it in postgresql.conf or
// on the command line: booleans as on/off, numbers plainly (no exponent), strings as they are,
// nil as "".
func ParameterString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		if x {
			return "on"
		}
		return "off"
	case int:
		return strconv.Itoa(x)
	case int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(x)
	case float64:
		return formatFloat(x, 64)
	case float32:
		return formatFloat(float64(x), 32)
	case fmt.Stringer: // json.Number among others
		return x.String()
	}
	return fmt.Sprint(v)
}

func formatFloat(f float64, bits int) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'f', -1, bits)
}

// EffectiveUsePgRewind is postgresql.use_pg_rewind from the local configuration when set there,
// else the dynamic one.
func (c *Config) EffectiveUsePgRewind(d Dynamic) bool {
	if c.PostgreSQL.UsePgRewind != nil {
		return *c.PostgreSQL.UsePgRewind
	}
	return d.PostgreSQL.UsePgRewind
}

// SlogLevel maps log.level (Python logging names, as Patroni uses) to a slog level:
// DEBUG, INFO, WARNING (WARN), ERROR, CRITICAL (FATAL). An empty level is INFO.
func (l Log) SlogLevel() (slog.Level, error) {
	switch strings.ToUpper(strings.TrimSpace(l.Level)) {
	case "DEBUG":
		return slog.LevelDebug, nil
	case "", "INFO":
		return slog.LevelInfo, nil
	case "WARNING", "WARN":
		return slog.LevelWarn, nil
	case "ERROR":
		return slog.LevelError, nil
	case "CRITICAL", "FATAL":
		return slog.LevelError + 4, nil
	}
	return slog.LevelInfo, fmt.Errorf("unknown log level %q (expected DEBUG, INFO, WARNING, ERROR or CRITICAL)", l.Level)
}
