package consul

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/tusker-ha/tusker/dcs"
)

// ServiceName is the Consul service name of a scope, as Patroni derives it so that it works in
// DNS: lower case; '.', ' ' and '_' become '-'; any other character outside [a-z0-9-] becomes
// uNNNN (its code point); at most 230 characters (253 minus "replica." and ".service.consul").
func ServiceName(scope string) string {
	var sb strings.Builder
	for _, r := range strings.ToLower(scope) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			sb.WriteRune(r)
		case r == '.', r == ' ', r == '_':
			sb.WriteByte('-')
		default:
			fmt.Fprintf(&sb, "u%04d", r)
		}
	}
	s := sb.String()
	if len(s) > 230 {
		s = s[:230]
	}
	return s
}

func (b *Backend) serviceID() string { return b.scope + "/" + b.name }

// Markers kept in lastService besides a registration's fingerprint.
const (
	serviceDeregistered = "deregistered"
	serviceUnknownRole  = "unknown-role:"
)

// registration is what the agent should have for member data d: nil with a marker when the
// service must be removed or left alone.
func (b *Backend) registration(d dcs.MemberData) (*api.AgentServiceRegistration, string, error) {
	role := strings.ReplaceAll(d.Role, "_", "-")
	if role == "master" {
		role = "primary"
	}
	if d.State == "stopped" {
		return nil, serviceDeregistered, nil
	}
	switch role {
	case "primary", "replica", "standby-leader":
	default:
		return nil, serviceUnknownRole + role, nil
	}
	if d.State != "running" {
		return nil, "", nil // starting, restarting...: keep what the agent has; its check tells
	}
	apiURL, err := url.Parse(d.APIURL)
	if err != nil || apiURL.Host == "" {
		return nil, "", fmt.Errorf("api_url %q is not a URL with a host: %v", d.APIURL, err)
	}
	conn, err := url.Parse(d.ConnURL)
	if err != nil || conn.Hostname() == "" {
		return nil, "", fmt.Errorf("conn_url %q is not a URL with a host: %v", d.ConnURL, err)
	}
	port := 5432
	if p := conn.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return nil, "", fmt.Errorf("conn_url %q: port: %w", d.ConnURL, err)
		}
	}
	tags := append(append([]string{}, b.opts.ServiceTags...), role)
	if role == "primary" {
		tags = append(tags, "master") // what Patroni < 3 tagged, and what old DNS names use
	}
	check := &url.URL{Scheme: apiURL.Scheme, Host: apiURL.Host, Path: "/" + role}
	reg := &api.AgentServiceRegistration{
		ID: b.serviceID(), Name: ServiceName(b.scope), Tags: tags,
		Address: conn.Hostname(), Port: port, EnableTagOverride: true,
		Check: &api.AgentServiceCheck{
			HTTP: check.String(), Interval: b.opts.ServiceCheckInterval.String(),
			TLSServerName: b.opts.ServiceCheckTLSServerName,
			// Patroni's 10 × the session TTL: a member gone for good leaves the catalog by itself.
			DeregisterCriticalServiceAfter: (10 * SessionTTL(b.currentTTL())).String(),
		},
	}
	fp, err := json.Marshal(reg)
	if err != nil {
		return nil, "", fmt.Errorf("encoding the service registration: %w", err)
	}
	return reg, string(fp), nil
}

func (b *Backend) currentTTL() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ttl
}

// updateService registers, updates or deregisters the member's service when what the agent should
// have changed. A failure is logged and retried at the next touch: it must not cost the member key.
func (b *Backend) updateService(ctx context.Context, d dcs.MemberData) {
	reg, want, err := b.registration(d)
	if err != nil {
		// The member's URLs are the configuration's: the same error every cycle until fixed.
		want = "invalid:" + err.Error()
	}
	b.mu.Lock()
	have := b.lastService
	b.mu.Unlock()
	if want == "" || want == have {
		return
	}
	switch {
	case strings.HasPrefix(want, "invalid:"):
		b.log.Warn("consul: cannot register the service", "service_id", b.serviceID(), "err", err)
		err = nil // remembered as done: logged once per distinct problem
	case want == serviceDeregistered:
		err = b.deregister(ctx)
	case strings.HasPrefix(want, serviceUnknownRole):
		b.log.Warn("consul: not registering the service: unknown role", "role", d.Role)
	default:
		err = b.do(ctx, "registering service "+reg.ID, true, func(ctx context.Context) error {
			return b.cli.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx))
		})
		if err == nil {
			b.log.Info("consul: service registered", "service", reg.Name, "service_id", reg.ID, "tags", reg.Tags,
				"check", reg.Check.HTTP)
		}
	}
	b.mu.Lock()
	repeated := err != nil && err.Error() == b.lastServiceErr
	if err == nil {
		b.lastService, b.lastServiceErr = want, ""
	} else {
		b.lastServiceErr = err.Error()
	}
	b.mu.Unlock()
	if err != nil {
		// Tried again every cycle; the same failure is logged once, not every loop_wait.
		level := slog.LevelWarn
		if repeated {
			level = slog.LevelDebug
		}
		b.log.Log(ctx, level, "consul: could not update the service registration; will retry",
			"service_id", b.serviceID(), "err", err)
	}
}

// deregister removes the member's service from the local agent; an unknown service is no error.
func (b *Backend) deregister(ctx context.Context) error {
	id := b.serviceID()
	err := b.do(ctx, "deregistering service "+id, true, func(ctx context.Context) error {
		err := b.cli.Agent().ServiceDeregisterOpts(id, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil && statusCode(err) == 404 {
			return nil
		}
		return err
	})
	if err == nil {
		b.mu.Lock()
		b.lastService = serviceDeregistered
		b.mu.Unlock()
	}
	return err
}
