package restapi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tusker-ha/tusker/ha"
)

// Host name resolution for restapi.allowlist and allowlist_include_members. Patroni resolves the
// allowlist once when it loads its configuration and the members' api_url on every checked
// request; tusker caches both, so that an address change is seen within a minute and a slow DNS
// server cannot hold a request.
const (
	resolveTTL     = 60 * time.Second // how long resolved addresses are used
	resolveRetry   = 5 * time.Second  // how long a failed first resolution is remembered
	resolveTimeout = 5 * time.Second  // how long one resolution may take (in the background)
	resolveWait    = time.Second      // how long a request waits for names never resolved before
)

// allowlist is restapi.allowlist and allowlist_include_members.
type allowlist struct {
	prefixes []netip.Prefix // the IP and CIDR entries
	hosts    []string       // the host name entries
	members  bool           // allowlist_include_members
	denyAll  bool           // the allowlist is invalid: nothing is allowed
	names    *hostCache
}

// newAllowlist sorts the entries into networks and host names. An entry with a '/' must be a
// CIDR; anything else that is not an IP address is a host name.
func newAllowlist(entries []string, members bool, log *slog.Logger) (*allowlist, error) {
	a := &allowlist{members: members, names: newHostCache(log)}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if strings.Contains(e, "/") {
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("allowlist entry %q: %w", e, err)
			}
			// Patroni's ip_network(v, strict=False): host bits are ignored.
			a.prefixes = append(a.prefixes, netip.PrefixFrom(p.Addr().Unmap(), bitsUnmapped(p)).Masked())
			continue
		}
		h := strings.TrimSuffix(strings.TrimPrefix(e, "["), "]")
		if ip, err := netip.ParseAddr(h); err == nil {
			ip = ip.Unmap().WithZone("")
			a.prefixes = append(a.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		if h == "" {
			return nil, fmt.Errorf("allowlist entry %q: empty", e)
		}
		a.hosts = append(a.hosts, h)
	}
	return a, nil
}

// bitsUnmapped is the prefix length of p once an IPv4-mapped IPv6 address is unmapped.
func bitsUnmapped(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(p.Bits()-96, 0)
	}
	return p.Bits()
}

// active reports whether requests are checked at all: Patroni checks nothing when the allowlist is
// empty and the members are not included (or not checked, for POST /failsafe).
func (a *allowlist) active(checkMembers bool) bool {
	return a.denyAll || len(a.prefixes) > 0 || len(a.hosts) > 0 || (checkMembers && a.members)
}

// prefetch starts resolving the host name entries, so that the first checked request does not
// wait for them.
func (a *allowlist) prefetch() {
	if a.names != nil {
		for _, h := range a.hosts {
			a.names.start(h)
		}
	}
}

