package restapi

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
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

// allowlist is restapi.allowlist and allowlist_include_members, or the default that applies
// when no access setting is configured (defaultAccess).
type allowlist struct {
	prefixes []netip.Prefix // the IP and CIDR entries
	hosts    []string       // the host name entries
	members  bool           // allowlist_include_members
	denyAll  bool           // the allowlist is invalid: nothing is allowed
	names    *hostCache

	// The default: loopback, this host's own address (a request whose source is the address it
	// arrived at) and the members' addresses, those of their conn_url included.
	isDefault bool
}

// defaultAllowlist is what unsafe requests are checked against when neither authentication, an
// allowlist nor client certificates are configured: Patroni lets everyone in then, which lets
// anyone who can reach the port set archive_command (code execution as postgres). tusker lets in
// the machine itself and the cluster's members, so that tuskerctl on a member, the members' own
// requests and Kubernetes pods of the cluster keep working.
func defaultAllowlist(log *slog.Logger) *allowlist {
	return &allowlist{
		prefixes:  []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		members:   true,
		names:     newHostCache(log),
		isDefault: true,
	}
}

// msgDefaultDenied answers an unsafe request the default refused: what happened and what to
// configure.
const msgDefaultDenied = "Access is denied: with no restapi.authentication, restapi.allowlist or " +
	"restapi.verify_client configured, only this host and the cluster's members may change the " +
	"cluster; configure one of them to let other clients in (see docs/rest-api.md, Access)"

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
//
// local is the address the request arrived at (invalid when unknown): the default allowlist
// also admits a request from that same address, which can only come from this host.
func (a *allowlist) allows(ctx context.Context, ip, local netip.Addr, st *ha.Status, checkMembers bool) bool {
	if a.denyAll {
		return false
	}
	ip = ip.Unmap().WithZone("")
	if a.isDefault && local.IsValid() && local.Unmap().WithZone("") == ip {
		return true
	}
	for _, p := range a.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	hosts := a.hosts[:len(a.hosts):len(a.hosts)] // appending must not write into a.hosts
	if checkMembers && a.members && st != nil && st.Cluster != nil {
		for _, m := range st.Cluster.Members {
			hosts = append(hosts, apiHost(m.Data.APIURL))
			if a.isDefault {
				hosts = append(hosts, apiHost(m.Data.ConnURL))
			}
		}
	}
	return a.matchHosts(ctx, hosts, ip)
}

// matchHosts reports whether ip is one of hosts: an IP address as written, a host name by
// resolving it (resolvesTo). Empty entries are skipped.
func (a *allowlist) matchHosts(ctx context.Context, hosts []string, ip netip.Addr) bool {
	var names []string
	for _, h := range hosts {
		if h == "" {
			continue
		}
		if addr, err := netip.ParseAddr(h); err == nil {
			if addr.Unmap().WithZone("") == ip {
				return true
			}
			continue
		}
		names = append(names, h)
	}
	return a.resolvesTo(ctx, names, ip)
}

