package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/dcs"
)

// replies answers "METHOD /path" with a fixed status and body; anything else is 404.
func replies(m map[string]string) func(request) (int, string) {
	return func(r request) (int, string) {
		v, ok := m[r.Method+" "+r.Path]
		if !ok {
			return 404, "not found"
		}
		code, body, _ := strings.Cut(v, " ")
		var c int
		_, _ = fmt.Sscan(code, &c)
		return c, body
	}
}

// cluster3 is the test cluster with three fake members.
func cluster3(t *testing.T, reply func(request) (int, string)) (*harness, []*fakeMember) {
	var ms []*fakeMember
	var urls []string
	for range 3 {
		fm := newFakeMember(t, reply)
		ms = append(ms, fm)
		urls = append(urls, fm.apiURL())
	}
	return newHarness(t, testCluster(urls...)), ms
}

func TestCmdList(t *testing.T) {
	h, _ := cluster3(t, nil)
	out, _ := h.mustRun(0, "", "list")
	assert.Contains(t, out, "+ Cluster: demo (7300000000000000001) -")
	assert.Contains(t, out, "| n1     | 127.0.0.1:5432 | Leader  | running   |  2 |           |")

	out, _ = h.mustRun(0, "", "list", "demo", "-f", "json")
	var rows []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &rows))
	require.Len(t, rows, 3)

	out, _ = h.mustRun(0, "", "topology")
	assert.Contains(t, out, "| + n2   |")

	out, _ = h.mustRun(0, "", "list", "-t")
	assert.True(t, strings.HasPrefix(out, "2024-05-01 12:00:00\n"), out)

	_, errOut := h.mustRun(1, "", "list", "other")
	assert.Equal(t, "tuskerctl: cluster \"other\" not found in namespace /service\n", errOut)
	// A member name where the cluster belongs: the message says what the first argument is.
	_, errOut = h.mustRun(1, "", "restart", "n2", "--force")
	assert.Contains(t, errOut, `cluster "n2" not found in namespace /service ("n2" is a member of cluster "demo": the first argument is the cluster, e.g. "demo n2")`)

	_, errOut = h.mustRun(2, "", "list", "-f", "xml")
	assert.Contains(t, errOut, `unknown format "xml" (one of pretty, tsv, json, yaml)`)
	_, errOut = h.mustRun(2, "", "list", "--bogus")
	assert.Contains(t, errOut, "unknown flag: --bogus")
	_, errOut = h.mustRun(2, "", "lst")
	assert.Contains(t, errOut, `unknown command "lst" (did you mean list`)
	h.mustRun(1, "", "list", "--group", "1")

	h.store.update(func(*dcs.Cluster) {
		h.store.readErr = fmt.Errorf("etcd reading /service/demo/: %w: deadline", dcs.ErrUnreachable)
	})
	_, errOut = h.mustRun(1, "", "list")
	assert.Contains(t, errOut, "tuskerctl: cannot reach the DCS at http://127.0.0.1:2379 within 5s: ")
}

// TestCmdListSyncRoles: list and topology read synchronous_mode from the config key in the DCS
// and the standbys from the sync key.
func TestCmdListSyncRoles(t *testing.T) {
	h, _ := cluster3(t, nil)
	h.store.update(func(c *dcs.Cluster) {
		c.Config.Value = []byte(`{"ttl":6,"loop_wait":1,"synchronous_mode":"on"}`)
		c.Sync = &dcs.Sync{Leader: "n1", SyncStandby: []string{"n2"}}
	})
	out, _ := h.mustRun(0, "", "list")
	assert.Contains(t, out, "| n2     | 127.0.0.1:5433 | Sync Standby | streaming |")
	assert.Contains(t, out, "| n3     | 127.0.0.1:5434 | Replica      | stopped   |")
	out, _ = h.mustRun(0, "", "topology")
	assert.Contains(t, out, "| + n2   | 127.0.0.1:5433 | Sync Standby | streaming |")

	h.store.update(func(c *dcs.Cluster) {
		c.Config.Value = []byte(`{"synchronous_mode":"quorum"}`)
	})
	out, _ = h.mustRun(0, "", "list", "-f", "json")
	var rows []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &rows))
	require.Len(t, rows, 3)
	assert.Equal(t, []any{"Leader", "Quorum Standby", "Replica"}, []any{rows[0]["Role"], rows[1]["Role"], rows[2]["Role"]})

	h.store.update(func(c *dcs.Cluster) {
		c.Config.Value = []byte(`{"synchronous_mode":"off"}`)
	})
	out, _ = h.mustRun(0, "", "list")
	assert.Contains(t, out, "| n2     | 127.0.0.1:5433 | Replica | streaming |")
}