// allows reports whether a request from ip may go on: ip is in a network of the allowlist, is an
// address of one of its host names or, when checkMembers, of the host of a member's api_url in
// st's cluster. Names never resolved before are waited for at most resolveWait in all.
func (a *allowlist) allows(ctx context.Context, ip netip.Addr, st *ha.Status, checkMembers bool) bool {
	if a.denyAll {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range a.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	hosts := a.hosts
	if checkMembers && a.members && st != nil && st.Cluster != nil {
		hosts = hosts[:len(hosts):len(hosts)] // appending must not write into a.hosts
		for _, m := range st.Cluster.Members {
			h := apiHost(m.Data.APIURL)
			if h == "" {
				continue
			}
			if addr, err := netip.ParseAddr(h); err == nil {
				if addr.Unmap().WithZone("") == ip {
					return true
				}
				continue
			}
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return false
	}
	for _, h := range hosts { // resolve them concurrently
		a.names.start(h)
	}
	ctx, cancel := context.WithTimeout(ctx, resolveWait)
	defer cancel()
	for _, h := range hosts {
		for _, addr := range a.names.lookup(ctx, h) {
			if addr == ip {
				return true
			}
		}
	}
	return false
}

// apiHost returns the host of an api_url ("http://10.0.0.1:8008/patroni" → "10.0.0.1").
func apiHost(apiURL string) string {
	if apiURL == "" {
		return ""
	}
	u, err := url.Parse(apiURL)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// remoteIP parses the address of r's client ("ip:port").
func remoteIP(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr(), true
}

// hostCache resolves host names in the background and keeps their addresses for resolveTTL.
type hostCache struct {
	lookupIP func(ctx context.Context, host string) ([]netip.Addr, error) // tests replace it
	log      *slog.Logger
	now      func() time.Time

	mu sync.Mutex
	m  map[string]*hostEntry
}

type hostEntry struct {
	addrs    []netip.Addr  // the last successful resolution (unmapped)
	resolved bool          // a resolution has completed (successfully or not)
	expires  time.Time     // when to resolve again
	pending  chan struct{} // non-nil while a resolution runs; closed when it ends
}

func newHostCache(log *slog.Logger) *hostCache {
	return &hostCache{
		lookupIP: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		},
		log: log, now: time.Now, m: make(map[string]*hostEntry),
	}
}

// start begins resolving host unless its addresses are fresh or a resolution is running. It
// returns the entry's state under the lock.
func (c *hostCache) start(host string) (addrs []netip.Addr, resolved bool, pending chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[host]
	if e == nil {
		e = &hostEntry{}
		c.m[host] = e
	}
	if e.pending == nil && !c.now().Before(e.expires) {
		e.pending = make(chan struct{})
		go c.resolve(host, e, e.pending)
	}
	return e.addrs, e.resolved, e.pending
}

// lookup returns the addresses of host. Stale addresses are returned at once while they are
// refreshed in the background; a name never resolved is waited for until ctx ends.
func (c *hostCache) lookup(ctx context.Context, host string) []netip.Addr {
	addrs, resolved, pending := c.start(host)
	if resolved || pending == nil {
		return addrs
	}
	select {
	case <-pending:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.m[host].addrs
	case <-ctx.Done():
		return nil
	}
}

func (c *hostCache) resolve(host string, e *hostEntry, done chan struct{}) {
	defer close(done)
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	addrs, err := c.lookupIP(ctx, host)
	for i := range addrs {
		addrs[i] = addrs[i].Unmap().WithZone("")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e.pending = nil
	e.resolved = true
	if err != nil {
		// Keep the addresses of the last success: a DNS outage must not lock the members out.
		// Retry sooner when there are none.
		e.expires = c.now().Add(resolveTTL)
		if len(e.addrs) == 0 {
			e.expires = c.now().Add(resolveRetry)
		}
		c.log.Warn("restapi allowlist: cannot resolve host", "host", host, "err", err)
		return
	}
	e.addrs = addrs
	e.expires = c.now().Add(resolveTTL)
}

// checkAccess is Patroni's check_access for a management request that changes something, in its
// order: the allowlist (403 Access is denied; POST /failsafe skips the members, as in Patroni:
// they are read from the DCS, and failsafe mode is what runs while the DCS is unreachable), a
// verified client certificate when verify_client asks for one (403 client certificate
// required), then Basic authentication (401). It writes the refusal and returns false, or returns
// true when the request may go on.
func (s *Server) checkAccess(w http.ResponseWriter, r *http.Request, seg string) bool {
	checkMembers := seg != "failsafe"
	if s.allow != nil && s.allow.active(checkMembers) {
		ip, ok := remoteIP(r)
		if !ok || !s.allow.allows(r.Context(), ip, s.status(), checkMembers) {
			s.log.Info("REST API request refused: address not in the allowlist", "remote", r.RemoteAddr,
				"method", r.Method, "uri", r.RequestURI)
			writeMessage(w, r, http.StatusForbidden, "Access is denied", nil)
			return false
		}
	}
	if s.tls != nil && s.tls.verifiesClients() && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
		s.log.Info("REST API request refused: no client certificate", "remote", r.RemoteAddr,
			"method", r.Method, "uri", r.RequestURI)
		writeMessage(w, r, http.StatusForbidden, "client certificate required", nil)
		return false
	}
	if msg := s.authorize(r); msg != "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="Patroni"`)
		writeMessage(w, r, http.StatusUnauthorized, msg, nil)
		return false
	}
	return true
}
