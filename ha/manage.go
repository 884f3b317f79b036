package ha

import (
	"context"
	"time"

	"github.com/tusker-ha/tusker/dcs"
)

// Manager is what the REST API's management endpoints call. The REST layer parses and checks the
// request body (types, unknown keys, timestamps) and answers 400/411/422 itself; the Manager checks
// the request against the cluster and carries it out. Every method returns a Result whose Code and
// Message are Patroni's for that outcome (for example 412 "leader name does not match"), so that the
// REST layer writes them unchanged.
type Manager interface {
	// Switchover serves POST /switchover and POST /failover (Failover set). It returns when the new
	// primary is in place (200), when a scheduled switchover was recorded (202), or with the
	// reason it was refused or failed.
	Switchover(ctx context.Context, req SwitchoverRequest) Result
	// CancelSwitchover serves DELETE /switchover.
	CancelSwitchover(ctx context.Context) Result

	// Restart serves POST /restart; it returns when postgres is back (200) or with 202 when scheduled.
	Restart(ctx context.Context, req RestartRequest) Result
	// CancelRestart serves DELETE /restart.
	CancelRestart(ctx context.Context) Result
	// Reload serves POST /reload (the same as SIGHUP): 202 "reload scheduled".
	Reload(ctx context.Context) Result
	// Reinitialize serves POST /reinitialize.
	Reinitialize(ctx context.Context, req ReinitRequest) Result

	// Config serves GET /config: the config key's JSON value (200) or 502 when there is none.
	Config(ctx context.Context) ([]byte, Result)
	// PatchConfig serves PATCH /config: patch is a JSON merge patch (RFC 7396; null deletes a key),
	// applied to the current value with a compare-and-set. 200 with the new value, 409 when the key
	// changed concurrently, 400 when the result is invalid, 503 when there is no config key.
	PatchConfig(ctx context.Context, patch []byte) ([]byte, Result)
	// PutConfig serves PUT /config: body replaces the value unconditionally. 200 with the value,
	// 400 when invalid, 502 when the write failed.
	PutConfig(ctx context.Context, body []byte) ([]byte, Result)

	// Failsafe serves POST /failsafe from the primary while the DCS is unreachable. On success the
	// Result is 200 "Accepted" and lsn is this member's WAL position (the REST layer sends it in an
	// "lsn" header); a primary answers 500 "Running as a leader"; 502 when failsafe_mode is off.
	Failsafe(ctx context.Context, req FailsafeRequest) (lsn int64, res Result)
	// FailsafeMembers serves GET /failsafe: the failsafe key ({member: api_url}); ok is false (502)
	// when failsafe_mode is off.
	FailsafeMembers() (members map[string]string, ok bool)
}

// Result is the outcome of a management call: an HTTP status code and Patroni's message for it.
type Result struct {
	Code    int
	Message string
}

// SwitchoverRequest is the body of POST /switchover or POST /failover.
type SwitchoverRequest struct {
	Leader    string    // current primary; required for a switchover
	Candidate string    // target; required for a failover ("member" is accepted as an alias)
	At        time.Time // scheduled_at; zero means now
	Failover  bool      // POST /failover
}

// RestartRequest is the body of POST /restart. Zero fields are conditions not asked for.
type RestartRequest struct {
	Role            string        // "primary", "replica" or "standby_leader" ("master" is read as primary)
	PostgresVersion int           // restart only if the running server_version is lower (e.g. 150010)
	RestartPending  bool          // restart only if postgres reports pending_restart
	Timeout         time.Duration // how long to wait for postgres to start again
	Schedule        time.Time     // zero means now
}

// ReinitRequest is the body of POST /reinitialize.
type ReinitRequest struct {
	Force      bool // cancel a running action first
	FromLeader bool // clone from the leader even if a clonefrom replica exists
}

// FailsafeRequest is the body of POST /failsafe, sent by the primary to every member while the
// DCS is unreachable.
type FailsafeRequest struct {
	Name    string           `json:"name"`
	ConnURL string           `json:"conn_url"`
	APIURL  string           `json:"api_url"`
	Slots   map[string]int64 `json:"slots,omitempty"`
}

// FailsafeSenderIsLeader is the rule for POST /failsafe on a replica: the sender vouches that it
// is still the primary while the DCS is out of reach, which stops this member from racing. So it
// must be the member that last held the leader key as this member saw it (lastLeader) and be
// listed in the failsafe key that leader wrote; a stranger, or a former leader that has since been
// replaced, changes nothing.
func FailsafeSenderIsLeader(name, lastLeader string, c *dcs.Cluster) bool {
	if name == "" || name != lastLeader || c == nil {
		return false
	}
	_, listed := c.Failsafe[name]
	return listed
}