func TestCmdNoClusterName(t *testing.T) {
	h, _ := cluster3(t, nil)
	h.extra = []string{"DCS_URL=etcd3://127.0.0.1:2379"}
	_, errOut := h.mustRun(2, "", "list")
	assert.Contains(t, errOut, "no cluster name: pass CLUSTER or set scope in the configuration")
	h.mustRun(0, "", "list", "demo")

	h.extra = nil
	_, errOut = h.mustRun(2, "", "list", "demo")
	assert.Contains(t, errOut, "no configuration: pass -c CONFIG")
	out, _ := h.mustRun(0, "", "version") // needs no configuration
	assert.Equal(t, "tuskerctl version 1.2.3\n", out)
	_, errOut = h.mustRun(1, "", "-c", "/nonexistent/tusker.yml", "list")
	assert.Contains(t, errOut, "/nonexistent/tusker.yml")
}

func TestCmdConfigFileAndAuth(t *testing.T) {
	h, ms := cluster3(t, replies(map[string]string{"POST /reload": "202 reload scheduled"}))
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ctl.yml")
	require.NoError(t, os.WriteFile(cfg, []byte("scope: demo\netcd3:\n  hosts: 127.0.0.1:2379\nrestapi:\n  authentication: {username: rest, password: fallback}\nctl:\n  authentication: {username: admin, password: secret}\n"), 0o600))
	h.extra = nil
	out, _ := h.mustRun(0, "", "reload", "-c", cfg, "demo", "n2", "--force")
	assert.Equal(t, "Reload request received for member n2 and will be processed within 1 seconds\n", out)
	reqs := ms[1].managementRequests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "admin", reqs[0].User)
	assert.Equal(t, "secret", reqs[0].Pass)

	// restapi.authentication is the fallback; the config may also come from PATRONICTL_CONFIG_FILE.
	require.NoError(t, os.WriteFile(cfg, []byte("scope: demo\netcd3:\n  hosts: 127.0.0.1:2379\nrestapi:\n  authentication: {username: rest, password: fallback}\n"), 0o600))
	h.extra = []string{"PATRONICTL_CONFIG_FILE=" + cfg}
	h.mustRun(0, "", "reload", "demo", "n3", "--force")
	reqs = ms[2].managementRequests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "rest", reqs[0].User)
}

