package ha

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/patroni"
)

// Prober asks one member for its state (GET <api_url> of Patroni's /patroni).
type Prober interface {
	Probe(ctx context.Context, apiURL string) (Peer, error)
}

// HTTPProber probes over HTTP with a shared keep-alive client.
type HTTPProber struct{ Client *http.Client }

var probeClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}}

// patroniBody is the part of /patroni a leader race needs.
type patroniBody struct {
	State    string `json:"state"`
	Role     string `json:"role"`
	Timeline int    `json:"timeline"`
	XLog     struct {
		Location         int64 `json:"location"`
		ReceivedLocation int64 `json:"received_location"`
		ReplayedLocation int64 `json:"replayed_location"`
	} `json:"xlog"`
	Tags           map[string]any `json:"tags"`
	WatchdogFailed bool           `json:"watchdog_failed"`
}

// Probe implements Prober.
func (p HTTPProber) Probe(ctx context.Context, apiURL string) (Peer, error) {
	c := p.Client
	if c == nil {
		c = probeClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiURL, nil)
	if err != nil {
		return Peer{}, fmt.Errorf("probing %s: %w", apiURL, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return Peer{}, fmt.Errorf("probing %s: %w", apiURL, err)
	}
	defer resp.Body.Close()
	var b patroniBody
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&b); err != nil {
		return Peer{}, fmt.Errorf("probing %s: decoding /patroni: %w", apiURL, err)
	}
	peer := Peer{Reachable: true, Timeline: b.Timeline, Priority: 1, WatchdogFailed: b.WatchdogFailed}
	if b.Role == "primary" || b.Role == "master" {
		peer.Primary = b.State == "running"
		peer.WALEnd = b.XLog.Location
	} else {
		peer.WALEnd = max(b.XLog.ReceivedLocation, b.XLog.ReplayedLocation)
	}
	peer.NoFailover, peer.Priority = patroni.NoFailover(b.Tags), patroni.FailoverPriority(b.Tags)
	return peer, nil
}

// probeTimeout is short: a dead member refuses at once, and a partitioned one must not hold the
// race for long.
func probeTimeout(retry time.Duration) time.Duration {
	return min(max(retry/2, 500*time.Millisecond), 2*time.Second)
}

// memberMemory remembers the members seen in the DCS. A member key lives ttl: during a DCS outage
// longer than that every key expires, and when the DCS comes back the first member to read it
// would see nobody else and win the race, although a member that is ahead of it is alive and
// rewrites its key on its next cycle (the nemesis found this: a replica 100 kB behind promoted
// after an 8 s outage and the other replica needed a rewind). A member that vanished from the DCS
// is still asked before a race until it has been absent for keep while the DCS was reachable.
type memberMemory struct {
	seen map[string]*rememberedMember
}

type rememberedMember struct {
	m           dcs.Member
	absentSince time.Time // first successful read without it (zero while present)
}

// update records a successful read of the cluster at now.
func (mm *memberMemory) update(c *dcs.Cluster, now time.Time, keep time.Duration) {
	if mm.seen == nil {
		mm.seen = map[string]*rememberedMember{}
	}
	present := map[string]bool{}
	for _, m := range c.Members {
		present[m.Name] = true
		mm.seen[m.Name] = &rememberedMember{m: m}
	}
	for name, r := range mm.seen {
		switch {
		case present[name]:
		case r.absentSince.IsZero():
			r.absentSince = now
		case now.Sub(r.absentSince) > keep:
			delete(mm.seen, name)
		}
	}
}

// withAbsent is the members of c plus the remembered ones that are missing from it.
func (mm *memberMemory) withAbsent(c *dcs.Cluster) []dcs.Member {
	out := append([]dcs.Member(nil), c.Members...)
	for name, r := range mm.seen {
		if c.Member(name) == nil {
			out = append(out, r.m)
		}
	}
	return out
}

// probePeers asks every other member in parallel; unreachable ones come back with Reachable false.
func (n *Node) probePeers(ctx context.Context, c *dcs.Cluster, retry time.Duration) []Peer {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout(retry))
	defer cancel()
	var wg sync.WaitGroup
	out := make([]Peer, 0, len(c.Members))
	var mu sync.Mutex
	for _, m := range c.Members {
		if m.Name == n.name || m.Data.APIURL == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := n.prober.Probe(ctx, m.Data.APIURL)
			if err != nil {
				n.log.Debug("peer probe failed", "member", m.Name, "err", err)
				p = Peer{}
			}
			p.Name = m.Name
			mu.Lock()
			out = append(out, p)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// memberURL turns a member's api_url (".../patroni") into the URL of another endpoint.
func memberURL(apiURL, endpoint string) string {
	return strings.TrimSuffix(apiURL, "/patroni") + "/" + endpoint
}

// FailsafePoster sends a primary's POST /failsafe to one member (its api_url) and returns the
// LSN the member reports.
type FailsafePoster interface {
	PostFailsafe(ctx context.Context, apiURL string, req FailsafeRequest, auth *config.Auth) (int64, error)
}

// HTTPFailsafe posts over HTTP with a shared keep-alive client.
type HTTPFailsafe struct{ Client *http.Client }

// PostFailsafe implements FailsafePoster.
func (p HTTPFailsafe) PostFailsafe(ctx context.Context, apiURL string, req FailsafeRequest, auth *config.Auth) (int64, error) {
	client := p.Client
	if client == nil {
		client = probeClient
	}
	body, err := json.Marshal(req)
	if err != nil {
		return 0, fmt.Errorf("encoding the failsafe request: %w", err)
	}
	url := memberURL(apiURL, "failsafe")
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("POST %s: %w", url, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	if auth != nil && auth.Username != "" {
		// The members check restapi.authentication on POST /failsafe like on any other change;
		// the cluster shares one restapi configuration.
		hr.SetBasicAuth(auth.Username, auth.Password)
	}
	resp, err := client.Do(hr)
	if err != nil {
		return 0, fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(msg))
	}
	lsn, _ := strconv.ParseInt(resp.Header.Get("lsn"), 10, 64)
	return lsn, nil
}

// confirmFailsafe asks every member of the failsafe key but this one to accept it as the
// primary, in parallel, with one retry each. It reports whether all of them accepted; a key that
// does not list this member confirms nothing.
func (n *Node) confirmFailsafe(ctx context.Context, members map[string]string, req FailsafeRequest, auth *config.Auth, retry time.Duration) bool {
	if _, ok := members[req.Name]; !ok {
		// No failsafe key, or one without this member: nothing vouches for this primary (a key
		// listing only this member is a one-member cluster, which stays primary).
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*probeTimeout(retry))
	defer cancel()
	var wg sync.WaitGroup
	var failed sync.Map
	for name, api := range members {
		if name == req.Name {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			for try := 0; try < 2; try++ {
				tctx, tcancel := context.WithTimeout(ctx, probeTimeout(retry))
				_, err = n.fsPost.PostFailsafe(tctx, api, req, auth)
				tcancel()
				if err == nil {
					return
				}
			}
			failed.Store(name, err)
		}()
	}
	wg.Wait()
	ok := true
	failed.Range(func(k, v any) bool {
		ok = false
		n.log.Warn("failsafe: a member did not confirm this primary", "member", k, "err", v)
		return true
	})
	return ok
}