// resolvesTo reports whether one of hosts resolves to ip, waiting at most resolveWait in all for
// names never resolved before.
func (a *allowlist) resolvesTo(ctx context.Context, hosts []string, ip netip.Addr) bool {
	if len(hosts) == 0 || a.names == nil {
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

// localIP is the address r arrived at (invalid when the server does not say).
func localIP(r *http.Request) netip.Addr {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
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

// checkAccess is Patroni's check_access for a request that changes something (or, with
// restapi.protect_reads, reads cluster data), in its order: the allowlist (403 Access is denied;
// POST /failsafe skips the members, as in Patroni: they are read from the DCS, and failsafe mode
// is what runs while the DCS is unreachable; with the default allowlist it skips the allowlist
// altogether and postFailsafe checks that the leader sent it), a verified client certificate when
// verify_client asks for one (403 client certificate required), one of the names of
// verify_client_names when set (403), then Basic authentication (401; 429 after too many
// failures from one address). It writes the refusal and returns false, or returns true when the
// request may go on.
func (s *Server) checkAccess(w http.ResponseWriter, r *http.Request, seg string, read bool) bool {
	failsafePost := seg == "failsafe" && !read
	checkMembers := !failsafePost
	if s.allow != nil && s.allow.active(checkMembers) && !(failsafePost && s.allow.isDefault) {
		ip, ok := remoteIP(r)
		if !ok || !s.allow.allows(r.Context(), ip, localIP(r), s.status(), checkMembers) {
			s.log.Info("REST API request refused: address not in the allowlist", "remote", r.RemoteAddr,
				"method", r.Method, "uri", r.RequestURI, "default_allowlist", s.allow.isDefault)
			msg := "Access is denied"
			if s.allow.isDefault {
				msg = msgDefaultDenied
			}
			writeMessage(w, r, http.StatusForbidden, msg, nil)
			return false
		}
	}
	if s.tls != nil && s.tls.verifiesClients() {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			s.log.Info("REST API request refused: no client certificate", "remote", r.RemoteAddr,
				"method", r.Method, "uri", r.RequestURI)
			writeMessage(w, r, http.StatusForbidden, "client certificate required", nil)
			return false
		}
		if len(s.cfg.ClientNames) > 0 {
			leaf := r.TLS.VerifiedChains[0][0]
			if !certNameAllowed(leaf, s.cfg.ClientNames) {
				s.log.Warn("REST API request refused: client certificate not in verify_client_names",
					"remote", r.RemoteAddr, "method", r.Method, "uri", r.RequestURI,
					"subject", leaf.Subject.String(), "dns_names", leaf.DNSNames)
				writeMessage(w, r, http.StatusForbidden, "client certificate not allowed", nil)
				return false
			}
		}
	}
	if s.cfg.Auth == nil {
		return true
	}
	ip, _ := remoteIP(r)
	if wait := s.authFails.blocked(ip, s.now()); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		writeMessage(w, r, http.StatusTooManyRequests, "too many failed authentication attempts", nil)
		return false
	}
	if msg := s.authorize(r); msg != "" {
		if msg == msgNotAuthenticated {
			if n, first := s.authFails.fail(ip, s.now()); first || n == authFailLimit {
				user, _, _ := r.BasicAuth()
				s.log.Warn("REST API request refused: wrong username or password", "remote", r.RemoteAddr,
					"method", r.Method, "uri", r.RequestURI, "user", user, "failures", n,
					"limited", n >= authFailLimit)
			}
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="Patroni"`)
		writeMessage(w, r, http.StatusUnauthorized, msg, nil)
		return false
	}
	s.authFails.succeed(ip)
	return true
}

// certNameAllowed reports whether the certificate's common name or one of its subject
// alternative names (DNS, IP, email, URI) is one of names (DNS names case-insensitively).
func certNameAllowed(c *x509.Certificate, names []string) bool {
	var have []string
	if c.Subject.CommonName != "" {
		have = append(have, c.Subject.CommonName)
	}
	have = append(have, c.DNSNames...)
	have = append(have, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		have = append(have, ip.String())
	}
	for _, u := range c.URIs {
		have = append(have, u.String())
	}
	for _, n := range names {
		for _, h := range have {
			if strings.EqualFold(strings.TrimSuffix(n, "."), strings.TrimSuffix(h, ".")) {
				return true
			}
		}
	}
	return false
}

// failsafeSender reports whether a POST /failsafe naming name came from that member: the failsafe
// key must list it (members only), and the request's source must be the host of its api_url
// there, or of the api_url or conn_url of its member key. A stranger's POST would otherwise keep
// replicas from racing for a leader that is gone.
func (s *Server) failsafeSender(r *http.Request, name string) bool {
	st := s.status()
	if st == nil || st.Cluster == nil || name == "" {
		return false
	}
	apiURL, ok := st.Cluster.Failsafe[name]
	if !ok {
		return false
	}
	ip, ok := remoteIP(r)
	if !ok {
		return false
	}
	ip = ip.Unmap().WithZone("")
	hosts := []string{apiHost(apiURL)}
	if m := st.Cluster.Member(name); m != nil {
		hosts = append(hosts, apiHost(m.Data.APIURL), apiHost(m.Data.ConnURL))
	}
	return s.senders.matchHosts(r.Context(), hosts, ip)
}