func TestCmdSwitchover(t *testing.T) {
	var answer atomic.Value
	answer.Store("200 Successfully switched over to \"n2\"")
	reply := func(r request) (int, string) {
		if r.Method == http.MethodPost && r.Path == "/switchover" {
			return replies(map[string]string{"POST /switchover": answer.Load().(string)})(r)
		}
		return 200, "{}"
	}
	h, ms := cluster3(t, reply)

	out, _ := h.mustRun(0, "", "switchover", "--candidate", "n2", "--force")
	assert.Contains(t, out, "Current cluster topology\n+ Cluster: demo")
	assert.Contains(t, out, "2024-05-01 12:00:00.000 Successfully switched over to \"n2\"\n")
	reqs := ms[0].managementRequests() // the leader gets it
	require.Len(t, reqs, 1)
	assert.Equal(t, map[string]any{"leader": "n1", "candidate": "n2"}, reqs[0].Body)

	// Interactive: leader (default), candidate, time (default now), confirmation.
	_, errOut := h.mustRun(0, "\nn2\n\ny\n", "switchover", "demo")
	// Piped answers: each prompt ends its line itself.
	assert.Equal(t, "Primary [n1]: \nCandidate ['n2']: \nWhen should the switchover take place (e.g. 2024-05-01T13:00) [now]: \n"+
		"Are you sure you want to switchover cluster demo, demoting current leader n1? [y/N]: \n", errOut)
	_, _ = h.mustRun(1, "\nn2\n\nn\n", "switchover") // answered no
	_, errOut = h.mustRun(1, "\n", "switchover")     // stdin ends
	assert.Contains(t, errOut, "tuskerctl: Aborted\n")

	// Scheduled.
	h.mustRun(0, "", "switchover", "--candidate", "n2", "--scheduled", "2030-01-02T03:00+00:00", "--force")
	reqs = ms[0].managementRequests()
	assert.Equal(t, "2030-01-02T03:00:00Z", reqs[len(reqs)-1].Body["scheduled_at"])

	// Refusals are reported with the member's status and message.
	answer.Store("412 candidate does not exists")
	_, errOut = h.mustRun(1, "", "switchover", "--candidate", "n2", "--force")
	assert.Equal(t, "tuskerctl: Switchover failed, details: 412 Precondition Failed: candidate does not exists\n", errOut)

	_, errOut = h.mustRun(1, "", "switchover", "--candidate", "n3", "--force")
	assert.Contains(t, errOut, "member n3 does not exist in cluster \"demo\" or is tagged as nofailover (candidates: n2)")
	_, errOut = h.mustRun(1, "", "switchover", "--candidate", "n1", "--force")
	assert.Contains(t, errOut, "member n1 is already the leader")
	_, errOut = h.mustRun(1, "", "switchover", "--leader", "n2", "--candidate", "n1", "--force")
	assert.Contains(t, errOut, "member n2 is not the leader of cluster \"demo\" (the leader is n1)")
	_, errOut = h.mustRun(2, "", "switchover", "--candidate", "n2", "--scheduled", "soon", "--force")
	assert.Contains(t, errOut, "unable to parse scheduled timestamp (soon)")
	_, errOut = h.mustRun(2, "", "failover", "--force")
	assert.Contains(t, errOut, "failover --force needs --candidate")
	_, errOut = h.mustRun(1, "\n", "failover")
	assert.Contains(t, errOut, "Failover could be performed only to a specific candidate")
	h.mustRun(2, "", "switchover", "demo", "extra")
}

func TestCmdFailoverWithoutLeaderAndDCSFallback(t *testing.T) {
	h, ms := cluster3(t, replies(map[string]string{"POST /failover": `200 Successfully failed over to "n2"`}))
	h.store.update(func(c *dcs.Cluster) { c.Leader = nil })
	out, _ := h.mustRun(0, "", "failover", "--candidate", "n2", "--force")
	assert.Contains(t, out, `Successfully failed over to "n2"`)
	assert.Len(t, ms[1].managementRequests(), 1, "without a leader the candidate is asked")
	_, errOut := h.mustRun(1, "", "switchover", "--force")
	assert.Contains(t, errOut, "has no leader: a switchover needs one")

	// No member's REST API answers: the failover key is written and the new leader awaited.
	h2 := newHarness(t, testCluster("http://127.0.0.1:1/patroni", "http://127.0.0.1:1/patroni", ""))
	h2.store.promote = true
	saved := dcsFallbackPoll
	dcsFallbackPoll = 10 * time.Millisecond
	t.Cleanup(func() { dcsFallbackPoll = saved })
	out, errOut = h2.mustRun(0, "", "switchover", "--candidate", "n2", "--force")
	assert.Contains(t, out, "Could not switchover using the REST API of any member")
	assert.Contains(t, out, `Successfully switched over to "n2"`)
	assert.Contains(t, errOut, "connection refused")
	assert.Equal(t, []dcs.Failover{{Leader: "n1", Member: "n2"}}, h2.store.failoverWrites())
}

