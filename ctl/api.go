package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/internal/apiclient"
)

// Time limits of REST calls. A switchover or failover waits on the server for the new primary
// (up to a minute); a restart for postgres to come back; the rest answer at once.
const (
	timeoutRead       = 5 * time.Second
	timeoutProbe      = 2 * time.Second // -e status columns, reinit --wait polling
	timeoutAction     = 30 * time.Second
	timeoutSwitchover = 90 * time.Second
	timeoutRestart    = 90 * time.Second
)

// apiClient calls the members' REST APIs with the ctl section's TLS settings and credentials.
type apiClient struct {
	hc   *http.Client
	auth *config.Auth
}

// apiResult is a member's answer: its status code and body (the message, for management calls).
type apiResult struct {
	Status int
	Body   []byte
}

// Message is the body as the member's message.
func (r apiResult) Message() string { return strings.TrimSpace(string(r.Body)) }

// Detail is "status code=503, (message)", patronictl's way of quoting a refusal.
func (r apiResult) Detail() string {
	return fmt.Sprintf("status code=%d, (%s)", r.Status, r.Message())
}

// newAPIClient builds the client with the daemon's own rules (internal/apiclient), which are
// patronictl's: ctl.cacert, ctl.certfile/keyfile/keyfile_password, else the restapi section's;
// ctl.authentication, else restapi.authentication.
func newAPIClient(cfg *config.Config, hc *http.Client) (*apiClient, error) {
	if hc == nil {
		var err error
		if hc, err = apiclient.New(apiclient.FromConfig(cfg)); err != nil {
			return nil, fmt.Errorf("REST API client TLS settings: %w", err)
		}
	}
	return &apiClient{hc: hc, auth: apiclient.Auth(cfg)}, nil
}

// callError is a request that got no answer. notSent says the member surely never received it
// (no api_url, or the connection could not be made), so that another member may be asked
// instead without doing the operation twice.
type callError struct {
	err     error
	notSent bool
}

func (e *callError) Error() string { return e.err.Error() }
func (e *callError) Unwrap() error { return e.err }

func notSent(err error) bool {
	ce, ok := errors.AsType[*callError](err)
	return ok && ce.notSent
}

// endpoint is the URL of path on a member: the scheme and address of its api_url (which names
// /patroni) with the path replaced.
func endpoint(m *dcs.Member, path string) (string, error) {
	if m.Data.APIURL == "" {
		return "", fmt.Errorf("member %s publishes no api_url (is its tusker running?)", m.Name)
	}
	u, err := url.Parse(m.Data.APIURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("member %s: api_url %q is not a URL", m.Name, m.Data.APIURL)
	}
	u.Path, u.RawQuery, u.Fragment = path, "", ""
	return u.String(), nil
}

// do sends one request to a member and returns its answer whatever the status; err is set only
// when there is no answer (connection refused, timeout, TLS failure).
func (c *apiClient) do(ctx context.Context, m *dcs.Member, method, path string, body any, timeout time.Duration) (apiResult, error) {
	target, err := endpoint(m, path)
	if err != nil {
		return apiResult{}, &callError{err: err, notSent: true}
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return apiResult{}, fmt.Errorf("encoding the %s %s body for %s: %w", method, path, m.Name, err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return apiResult{}, fmt.Errorf("%s %s on member %s: %w", method, target, m.Name, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "tuskerctl")
	if c.auth != nil {
		req.SetBasicAuth(c.auth.Username, c.auth.Password)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		opErr, isNet := errors.AsType[*net.OpError](err)
		dial := isNet && opErr.Op == "dial"
		if errors.Is(err, context.DeadlineExceeded) && !dial {
			return apiResult{}, &callError{err: fmt.Errorf("%s %s on member %s: no answer within %s", method, target, m.Name, timeout)}
		}
		return apiResult{}, &callError{err: fmt.Errorf("%s %s on member %s: %w", method, target, m.Name, err), notSent: dial}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return apiResult{}, fmt.Errorf("reading the answer to %s %s from member %s: %w", method, target, m.Name, err)
	}
	return apiResult{Status: resp.StatusCode, Body: b}, nil
}

// status reads a member's /patroni.
func (c *apiClient) status(ctx context.Context, m *dcs.Member, timeout time.Duration) (map[string]any, error) {
	r, err := c.do(ctx, m, http.MethodGet, "/patroni", nil, timeout)
	if err != nil {
		return nil, err
	}
	var st map[string]any
	if err := json.Unmarshal(r.Body, &st); err != nil {
		return nil, fmt.Errorf("member %s: /patroni answered %d with no JSON: %w", m.Name, r.Status, err)
	}
	return st, nil
}

// statuses reads /patroni of several members in parallel; unreachable members are left out.
func (c *apiClient) statuses(ctx context.Context, members []dcs.Member, timeout time.Duration) map[string]map[string]any {
	out := map[string]map[string]any{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range members {
		m := &members[i]
		if m.Data.APIURL == "" {
			continue
		}
		wg.Go(func() {
			st, err := c.status(ctx, m, timeout)
			if err != nil {
				return
			}
			mu.Lock()
			out[m.Name] = st
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}