func TestCmdEditConfig(t *testing.T) {
	h, _ := cluster3(t, nil)
	out, _ := h.mustRun(0, "", "edit-config", "-s", "loop_wait=2", "-p", "max_connections=123", "--force")
	assert.Equal(t, `--- before
+++ after
@@ -1,6 +1,6 @@
-loop_wait: 1
+loop_wait: 2
 postgresql:
   parameters:
-    max_connections: 40
+    max_connections: 123
 retry_timeout: 2
 ttl: 6
Configuration changed
`, out)
	snap := h.store.snapshot()
	assert.Equal(t, `{"loop_wait":2,"postgresql":{"parameters":{"max_connections":123}},"retry_timeout":2,"ttl":6}`, string(snap.Config.Value))
	assert.Equal(t, int64(8), snap.Config.Version)

	out, _ = h.mustRun(0, "", "edit-config", "-s", "loop_wait=2", "--force")
	assert.Equal(t, "Not changing configuration.\n", out)

	// Confirmation: no, and end of input.
	_, errOut := h.mustRun(1, "n\n", "edit-config", "-s", "ttl=10")
	assert.Contains(t, errOut, "Apply these changes? [y/N]: ")
	h.mustRun(1, "", "edit-config", "-q", "-s", "ttl=10")
	h.mustRun(0, "y\n", "edit-config", "-q", "-s", "ttl=10")
	assert.Contains(t, string(h.store.snapshot().Config.Value), `"ttl":10`)

	// Someone else writes between our read and our write.
	h.store.onSetConfig = func() {
		h.store.update(func(c *dcs.Cluster) { c.Config = &dcs.ConfigKey{Value: c.Config.Value, Version: c.Config.Version + 1} })
	}
	_, errOut = h.mustRun(1, "", "edit-config", "-s", "ttl=12", "--force")
	assert.Equal(t, "tuskerctl: the configuration changed concurrently; run edit-config again\n", errOut)
	h.store.onSetConfig = nil

	// Invalid values are refused before anything is written.
	_, errOut = h.mustRun(1, "", "edit-config", "-s", "ttl=abc", "--force")
	assert.Contains(t, errOut, "the new configuration is invalid, nothing changed")

	// --apply from stdin, --replace from a file.
	out, _ = h.mustRun(0, "postgresql:\n  parameters:\n    max_connections: null\n", "edit-config", "-q", "--apply", "-", "--force")
	assert.Equal(t, "Configuration changed\n", out)
	assert.NotContains(t, string(h.store.snapshot().Config.Value), "max_connections")
	_, errOut = h.mustRun(1, "ttl: 20\n", "edit-config", "--apply", "-")
	assert.Contains(t, errOut, "add --force")
	f := filepath.Join(t.TempDir(), "new.yaml")
	require.NoError(t, os.WriteFile(f, []byte("ttl: 30\nloop_wait: 10\nretry_timeout: 10\n"), 0o600))
	h.mustRun(0, "", "edit-config", "--replace", f, "--force")
	assert.JSONEq(t, `{"ttl":30,"loop_wait":10,"retry_timeout":10}`, string(h.store.snapshot().Config.Value))

	// Without settings it needs an editor on a terminal.
	_, errOut = h.mustRun(2, "", "edit-config")
	assert.Contains(t, errOut, "nothing to change")
	h.env.Editor = func(_ context.Context, path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(path, []byte(strings.Replace(string(b), "ttl: 30", "ttl: 40", 1)), 0o600)
	}
	h.mustRun(0, "y\n", "edit-config")
	assert.Contains(t, string(h.store.snapshot().Config.Value), `"ttl":40`)
	h.env.Editor = func(_ context.Context, path string) error { return os.WriteFile(path, []byte("ttl: [unclosed"), 0o600) }
	_, errOut = h.mustRun(1, "", "edit-config")
	assert.Contains(t, errOut, "the edited configuration is not valid YAML")

	out, _ = h.mustRun(0, "", "show-config")
	assert.Equal(t, "loop_wait: 10\nretry_timeout: 10\nttl: 40\n", out)
}

func TestCmdPauseResume(t *testing.T) {
	var h *harness
	reply := func(r request) (int, string) {
		if r.Method == http.MethodPatch && r.Path == "/config" {
			pause := r.Body["pause"] == true
			go func() { // the members notice a moment later
				time.Sleep(50 * time.Millisecond)
				h.store.update(func(c *dcs.Cluster) {
					if pause {
						c.Config = &dcs.ConfigKey{Value: []byte(`{"pause":true}`), Version: c.Config.Version + 1}
					} else {
						c.Config = &dcs.ConfigKey{Value: []byte(`{}`), Version: c.Config.Version + 1}
					}
					for i := range c.Members {
						c.Members[i].Data.Pause = pause
					}
				})
			}()
			return 200, "{}"
		}
		return 200, "{}"
	}
	var ms []*fakeMember
	h, ms = cluster3(t, reply)
	out, errOut := h.mustRun(0, "", "pause", "--wait")
	assert.Equal(t, "'pause' request sent, waiting until it is recognized by all nodes\nSuccess: cluster management is paused\n", out)
	assert.Contains(t, errOut, "waiting for: n1, n2, n3")
	reqs := ms[0].managementRequests()
	require.Len(t, reqs, 1)
	assert.Equal(t, map[string]any{"pause": true}, reqs[0].Body)

	out, _ = h.mustRun(0, "", "list")
	assert.Contains(t, out, "\n Maintenance mode: on\n")
	_, errOut = h.mustRun(1, "", "pause")
	assert.Equal(t, "tuskerctl: Cluster is already paused\n", errOut)

	out, _ = h.mustRun(0, "", "resume", "--wait")
	assert.Contains(t, out, "Success: cluster management is resumed\n")
	reqs = ms[0].managementRequests()
	assert.Equal(t, map[string]any{"pause": nil}, reqs[len(reqs)-1].Body)
	_, errOut = h.mustRun(1, "", "resume")
	assert.Equal(t, "tuskerctl: Cluster is not paused\n", errOut)
}

func TestCmdPauseWithoutMembersWritesTheDCS(t *testing.T) {
	h := newHarness(t, testCluster("http://127.0.0.1:1/patroni"))
	out, errOut := h.mustRun(0, "", "pause")
	assert.Equal(t, "Success: cluster management is paused\n", out)
	assert.Contains(t, errOut, "writing pause into the configuration in the DCS")
	assert.Contains(t, string(h.store.snapshot().Config.Value), `"pause":true`)
}

func TestCmdRestartReloadFlush(t *testing.T) {
	var restart atomic.Value
	restart.Store("200 restarted successfully")
	reply := func(r request) (int, string) {
		switch r.Method + " " + r.Path {
		case "POST /restart":
			return replies(map[string]string{"POST /restart": restart.Load().(string)})(r)
		case "DELETE /restart":
			return 404, "no restarts are scheduled"
		case "POST /reload":
			return 202, "reload scheduled"
		}
		return 200, "{}"
	}
	h, ms := cluster3(t, reply)

	out, _ := h.mustRun(0, "", "restart", "demo", "n2", "--force")
	assert.Equal(t, "Success: restart on member n2\n", out)
	assert.Empty(t, ms[0].managementRequests())
	require.Len(t, ms[1].managementRequests(), 1)
	assert.Equal(t, map[string]any{}, ms[1].managementRequests()[0].Body, "patronictl sends an empty object")

	out, _ = h.mustRun(0, "", "restart", "demo", "-r", "replica", "--pending", "--pg-version", "15.4", "--timeout", "30", "--force")
	assert.Equal(t, "Success: restart on member n2\nSuccess: restart on member n3\n", out)
	assert.Equal(t, map[string]any{"restart_pending": true, "postgres_version": "15.4", "timeout": "30"}, ms[2].managementRequests()[0].Body)

	_, errOut := h.mustRun(1, "", "restart", "demo", "n1")
	assert.Contains(t, errOut, "Are you sure you want to restart members n1? [y/N]: ")

	restart.Store("503 restart conditions are not satisfied")
	out, _ = h.mustRun(0, "", "restart", "demo", "n3", "--pending", "--force")
	assert.Equal(t, "Skipped: restart conditions are not satisfied on member n3\n", out)
	restart.Store("503 restart failed: postgres not back after 55s")
	out, errOut = h.mustRun(1, "", "restart", "demo", "n2", "n3", "--force")
	assert.Equal(t, "Failed: restart for member n2, status code=503, (restart failed: postgres not back after 55s)\n"+
		"Failed: restart for member n3, status code=503, (restart failed: postgres not back after 55s)\n", out)
	assert.Equal(t, "tuskerctl: restart failed on 2 of 2 members (n2, n3)\n", errOut)
	restart.Store("409 Another restart is already scheduled")
	out, _ = h.mustRun(1, "", "restart", "demo", "n2", "--scheduled", "2030-01-01T00:00+00:00", "--force")
	assert.Equal(t, "Failed: another restart is already scheduled on member n2\n", out)

	_, errOut = h.mustRun(1, "", "restart", "demo", "n7", "--force")
	assert.Equal(t, "tuskerctl: \"n7\" is not a member of cluster \"demo\" (members: n1, n2, n3)\n", errOut)
	h.mustRun(2, "", "restart", "demo", "--pg-version", "fifteen", "--force")
	h.mustRun(2, "", "restart", "demo", "-r", "boss", "--force")

	out, _ = h.mustRun(1, "", "restart", "demo", "--any", "--force")
	assert.Equal(t, 1, strings.Count(out, "Failed: another restart"), "--any restarts one member")

	out, _ = h.mustRun(0, "y\n", "reload", "demo")
	assert.Contains(t, out, "Reload request received for member n1 and will be processed within 1 seconds\n")
	assert.Contains(t, out, "member n3")

	out, _ = h.mustRun(0, "", "flush", "demo", "n2", "restart", "--force")
	assert.Equal(t, "No scheduled restart for member n2\n", out)
	out, _ = h.mustRun(0, "", "flush", "demo", "switchover")
	assert.Equal(t, "No pending scheduled switchover\n", out)
	_, errOut = h.mustRun(2, "", "flush", "demo", "everything")
	assert.Contains(t, errOut, "the last argument must be restart or switchover")
}

func TestCmdReinit(t *testing.T) {
	saved := reinitPoll
	reinitPoll = 10 * time.Millisecond
	t.Cleanup(func() { reinitPoll = saved })
	var polls atomic.Int32
	reply := func(r request) (int, string) {
		switch r.Method + " " + r.Path {
		case "POST /reinitialize":
			if r.Body["force"] != true {
				return 503, "reinitialize already in progress"
			}
			return 200, "reinitialize started"
		case "GET /patroni":
			switch n := polls.Add(1); {
			case n == 1:
				return 200, `{"state":"running","postmaster_start_time":"A"}`
			case n < 4:
				return 200, `{"state":"creating replica"}`
			default:
				return 200, `{"state":"running","postmaster_start_time":"B"}`
			}
		}
		return 404, ""
	}
	h, ms := cluster3(t, reply)
	out, _ := h.mustRun(0, "", "reinit", "demo", "n2", "--force", "--wait")
	assert.Contains(t, out, "Success: reinitialize for member n2\nWaiting for reinitialize to complete on: n2\n")
	assert.Contains(t, out, "n2: creating replica\n")
	assert.True(t, strings.HasSuffix(out, "n2: running\nReinitialize is completed on: n2\n"), out)
	assert.Equal(t, map[string]any{"force": true, "from_leader": false}, ms[1].managementRequests()[0].Body)

	// Without --force: confirmation, then the offer to cancel the running action.
	out, errOut := h.mustRun(0, "y\ny\n", "reinit", "demo", "n3", "--from-leader")
	assert.Contains(t, errOut, "Do you want to cancel it and reinitialize anyway? [y/N]: ")
	assert.Contains(t, out, "Success: reinitialize for member n3\n")
	reqs := ms[2].managementRequests()
	require.Len(t, reqs, 2)
	assert.Equal(t, map[string]any{"force": true, "from_leader": true}, reqs[1].Body)

	_, errOut = h.mustRun(1, "", "reinit", "demo", "n1", "--force")
	assert.Contains(t, errOut, "member \"n1\" of cluster \"demo\" does not have role replica (with that role: n2, n3)")
	_, errOut = h.mustRun(2, "", "reinit", "demo", "--force")
	assert.Contains(t, errOut, "reinit needs CLUSTER and at least one MEMBER (replicas of demo: n2, n3)")
}

func TestCmdRemove(t *testing.T) {
	h, _ := cluster3(t, nil)
	_, errOut := h.mustRun(1, "demo\nYes I am aware\nn2\n", "remove", "demo")
	assert.Contains(t, errOut, "You did not specify the current leader of the cluster")
	_, errOut = h.mustRun(1, "demo\nyes\n", "remove", "demo")
	assert.Contains(t, errOut, `You did not exactly type "Yes I am aware"`)
	_, errOut = h.mustRun(1, "other\n", "remove", "demo")
	assert.Contains(t, errOut, "Cluster names specified do not match")
	h.mustRun(1, "demo\n", "remove", "demo")
	assert.False(t, h.store.wasDeleted())
	h.mustRun(2, "", "remove")

	out, errOut := h.mustRun(0, "demo\nYes I am aware\nn1\n", "remove", "demo")
	assert.Contains(t, out, "Cluster demo removed from the DCS\n")
	assert.Contains(t, errOut, "Please confirm the cluster name to remove: ")
	assert.Contains(t, errOut, "This cluster currently is healthy. Please specify the leader name to continue: ")
	assert.True(t, h.store.wasDeleted())
}

func TestCmdDsnHistoryVersion(t *testing.T) {
	h, _ := cluster3(t, replies(map[string]string{
		"GET /patroni": `200 {"state":"running","server_version":150004,"patroni":{"version":"0.9.0","scope":"demo","name":"x"}}`,
	}))
	out, _ := h.mustRun(0, "", "dsn")
	assert.Equal(t, "host=127.0.0.1 port=5432\n", out)
	out, _ = h.mustRun(0, "", "dsn", "-r", "replica")
	assert.Equal(t, "host=127.0.0.1 port=5433\n", out)
	out, _ = h.mustRun(0, "", "dsn", "demo", "-m", "n3")
	assert.Equal(t, "host=127.0.0.1 port=5434\n", out)
	h.mustRun(2, "", "dsn", "-r", "replica", "-m", "n3")
	_, errOut := h.mustRun(1, "", "dsn", "-m", "n9")
	assert.Contains(t, errOut, "(members: n1, n2, n3)")

	out, _ = h.mustRun(0, "", "history", "-f", "tsv")
	assert.Equal(t, "TL\tLSN\tReason\tTimestamp\tNew Leader\n1\t50331808\tno recovery target specified\t2024-05-01T10:00:00.123456+00:00\tn1\n", out)

	out, _ = h.mustRun(0, "", "version", "demo")
	assert.Equal(t, "tuskerctl version 1.2.3\n\nn1: tusker 0.9.0 PostgreSQL 15.4\nn2: tusker 0.9.0 PostgreSQL 15.4\nn3: tusker 0.9.0 PostgreSQL 15.4\n", out)
	out, _ = h.mustRun(0, "", "version", "demo", "n2")
	assert.Equal(t, "tuskerctl version 1.2.3\n\nn2: tusker 0.9.0 PostgreSQL 15.4\n", out)
}

func TestCmdQueryArguments(t *testing.T) {
	h, _ := cluster3(t, nil)
	_, errOut := h.mustRun(2, "", "query")
	assert.Contains(t, errOut, "query needs -c SQL or -f FILE")
	h.mustRun(2, "", "query", "-c", "select 1", "-f", "x.sql")
	h.mustRun(2, "", "query", "-c", "select 1", "-r", "replica", "-m", "n2")
	// -c and -d are query's own here; the global ones keep their long names or go first.
	_, errOut = h.mustRun(1, "", "--config-file", "/nonexistent.yml", "query", "-c", "select 1", "-d", "db")
	assert.Contains(t, errOut, "/nonexistent.yml")
	_, errOut = h.mustRun(1, "", "query", "--dcs-url", "exhibitor://h:8181", "-c", "select 1")
	assert.Contains(t, errOut, "exhibitor is not supported by tusker")
	// No postgres listens on the members' conn_urls: the connection error names the member.
	_, errOut = h.mustRun(1, "", "query", "-c", "select 1", "-U", "postgres")
	assert.Contains(t, errOut, "connecting to member n1")
}

func TestCmdCompletion(t *testing.T) {
	h, _ := cluster3(t, nil)
	out, _ := h.mustRun(0, "", "completion", "bash")
	assert.Contains(t, out, "bash completion")
	out, _ = h.mustRun(0, "", "__complete", "restart", "demo", "")
	assert.True(t, strings.HasPrefix(out, "n1\nn2\nn3\n:4\n"), out)
	out, _ = h.mustRun(0, "", "__complete", "switchover", "--candidate", "")
	assert.True(t, strings.HasPrefix(out, "n1\nn2\nn3\n:4\n"), out)
}

func TestMainExitCodeOnContextCancel(t *testing.T) {
	h, _ := cluster3(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	env := h.env
	var out strings.Builder
	env.Stdout = &out
	env.Environ = append(env.Environ, h.extra...)
	start := time.Now()
	code := Main(ctx, []string{"list", "-w", "0.01"}, env)
	assert.Equal(t, 0, code, "Ctrl-C ends a watch normally")
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Greater(t, strings.Count(out.String(), "+ Cluster: demo"), 1)
}
