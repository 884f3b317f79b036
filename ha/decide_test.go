package ha

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/dcs"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func settings() Settings {
	return Settings{TTL: 6 * time.Second, LoopWait: time.Second, RetryTimeout: 2 * time.Second,
		MaximumLagOnFailover: 1 << 20, UsePgRewind: true, Priority: 1, PrimaryStartTimeout: 300 * time.Second}
}

func str(s string) *string { return &s }
func boolp(b bool) *bool   { return &b }

func member(name, role string) dcs.Member {
	return dcs.Member{Name: name, Data: dcs.MemberData{Role: role, State: "running",
		ConnURL: "postgres://127.0.0.1:5432/postgres", APIURL: "http://127.0.0.1:8008/patroni"}}
}

// cluster builds a snapshot with an initialized cluster, the given leader ("" for none) and members.
func cluster(leader string, members ...dcs.Member) *dcs.Cluster {
	c := &dcs.Cluster{Initialize: str("7300000000000000001"), Members: members}
	if leader != "" {
		c.Leader = &dcs.Leader{Name: leader}
	}
	return c
}

func runningReplica(wal int64) Local {
	return Local{DataDir: DataDirValid, SysID: "7300000000000000001", Running: true, Ready: true, Timeline: 1, WALEnd: wal}
}

func runningPrimary(wal int64) Local {
	l := runningReplica(wal)
	l.Primary = true
	return l
}

func view(me string, c *dcs.Cluster, l Local) View {
	return View{Now: t0, Me: me, Settings: settings(), DCSOK: true, Cluster: c, Local: l}
}

func leaderView(me string, l Local) View {
	v := view(me, cluster(me, member(me, "primary"), member("b", "replica")), l)
	v.LeaseHeld, v.LeaseExpiry = true, t0.Add(5*time.Second)
	return v
}

func kinds(p Plan) []Kind {
	out := []Kind{}
	for _, a := range p.Actions {
		out = append(out, a.Kind)
	}
	return out
}

func TestRuleLeaseDeadlineFencesBeforeExpiry(t *testing.T) {
	v := leaderView("a", runningPrimary(100))
	v.LeaseExpiry = t0.Add(FenceMargin(v.Settings) / 2) // inside the margin
	p := Decide(v)
	require.Equal(t, []Kind{Fence, ReleaseLeader}, kinds(p), p.Reason)

	v.DCSOK = false // cannot even release: fence alone
	require.Equal(t, []Kind{Fence}, kinds(Decide(v)))

	v = leaderView("a", runningPrimary(100)) // well within the lease: no fence
	require.Equal(t, []Kind{RenewLeader}, kinds(Decide(v)))
}

func TestRuleDCSUnreachableLeaderKeepsRunningWhileLeaseValid(t *testing.T) {
	v := leaderView("a", runningPrimary(100))
	v.DCSOK = false
	p := Decide(v)
	require.Equal(t, []Kind{RenewLeader}, kinds(p), p.Reason)
	require.NotContains(t, kinds(p), Fence)
}

func TestRuleDCSUnreachableReplicaChangesNothing(t *testing.T) {
	v := view("b", cluster("", member("b", "replica")), runningReplica(100))
	v.DCSOK = false
	require.Empty(t, Decide(v).Actions)
}

func TestRuleOfflineKeepsPostgresRunningReadOnly(t *testing.T) {
	stopped := Local{DataDir: DataDirValid, SysID: "7300000000000000001", Timeline: 1, WasPrimary: true}
	v := view("a", cluster("a", member("a", "primary"), member("b", "replica")), stopped)
	v.DCSOK = false // the fence stopped this former leader: it comes back read-only, no upstream
	p := Decide(v)
	require.Equal(t, []Kind{StartReplica}, kinds(p), p.Reason)
	require.Empty(t, p.Actions[0].Upstream, "nobody to stream from while the store is away")
	require.Equal(t, t0.Add(OfflineRetry), p.WakeAt, "the store is asked again soon")

	v.Local = runningPrimary(100) // a primary without a lease (started during the outage)
	require.Equal(t, []Kind{Fence}, kinds(Decide(v)))

	for name, change := range map[string]func(*View){
		"pause":            func(v *View) { v.Settings.Pause = true },
		"action":           func(v *View) { v.Job = JobStart },
		"handover backoff": func(v *View) { v.RaceBackoffUntil = t0.Add(time.Second) },
		"empty":            func(v *View) { v.Local.DataDir = DataDirEmpty },
	} {
		v := view("a", cluster("a", member("a", "primary")), stopped)
		v.DCSOK = false
		change(&v)
		require.Empty(t, Decide(v).Actions, name)
	}
	v = view("a", cluster("a", member("a", "primary")), runningPrimary(100))
	v.DCSOK, v.Settings.Pause = false, true
	require.Empty(t, Decide(v).Actions, "pause leaves a primary alone")
}

func TestRuleFencedLeaderWhoseKeySurvivedResumes(t *testing.T) {
	// The store is back and the key still names this member (the lease outlived the outage on
	// the server): it takes the key back, then promotes its read-only server, with no race.
	ro := runningReplica(100)
	v := view("a", cluster("a", member("a", "replica"), member("b", "replica")), ro)
	p := Decide(v)
	require.Equal(t, []Kind{AcquireLeader}, kinds(p), p.Reason)
	v.LeaseHeld, v.LeaseExpiry = true, t0.Add(5*time.Second)
	p = Decide(v)
	require.Equal(t, []Kind{RenewLeader, Promote}, kinds(p), p.Reason)
	// The replicas meanwhile just follow it: nothing to check or rewind.
	r := view("b", cluster("a", member("a", "replica"), member("b", "replica")), ro)
	r.Local.Upstream = "a"
	require.Empty(t, Decide(r).Actions)
}

func TestRuleLostLeaderKeyVanishedIsTakenBack(t *testing.T) {
	v := leaderView("a", runningPrimary(100))
	v.Cluster.Leader = nil
	p := Decide(v)
	require.Equal(t, []Kind{AcquireLeader}, kinds(p), p.Reason)
	v.Settings.Pause = true
	require.NotContains(t, kinds(Decide(v)), Fence)
}

func TestRulePauseOldPrimaryOfASwitchoverRejoins(t *testing.T) {
	v := view("a", cluster("b", member("b", "primary")), Local{DataDir: DataDirValid, SysID: "7300000000000000001", WasPrimary: true})
	v.Settings.Pause = true
	require.Empty(t, kinds(Decide(v)))
	v.Local.HandedOver = true
	require.Equal(t, []Kind{ProbeRewind}, kinds(Decide(v)))
}

func TestRuleLostLeaderKeyFencesRunningPrimary(t *testing.T) {
	v := leaderView("a", runningPrimary(100))
	v.Cluster = cluster("b", member("a", "primary"), member("b", "primary"))
	require.Equal(t, []Kind{Fence}, kinds(Decide(v)))
}

func TestRuleActionInProgressLeaderOnlyRenews(t *testing.T) {
	v := leaderView("a", runningPrimary(100))
	v.Job = JobPromote
	require.Equal(t, []Kind{RenewLeader}, kinds(Decide(v)))

	r := view("b", cluster("a", member("a", "primary")), runningReplica(1))
	r.Job = JobClone
	require.Empty(t, Decide(r).Actions)
}

func TestRuleLostLockWhilePromotingFences(t *testing.T) {
	v := view("b", cluster("c"), runningReplica(1))
	v.Job = JobPromote
	require.Equal(t, []Kind{Fence}, kinds(Decide(v)))
}

func TestRuleBootstrapRace(t *testing.T) {
	empty := Local{DataDir: DataDirEmpty}
	v := view("a", &dcs.Cluster{}, empty)
	require.Equal(t, []Kind{Bootstrap}, kinds(Decide(v)))

	v.Settings.NoFailover = true
	require.Empty(t, Decide(v).Actions, "a nofailover member never bootstraps")

	v = view("a", &dcs.Cluster{Initialize: str("")}, empty)
	require.Empty(t, Decide(v).Actions, "someone else is bootstrapping")
}

func TestRuleCloneFromLeaderOrClonefromReplica(t *testing.T) {
	empty := Local{DataDir: DataDirEmpty}
	v := view("c", cluster("a", member("a", "primary"), member("b", "replica")), empty)
	p := Decide(v)
	require.Equal(t, []Action{{Kind: Clone, Upstream: "a"}}, p.Actions)

	b := member("b", "replica")
	b.Data.Tags = map[string]any{"clonefrom": true}
	v.Cluster = cluster("a", member("a", "primary"), b)
	require.Equal(t, []Action{{Kind: Clone, Upstream: "b"}}, Decide(v).Actions)
}

func TestRuleCloneWithoutLeader(t *testing.T) {
	empty := Local{DataDir: DataDirEmpty}
	v := view("c", &dcs.Cluster{Initialize: str("7301")}, empty)
	require.Empty(t, Decide(v).Actions, "no leader and no method that needs none: wait")
	v.Settings.CloneWithoutLeader = true
	require.Equal(t, []Action{{Kind: Clone}}, Decide(v).Actions, "a no_leader method restores from the backup")
	v.Cluster.Initialize = str("")
	require.Empty(t, Decide(v).Actions, "a bootstrap is in progress: its leader will come")
	v.Cluster = cluster("a", member("a", "primary"))
	v.Cluster.Initialize = str("7301")
	require.Equal(t, []Action{{Kind: Clone, Upstream: "a"}}, Decide(v).Actions, "with a leader, clone as usual")
}

func TestRuleInvalidDataDirectoryIsNeverTouched(t *testing.T) {
	v := view("a", &dcs.Cluster{}, Local{DataDir: DataDirInvalid})
	require.Empty(t, Decide(v).Actions)
	// One that cannot even be read says why, not "not a PostgreSQL data directory".
	v.Local.DataDirError = "reading the data directory: open /data: permission denied"
	p := Decide(v)
	require.Empty(t, p.Actions)
	require.Contains(t, p.Reason, "permission denied")
}

func TestRuleForeignDataDirectoryRefused(t *testing.T) {
	l := runningPrimary(100)
	l.SysID = "6999999999999999999"
	v := view("a", cluster("", member("a", "primary")), l)
	require.Equal(t, []Kind{RefuseForeignData}, kinds(Decide(v)))

	v = leaderView("a", l)
	require.Equal(t, []Kind{ReleaseLeader, RefuseForeignData}, kinds(Decide(v)))
}

func TestRuleHealthiestMemberRaces(t *testing.T) {
	base := func() View {
		v := view("b", cluster("", member("b", "replica"), member("c", "replica")), runningReplica(1000))
		v.PeersProbed = true
		return v
	}
	cases := []struct {
		name  string
		edit  func(*View)
		races bool
	}{
		{"most advanced wins", func(v *View) { v.Peers = []Peer{{Name: "c", Reachable: true, WALEnd: 900, Priority: 1}} }, true},
		{"a peer ahead wins instead", func(v *View) { v.Peers = []Peer{{Name: "c", Reachable: true, WALEnd: 1100, Priority: 1}} }, false},
		{"an unreachable peer does not count", func(v *View) { v.Peers = []Peer{{Name: "c", WALEnd: 5000}} }, true},
		{"a nofailover peer ahead does not block", func(v *View) {
			v.Peers = []Peer{{Name: "c", Reachable: true, WALEnd: 5000, NoFailover: true}}
		}, true},
		{"a live primary blocks", func(v *View) { v.Peers = []Peer{{Name: "a", Reachable: true, Primary: true, WALEnd: 1}} }, false},
		{"equal WAL, higher priority wins", func(v *View) { v.Peers = []Peer{{Name: "c", Reachable: true, WALEnd: 1000, Priority: 2}} }, false},
		{"equal WAL, equal priority both race", func(v *View) { v.Peers = []Peer{{Name: "c", Reachable: true, WALEnd: 1000, Priority: 1}} }, true},
		{"nofailover never races", func(v *View) { v.Settings.NoFailover = true }, false},
		{"lag beyond maximum_lag_on_failover", func(v *View) { v.Cluster.Status.Optime = 1000 + 2<<20 }, false},
		{"lag within maximum_lag_on_failover", func(v *View) { v.Cluster.Status.Optime = 1000 + 1<<19 }, true},
		{"not probed yet", func(v *View) { v.PeersProbed = false }, false},
		{"postgres not ready", func(v *View) { v.Local.Ready = false }, false},
		{"watchdog required but unusable", func(v *View) { v.Settings.WatchdogRequired = true }, false},
		{"watchdog required and usable", func(v *View) { v.Settings.WatchdogRequired, v.Local.WatchdogUsable = true, true }, true},
		{"a peer whose required watchdog failed does not block", func(v *View) {
			v.Peers = []Peer{{Name: "c", Reachable: true, WALEnd: 5000, WatchdogFailed: true}}
		}, true},
		{"backing off after a failed pre_promote", func(v *View) { v.RaceBackoffUntil = t0.Add(time.Second) }, false},
		{"primary_race_backoff: WAL still moving", func(v *View) {
			v.Settings.PrimaryRaceBackoff = 2 * time.Second
			v.Local.WALChangedAt = t0.Add(-time.Second)
		}, false},
		{"primary_race_backoff: WAL settled", func(v *View) {
			v.Settings.PrimaryRaceBackoff = 2 * time.Second
			v.Local.WALChangedAt = t0.Add(-3 * time.Second)
		}, true},
		{"failsafe mode: not in the failsafe key", func(v *View) {
			v.Settings.FailsafeMode = true
			v.Cluster.Failsafe = map[string]string{"a": "x", "c": "y"}
		}, false},
		{"failsafe mode: in the failsafe key", func(v *View) {
			v.Settings.FailsafeMode = true
			v.Cluster.Failsafe = map[string]string{"a": "x", "b": "y"}
		}, true},
		{"failsafe: a primary confirmed itself recently", func(v *View) { v.FailsafeLeader = "a" }, false},
		{"pause: replicas never race", func(v *View) { v.Settings.Pause = true }, false},
		{"check_timeline refuses an old timeline", func(v *View) {
			v.Settings.CheckTimeline = true
			v.Cluster.History = []dcs.HistoryEntry{{Timeline: 1, LSN: 500}}
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := base()
			tc.edit(&v)
			p := Decide(v)
			require.Equal(t, tc.races, p.Has(AcquireLeader), p.Reason)
		})
	}
}

func TestRuleRaceWinnerPromotesInTheSameCycle(t *testing.T) {
	v := view("b", cluster("", member("b", "replica")), runningReplica(1000))
	v.PeersProbed = true
	require.Equal(t, []Kind{AcquireLeader, Promote}, kinds(Decide(v)))
}

func TestRulePromoteWhenHoldingTheLock(t *testing.T) {
	v := leaderView("b", runningReplica(100))
	require.Equal(t, []Kind{RenewLeader, Promote}, kinds(Decide(v)))
}

func TestRuleDemotePrimaryWhenAnotherMemberLeads(t *testing.T) {
	v := view("a", cluster("b", member("b", "primary")), runningPrimary(100))
	require.Equal(t, []Kind{Demote}, kinds(Decide(v)))
}

func TestRuleStalePrimaryNeverRetakesTheLock(t *testing.T) {
	v := view("a", cluster("", member("a", "primary")), runningPrimary(100))
	v.Cluster.History = []dcs.HistoryEntry{{Timeline: 1, LSN: 50, NewLeader: "b"}}
	require.Equal(t, []Kind{Demote}, kinds(Decide(v)))

	v.Local.Timeline = 2
	require.Equal(t, []Kind{AcquireLeader}, kinds(Decide(v)))
}

func TestRuleReplicaFollowsTheLeader(t *testing.T) {
	v := view("b", cluster("a", member("a", "primary")), runningReplica(100))
	require.Equal(t, []Action{{Kind: Follow, Upstream: "a"}}, Decide(v).Actions)
	v.Local.Upstream = "a"
	require.Empty(t, Decide(v).Actions)
}

func TestRuleRestartedTuskerTakesBackItsOwnKey(t *testing.T) {
	v := view("a", cluster("a", member("a", "primary")), runningPrimary(100))
	require.Equal(t, []Kind{AcquireLeader}, kinds(Decide(v)))
}

func TestRuleStoppedLeaderRestartsAsPrimary(t *testing.T) {
	l := Local{DataDir: DataDirValid, SysID: "7300000000000000001", WasPrimary: true}
	v := leaderView("a", l)
	require.Equal(t, []Kind{RenewLeader, StartPrimary}, kinds(Decide(v)))
	v.Local.WasPrimary = false
	require.Equal(t, []Kind{ReleaseLeader}, kinds(Decide(v)))
}

func TestRuleRejoinNeverStreamsOnADivergedTimeline(t *testing.T) {
	stopped := Local{DataDir: DataDirValid, SysID: "7300000000000000001", WasPrimary: true, CanRewind: true}
	base := func() View { return view("a", cluster("b", member("b", "primary")), stopped) }
	cases := []struct {
		name string
		edit func(*View)
		want []Action
	}{
		{"unknown: probe first", func(v *View) {}, []Action{{Kind: ProbeRewind, Upstream: "b"}}},
		{"not diverged: start as replica", func(v *View) { v.Local.Diverged = boolp(false) },
			[]Action{{Kind: StartReplica, Upstream: "b"}}},
		{"diverged: rewind", func(v *View) { v.Local.Diverged = boolp(true) }, []Action{{Kind: Rewind, Upstream: "b"}}},
		{"diverged, rewind impossible, no reclone: wait", func(v *View) {
			v.Local.Diverged, v.Local.CanRewind = boolp(true), false
		}, nil},
		{"diverged, use_pg_rewind off, reclone allowed", func(v *View) {
			v.Local.Diverged, v.Settings.UsePgRewind, v.Settings.RemoveOnDivergedTimelines = boolp(true), false, true
		}, []Action{{Kind: Reclone, Upstream: "b"}}},
		{"rewind failed, reclone allowed", func(v *View) {
			v.Local.Diverged, v.Local.RewindFailed, v.Settings.RemoveOnRewindFailure = boolp(true), true, true
		}, []Action{{Kind: Reclone, Upstream: "b"}}},
		{"rewind failed, reclone not allowed: wait", func(v *View) {
			v.Local.Diverged, v.Local.RewindFailed = boolp(true), true
		}, nil},
		{"leader has not checkpointed after promote: wait", func(v *View) {
			m := member("b", "primary")
			m.Data.CheckpointAfterPromote = boolp(false)
			v.Cluster = cluster("b", m)
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := base()
			tc.edit(&v)
			p := Decide(v)
			if tc.want == nil {
				require.Empty(t, p.Actions, p.Reason)
			} else {
				require.Equal(t, tc.want, p.Actions, p.Reason)
			}
		})
	}
}

func TestRuleNoLeaderStoppedMemberStartsReadOnly(t *testing.T) {
	l := Local{DataDir: DataDirValid, SysID: "7300000000000000001", WasPrimary: true}
	v := view("a", cluster("", member("a", "primary")), l)
	require.Equal(t, []Action{{Kind: StartReplica}}, Decide(v).Actions)
}

func TestRuleExistingDataWithoutInitializeIsClaimed(t *testing.T) {
	l := Local{DataDir: DataDirValid, SysID: "7300000000000000001", WasPrimary: true}
	v := view("a", &dcs.Cluster{}, l)
	require.Equal(t, []Kind{ClaimInitialize}, kinds(Decide(v)))
}

// withWAL gives a member key WAL positions, as a running replica publishes them.
func withWAL(m dcs.Member, wal int64) dcs.Member {
	m.Data.XLogLocation = &wal
	return m
}

func stoppedPrimary() Local {
	return Local{DataDir: DataDirValid, SysID: "7300000000000000001", WasPrimary: true, Timeline: 1}
}

func TestRulePrimaryStartTimeout(t *testing.T) {
	stopped := func(pst time.Duration, downFor time.Duration, replica dcs.Member) View {
		v := view("a", cluster("a", member("a", "primary"), replica), stoppedPrimary())
		v.LeaseHeld, v.LeaseExpiry = true, t0.Add(5*time.Second)
		v.Settings.PrimaryStartTimeout = pst
		v.Local.DownSince = t0.Add(-downFor)
		return v
	}
	healthy := withWAL(member("b", "replica"), 100)

	p := Decide(stopped(0, 0, healthy))
	require.Equal(t, []Kind{ReleaseLeader}, kinds(p), "primary_start_timeout 0: hand over at once: %s", p.Reason)

	p = Decide(stopped(30*time.Second, time.Second, healthy))
	require.Equal(t, []Kind{RenewLeader, StartPrimary}, kinds(p), "within the timeout: restart it")

	p = Decide(stopped(30*time.Second, 31*time.Second, healthy))
	require.Equal(t, []Kind{ReleaseLeader}, kinds(p), "past the timeout: hand over")

	nofailover := healthy
	nofailover.Data.Tags = map[string]any{"nofailover": true}
	p = Decide(stopped(0, time.Hour, nofailover))
	require.Equal(t, []Kind{RenewLeader, StartPrimary}, kinds(p), "nobody can take over: keep restarting")

	lagging := stopped(0, time.Hour, healthy)
	lagging.Cluster.Status.Optime = 100 + 2<<20
	require.Equal(t, []Kind{RenewLeader, StartPrimary}, kinds(Decide(lagging)), "the only replica lags too much")

	// The start is in progress and takes too long: cancel it, fence, release.
	v := stopped(30*time.Second, 31*time.Second, healthy)
	v.Job = JobStart
	require.Equal(t, []Kind{CancelAction, Fence, ReleaseLeader}, kinds(Decide(v)))
	v.Local.DownSince = t0.Add(-time.Second)
	require.Equal(t, []Kind{RenewLeader}, kinds(Decide(v)))
}

func TestRuleCrashHandoverWaitsForANewLeader(t *testing.T) {
	v := view("a", cluster("", member("a", "primary"), member("b", "replica")), stoppedPrimary())
	v.RaceBackoffUntil = t0.Add(time.Second)
	require.Empty(t, kinds(Decide(v)), "stays down so that it does not outrun the replicas")
	v.RaceBackoffUntil = t0.Add(-time.Second)
	require.Equal(t, []Kind{StartReplica}, kinds(Decide(v)), "nobody took over: join the race")
}

func TestRulePause(t *testing.T) {
	paused := func(v View) View { v.Settings.Pause = true; return v }

	v := paused(leaderView("a", runningPrimary(100)))
	v.LeaseExpiry = t0 // lease ran out
	require.Equal(t, []Kind{RenewLeader}, kinds(Decide(v)), "pause: a lease problem never fences")
	v.DCSOK = false
	require.Empty(t, kinds(Decide(v)))

	v = paused(view("a", cluster("a", member("a", "primary"), member("b", "replica")), stoppedPrimary()))
	v.LeaseHeld, v.LeaseExpiry = true, t0.Add(5*time.Second)
	v.Settings.PrimaryStartTimeout = 0
	require.Equal(t, []Kind{ReleaseLeader}, kinds(Decide(v)), "pause: a stopped leader releases the key and does not start postgres")

	v = paused(view("b", cluster("a", member("a", "primary")), Local{DataDir: DataDirValid, SysID: "7300000000000000001"}))
	require.Empty(t, kinds(Decide(v)), "pause: a stopped replica stays stopped")

	v = paused(view("b", cluster("a", member("a", "primary")), Local{}))
	require.Empty(t, kinds(Decide(v)), "pause: no automatic clone")

	v = paused(view("b", cluster("a", member("a", "primary")), runningPrimary(100)))
	require.Empty(t, kinds(Decide(v)), "pause: a second primary is not demoted")

	v = paused(view("b", cluster("", member("b", "replica")), runningReplica(100)))
	v.PeersProbed = true
	require.Empty(t, kinds(Decide(v)), "pause: no automatic promotion")

	v.Cluster.Failover = &dcs.Failover{Member: "b"}
	require.Equal(t, []Kind{AcquireLeader, Promote, ClearFailover}, kinds(Decide(v)), "pause: a manual failover still works")

	v = paused(view("b", cluster("", member("b", "primary")), runningPrimary(100)))
	require.Equal(t, []Kind{AcquireLeader}, kinds(Decide(v)), "pause: a running primary takes a free lock")

	v = paused(leaderView("b", runningReplica(100)))
	require.Equal(t, []Kind{ReleaseLeader}, kinds(Decide(v)), "pause: a leader that is not primary gives the key up")
}

func probed(v View, peers ...Peer) View {
	v.PeersProbed, v.Peers = true, peers
	return v
}

func TestRuleSwitchoverOnTheLeader(t *testing.T) {
	sw := func(f dcs.Failover, peers ...Peer) View {
		v := leaderView("a", runningPrimary(1000))
		v.Cluster.Failover = &f
		return probed(v, peers...)
	}
	good := Peer{Name: "b", Reachable: true, WALEnd: 1000, Priority: 1}

	p := Decide(sw(dcs.Failover{Leader: "a", Member: "b"}, good))
	require.Equal(t, []Action{act(RenewLeader), actOn(Handover, "b")}, p.Actions, p.Reason)

	p = Decide(sw(dcs.Failover{Leader: "a"}, Peer{Name: "c", Reachable: true, WALEnd: 900}, good))
	require.Equal(t, []Action{act(RenewLeader), actOn(Handover, "b")}, p.Actions, "no candidate: the most advanced")

	p = Decide(sw(dcs.Failover{Member: "b"}, good))
	require.Equal(t, actOn(Handover, "b"), p.Actions[1], "a failover with a live leader is a switchover")

	for name, tc := range map[string]struct {
		f    dcs.Failover
		peer Peer
		why  string
	}{
		"unreachable":   {dcs.Failover{Leader: "a", Member: "b"}, Peer{Name: "b"}, "b is not reachable"},
		"nofailover":    {dcs.Failover{Leader: "a", Member: "b"}, Peer{Name: "b", Reachable: true, NoFailover: true}, "not allowed to promote"},
		"watchdog":      {dcs.Failover{Leader: "a", Member: "b"}, Peer{Name: "b", Reachable: true, WatchdogFailed: true}, "not watchdog capable"},
		"unknown":       {dcs.Failover{Leader: "a", Member: "zz"}, good, "candidate zz does not exist"},
		"other leader":  {dcs.Failover{Leader: "x", Member: "b"}, good, "names x as the leader"},
		"nobody at all": {dcs.Failover{Leader: "a"}, Peer{Name: "b"}, "b is not reachable"},
	} {
		p := Decide(sw(tc.f, tc.peer))
		require.Equal(t, []Kind{RenewLeader, ClearFailover}, kinds(p), name)
		require.Contains(t, p.Reason, tc.why, name)
	}

	at := t0.Add(time.Minute)
	p = Decide(sw(dcs.Failover{Leader: "a", Member: "b", ScheduledAt: &at}, good))
	require.Equal(t, []Kind{RenewLeader}, kinds(p))
	require.Equal(t, at, p.WakeAt, "wake up exactly at the scheduled time")

	at = t0.Add(-time.Minute)
	p = Decide(sw(dcs.Failover{Leader: "a", Member: "b", ScheduledAt: &at}, good))
	require.Equal(t, []Kind{RenewLeader, ClearFailover}, kinds(p), "stale: %s", p.Reason)

	at = t0.Add(-500 * time.Millisecond)
	p = Decide(sw(dcs.Failover{Leader: "a", Member: "b", ScheduledAt: &at}, good))
	require.Equal(t, actOn(Handover, "b"), p.Actions[1], "due")

	v := sw(dcs.Failover{Leader: "a", Member: "b"}, good)
	v.PeersProbed = false
	require.Equal(t, []Kind{RenewLeader}, kinds(Decide(v)), "probe before deciding")

	at = t0.Add(-500 * time.Millisecond)
	v = sw(dcs.Failover{Leader: "a", Member: "b", ScheduledAt: &at}, good)
	v.Settings.Pause = true
	require.Equal(t, []Kind{RenewLeader}, kinds(Decide(v)), "pause: scheduled switchovers wait")
}

func TestRuleSwitchoverCandidateTakesOver(t *testing.T) {
	noLeader := func(me string, f dcs.Failover, wal int64, peers ...Peer) View {
		c := cluster("", member("a", "primary"), member("b", "replica"), member("c", "replica"))
		c.Failover = &f
		c.Status.Optime = 1000
		return probed(view(me, c, runningReplica(wal)), peers...)
	}
	sw := dcs.Failover{Leader: "a", Member: "b"}

	p := Decide(noLeader("b", sw, 1000))
	require.Equal(t, []Kind{AcquireLeader, Promote, ClearFailover}, kinds(p), p.Reason)

	p = Decide(noLeader("b", sw, 900, Peer{Name: "c", Reachable: true, WALEnd: 1000}))
	require.Equal(t, []Action{{Kind: Follow, Upstream: "c", FastForward: true}}, p.Actions,
		"a candidate short of the old primary's final position catches up from c first: %s", p.Reason)
	p = Decide(noLeader("c", sw, 1000, Peer{Name: "b", Reachable: true, WALEnd: 900}))
	require.Empty(t, kinds(p), "meanwhile c, which has the WAL, waits for the candidate: %s", p.Reason)
	p = Decide(noLeader("b", sw, 900, Peer{Name: "c", Reachable: true, WALEnd: 900}))
	require.Equal(t, []Kind{AcquireLeader, Promote, ClearFailover}, kinds(p), "nobody has the final position: the normal race (c races too)")

	p = Decide(noLeader("c", sw, 1000, Peer{Name: "b", Reachable: true, WALEnd: 1000}))
	require.Empty(t, kinds(p), "others wait for a healthy candidate")
	require.Contains(t, p.Reason, "waiting for the failover candidate b")

	p = Decide(noLeader("c", sw, 800, Peer{Name: "b", Reachable: true, WALEnd: 800}))
	require.Equal(t, []Kind{AcquireLeader, Promote, ClearFailover}, kinds(p), "a candidate that is behind and cannot catch up: the normal race")

	p = Decide(noLeader("c", sw, 1000, Peer{Name: "b"}))
	require.Equal(t, []Kind{AcquireLeader, Promote, ClearFailover}, kinds(p), "an unreachable candidate: the normal race")

	p = Decide(noLeader("a", sw, 1000))
	require.Empty(t, kinds(p), "the former leader does not race")

	failover := dcs.Failover{Member: "b"}
	p = Decide(noLeader("b", failover, 10))
	require.Equal(t, []Kind{AcquireLeader, Promote, ClearFailover}, kinds(p), "a manual failover without a leader ignores lag")

	v := noLeader("b", sw, 1000)
	v.Settings.NoFailover = true
	require.Empty(t, kinds(Decide(v)))

	future := t0.Add(time.Hour)
	p = Decide(noLeader("c", dcs.Failover{Leader: "a", Member: "b", ScheduledAt: &future}, 1000, Peer{Name: "b", Reachable: true, WALEnd: 1000}))
	require.Equal(t, []Kind{AcquireLeader, Promote, ClearFailover}, kinds(p), "a future request is not in force yet")
}

func TestRuleFailsafe(t *testing.T) {
	v := leaderView("a", runningPrimary(100))
	v.DCSOK = false
	v.LeaseExpiry = t0
	v.Settings.FailsafeMode = true
	require.Equal(t, []Kind{Fence}, kinds(Decide(v)), "failsafe without every member's confirmation fences")
	v.FailsafeConfirmed = true
	p := Decide(v)
	require.Empty(t, kinds(p), "every member confirmed: stays primary")
	require.Contains(t, p.Reason, "failsafe")
	v.Settings.FailsafeMode = false
	require.Equal(t, []Kind{Fence}, kinds(Decide(v)), "confirmations count only in failsafe mode")

	// Reads work, renewals do not (a cut that lets some requests through): the confirmations
	// count the same.
	v = leaderView("a", runningPrimary(100))
	v.LeaseExpiry = t0
	v.Settings.FailsafeMode = true
	v.RenewFailed = true
	v.FailsafeConfirmed = true
	p = Decide(v)
	require.Empty(t, kinds(p), "renewals fail, every member confirmed: stays primary (%s)", p.Reason)
	v.RenewFailed = false
	require.Equal(t, []Kind{Fence, ReleaseLeader}, kinds(Decide(v)),
		"the store renews (or was never asked): a confirmation does not stand in for the lease")
}

func TestRuleFailsafeConfirmationNeeded(t *testing.T) {
	base := func() View {
		v := leaderView("a", runningPrimary(100))
		v.Settings.FailsafeMode = true
		return v
	}
	v := base()
	require.False(t, FailsafeConfirmationNeeded(v), "the store reads and renews: the lease is enough")
	v.DCSOK = false
	require.True(t, FailsafeConfirmationNeeded(v), "the store is unreachable")
	v = base()
	v.RenewFailed = true
	require.True(t, FailsafeConfirmationNeeded(v), "reads work, renewals time out")
	v.Settings.FailsafeMode = false
	require.False(t, FailsafeConfirmationNeeded(v), "only in failsafe mode")
	v = base()
	v.RenewFailed, v.LeaseHeld = true, false
	require.False(t, FailsafeConfirmationNeeded(v), "without the lease there is nothing to confirm")
	v = base()
	v.RenewFailed, v.Local.Primary = true, false
	require.False(t, FailsafeConfirmationNeeded(v), "only a running primary asks")
}

func TestRuleWatchdogRequiredNeverBootstraps(t *testing.T) {
	v := view("a", &dcs.Cluster{}, Local{})
	v.Settings.WatchdogRequired = true
	require.Empty(t, kinds(Decide(v)))
	v.Local.WatchdogUsable = true
	require.Equal(t, []Kind{Bootstrap}, kinds(Decide(v)))
}

func TestRuleFastForward(t *testing.T) {
	race := func(me string, prio int, wal int64, peers ...Peer) View {
		v := probed(view(me, cluster("", member("b", "replica"), member("c", "replica")), runningReplica(wal)), peers...)
		v.Settings.Priority = prio
		return v
	}
	// b is preferred (priority 2) but behind c.
	p := Decide(race("b", 2, 900, Peer{Name: "c", Reachable: true, WALEnd: 1000, Priority: 1}))
	require.Equal(t, []Action{{Kind: Follow, Upstream: "c", FastForward: true}}, p.Actions, p.Reason)

	v := race("b", 2, 950, Peer{Name: "c", Reachable: true, WALEnd: 1000, Priority: 1})
	v.Local.Upstream = "c"
	p = Decide(v)
	require.Empty(t, kinds(p), "catching up: %s", p.Reason)

	p = Decide(race("b", 2, 1000, Peer{Name: "c", Reachable: true, WALEnd: 1000, Priority: 1}))
	require.Equal(t, []Kind{AcquireLeader, Promote}, kinds(p), "caught up: promote")

	p = Decide(race("c", 1, 1000, Peer{Name: "b", Reachable: true, WALEnd: 900, Priority: 2}))
	require.Empty(t, kinds(p), "the more advanced c defers to the preferred b: %s", p.Reason)
	require.Contains(t, p.Reason, "higher failover_priority")

	v = race("c", 1, 1000+2<<20, Peer{Name: "b", Reachable: true, WALEnd: 900, Priority: 2})
	v.Cluster.Status.Optime = 1000 + 2<<20
	require.Equal(t, []Kind{AcquireLeader, Promote}, kinds(Decide(v)), "a preferred member beyond maximum_lag_on_failover is not waited for")

	p = Decide(race("b", 2, 900, Peer{Name: "c", Reachable: true, WALEnd: 1000, Priority: 2}))
	require.Empty(t, kinds(p), "equal priority: no fast-forward, the most advanced wins")
}

// TestNeedPeersSwitchoverCandidateBehind is the regression test of a deadlock the nemesis found
// (seed 2, mode off): the switchover candidate's postgres crashed just before the request, so it
// came back short of the old primary's final position. It did not probe its peers (a candidate
// "takes over at once"), so it could neither fast-forward nor race, while the others waited for
// it and the former leader did not race: no primary, forever.
func TestNeedPeersSwitchoverCandidateBehind(t *testing.T) {
	noLeader := func(me string, f *dcs.Failover, wal int64) View {
		c := cluster("", member("a", "replica"), member("b", "replica"), member("c", "replica"))
		c.Failover = f
		c.Status.Optime = 1000
		return view(me, c, runningReplica(wal))
	}
	sw := &dcs.Failover{Leader: "a", Member: "b"}
	require.False(t, needPeers(noLeader("b", sw, 1000), "b", t0), "a candidate with the final position takes over without asking")
	require.True(t, needPeers(noLeader("b", sw, 900), "b", t0), "a candidate short of it needs its peers to catch up or race")
	require.True(t, needPeers(noLeader("c", sw, 1000), "c", t0), "the others check on the candidate")
	require.True(t, needPeers(noLeader("b", nil, 900), "b", t0), "no request: the normal race")
	require.False(t, needPeers(noLeader("b", &dcs.Failover{Member: "b"}, 10), "b", t0), "a manual failover ignores lag")

	v := noLeader("b", sw, 900)
	v.DCSOK = false
	require.False(t, needPeers(v, "b", t0), "without the DCS there is no race")
	v = noLeader("b", nil, 900)
	v.Job = JobRestart
	require.False(t, needPeers(v, "b", t0), "busy")
	v = noLeader("b", nil, 900)
	v.Settings.Pause = true
	require.False(t, needPeers(v, "b", t0), "paused, no request: nobody races")

	l := leaderView("a", runningPrimary(1000))
	require.False(t, needPeers(l, "a", t0), "a leader without a request")
	l.Cluster.Failover = &dcs.Failover{Leader: "a", Member: "b"}
	require.True(t, needPeers(l, "a", t0), "a leader with a due switchover checks the candidates")
	later := t0.Add(time.Minute)
	l.Cluster.Failover = &dcs.Failover{Leader: "a", Member: "b", ScheduledAt: &later}
	require.False(t, needPeers(l, "a", t0), "not due yet")
	l = leaderView("a", runningReplica(1000))
	l.Cluster.Failover = &dcs.Failover{Leader: "a", Member: "b"}
	require.False(t, needPeers(l, "a", t0), "a leader that is no primary outside a standby cluster hands nothing over")
	l.Settings.StandbyCluster = true
	require.True(t, needPeers(l, "a", t0), "the standby leader checks the candidates of its switchover")
	l.Settings.Pause = true
	require.False(t, needPeers(l, "a", t0), "paused: the standby leader leaves the request alone")

	// With its peers, the candidate that is behind fast-forwards from the one that is ahead.
	p := Decide(probed(noLeader("b", sw, 900), Peer{Name: "c", Reachable: true, WALEnd: 1000}))
	require.Equal(t, []Action{{Kind: Follow, Upstream: "c", FastForward: true}}, p.Actions, p.Reason)
}

// TestMemberMemoryAfterDCSOutage is the regression test of a lost-writes race the nemesis found
// (seed 2, mode off, a DCS outage longer than ttl): every member key expired, and the first
// replica to read the DCS again saw nobody else, raced and won although the other replica was
// 100 kB ahead of it (and was rewound). Members that vanished from the DCS are still asked
// before a race for 2*ttl of reachable DCS.
func TestMemberMemoryAfterDCSOutage(t *testing.T) {
	var mm memberMemory
	keep := 12 * time.Second
	mm.update(cluster("a", member("a", "primary"), member("b", "replica"), member("c", "replica")), t0, keep)

	// The outage: no reads for a minute. The first read after it has only b's key.
	after := cluster("", member("b", "replica"))
	mm.update(after, t0.Add(time.Minute), keep)
	names := func() []string {
		var out []string
		for _, m := range mm.withAbsent(after) {
			out = append(out, m.Name)
		}
		slices.Sort(out)
		return out
	}
	require.Equal(t, []string{"a", "b", "c"}, names(), "a and c are still asked: their keys expired while nobody could renew them")
	mm.update(after, t0.Add(time.Minute+keep), keep)
	require.Equal(t, []string{"a", "b", "c"}, names())
	mm.update(after, t0.Add(time.Minute+keep+time.Second), keep)
	require.Equal(t, []string{"b"}, names(), "absent for longer than keep with the DCS reachable: forgotten")

	// The race: b sees c (absent from the DCS, reachable, ahead) and does not take the lock.
	v := probed(view("b", after, runningReplica(900)), Peer{Name: "c", Reachable: true, WALEnd: 1000})
	p := Decide(v)
	require.Empty(t, kinds(p), "c is ahead: %s", p.Reason)
	require.Contains(t, p.Reason, "c is ahead")
	// ... and does not try to stream from it before its key says where it is.
	_, ok := fastForward(v)
	require.False(t, ok)
}

// TestRuleStalledReplicaOnOldTimelineIsChecked is the regression test of a replica stuck forever
// that the nemesis found (strict mode, a DCS outage): the asynchronous replica had received WAL
// from the old primary past the point where the promoted synchronous standby's timeline forked
// off, so it could never stream from the new leader, and nothing checked it while it ran.
func TestRuleStalledReplicaOnOldTimelineIsChecked(t *testing.T) {
	stalled := func(since time.Duration, leaderTL int) View {
		lm := member("a", "primary")
		lm.Data.Timeline = leaderTL
		l := runningReplica(1000)
		l.Timeline, l.Upstream = 10, "a"
		if since > 0 {
			l.StalledSince = t0.Add(-since)
		}
		return view("b", cluster("a", lm, member("b", "replica")), l)
	}
	p := Decide(stalled(7*time.Second, 11))
	require.Equal(t, []Kind{StopReplica}, kinds(p), p.Reason)
	require.Contains(t, p.Reason, "timeline 11 while this replica is on 10")

	require.Empty(t, kinds(Decide(stalled(0, 11))), "streaming")
	require.Empty(t, kinds(Decide(stalled(5*time.Second, 11))), "not for ttl yet: a replica that did not diverge streams within a second")
	require.Empty(t, kinds(Decide(stalled(time.Minute, 10))), "same timeline: the leader is unreachable, which a restart does not cure")
	v := stalled(time.Minute, 11)
	v.Settings.Pause = true
	require.Empty(t, kinds(Decide(v)), "pause: nothing is stopped")

	// Stopped, the rejoin rule checks it against the leader, and rewinds it if it diverged.
	l := Local{DataDir: DataDirValid, SysID: "7300000000000000001", Timeline: 10, CanRewind: true}
	c := stalled(0, 11).Cluster
	p = Decide(view("b", c, l))
	require.Equal(t, []Action{{Kind: ProbeRewind, Upstream: "a"}}, p.Actions, p.Reason)
	l.Diverged = boolp(true)
	p = Decide(view("b", c, l))
	require.Equal(t, []Action{{Kind: Rewind, Upstream: "a"}}, p.Actions, p.Reason)
}

func TestRuleFenceGraceEndsBeforeTheDeadline(t *testing.T) {
	v := leaderView("a", runningPrimary(100))
	m := FenceMargin(v.Settings)
	v.LeaseExpiry = t0.Add(m) // the lease-deadline rule fires now
	require.Equal(t, m/2, FenceGrace(v, t0), "fast shutdown until half the margin before the deadline")
	require.Zero(t, FenceGrace(v, t0.Add(m)), "past that point: immediate")
	v.Cluster.Leader = &dcs.Leader{Name: "b"}
	require.Zero(t, FenceGrace(v, t0), "another member holds the key: immediate")
	v = leaderView("a", runningPrimary(100))
	v.LeaseHeld = false
	require.Zero(t, FenceGrace(v, t0), "no lease: immediate")
}

func TestRuleHoldsLockWhileTakingAVanishedKeyBack(t *testing.T) {
	require.True(t, HoldsLock(true, "a", "a"))
	require.True(t, HoldsLock(true, "", "a"), "the key vanished; the lease still counts: still the leader")
	require.False(t, HoldsLock(true, "b", "a"), "another member holds the key")
	require.False(t, HoldsLock(false, "a", "a"), "no lease")
	require.False(t, HoldsLock(false, "", "a"))
}

// Rule failsafe-extend: a confirmation round that succeeded extends the lease from its start,
// first thing in the plan, and the rest of the plan sees the extended lease.
func TestRuleFailsafeExtend(t *testing.T) {
	v := leaderView("a", runningPrimary(100))
	v.DCSOK = false
	v.LeaseExpiry = v.Now
	v.Settings.FailsafeMode = true
	v.FailsafeConfirmed, v.FailsafeConfirmedAt = true, v.Now.Add(-time.Second)
	require.True(t, FailsafeExtendsLease(v))
	p := Decide(v)
	require.Equal(t, []Kind{ExtendLease, RenewLeader}, kinds(p), "extended, then renewed as usual (%s)", p.Reason)

	// Reads work, renewals time out: the same.
	v.DCSOK, v.RenewFailed = true, true
	p = Decide(v)
	require.Equal(t, ExtendLease, p.Actions[0].Kind, p.Reason)
	require.NotContains(t, kinds(p), Fence)

	for name, mod := range map[string]func(*View){
		"not confirmed":     func(v *View) { v.FailsafeConfirmed = false },
		"not failsafe mode": func(v *View) { v.Settings.FailsafeMode = false },
		"no lease":          func(v *View) { v.LeaseHeld = false },
		"the store renews":  func(v *View) { v.DCSOK, v.RenewFailed = true, false },
	} {
		w := leaderView("a", runningPrimary(100))
		w.DCSOK = false
		w.Settings.FailsafeMode = true
		w.FailsafeConfirmed, w.FailsafeConfirmedAt = true, w.Now
		mod(&w)
		require.NotContains(t, kinds(Decide(w)), ExtendLease, name)
	}
}

// TestRuleStandbyLeader: the lock holder of a standby cluster replicates from the remote primary
// and is never promoted; a primary there is demoted to a standby leader; removing
// standby_cluster (promote-cluster) promotes it.
func TestRuleStandbyLeader(t *testing.T) {
	l := runningReplica(100)
	v := leaderView("a", l)
	v.Settings.StandbyCluster = true
	require.Equal(t, []Action{{Kind: RenewLeader}, {Kind: Follow, Upstream: RemoteUpstream}}, Decide(v).Actions,
		"a standby leader not yet pointed at the remote follows it")
	v.Local.Upstream = RemoteUpstream
	require.Equal(t, []Kind{RenewLeader}, kinds(Decide(v)), "and then only renews")

	v.Local = runningPrimary(100)
	require.Equal(t, []Kind{RenewLeader, DemoteCluster}, kinds(Decide(v)), "demote-cluster")
	v.Settings.Pause = true
	require.Equal(t, []Kind{RenewLeader}, kinds(Decide(v)), "paused: not demoted")
	v.Settings.Pause = false

	v.Local = Local{DataDir: DataDirValid, SysID: l.SysID, Timeline: 1}
	require.Equal(t, []Action{{Kind: RenewLeader}, {Kind: StartReplica, Upstream: RemoteUpstream}}, Decide(v).Actions,
		"a stopped standby leader starts as the remote's replica (its data directory is a standby's)")

	v.Local = l
	v.Local.Upstream = RemoteUpstream
	v.Settings.StandbyCluster = false
	require.Contains(t, kinds(Decide(v)), Promote, "promote-cluster: standby_cluster removed")
}

// TestRuleStandbyClusterRace: with no standby leader, the healthiest member takes the lock and
// follows the remote primary instead of promoting; the others follow the standby leader.
func TestRuleStandbyClusterRace(t *testing.T) {
	v := view("b", cluster("", member("b", "replica")), runningReplica(100))
	v.Settings.StandbyCluster = true
	v.Cluster.Status.Optime = 100
	v.PeersProbed = true
	p := Decide(v)
	require.Equal(t, []Action{{Kind: AcquireLeader}, {Kind: Follow, Upstream: RemoteUpstream}}, p.Actions, p.Reason)
	require.NotContains(t, kinds(p), Promote)

	v = view("c", cluster("b", member("b", "replica"), member("c", "replica")), runningReplica(100))
	v.Settings.StandbyCluster = true
	require.Equal(t, []Action{{Kind: Follow, Upstream: "b"}}, Decide(v).Actions, "members cascade from the standby leader")
}

// TestRuleStandbySwitchover: a switchover inside a standby cluster hands the lock over as on a
// primary; the candidate becomes the standby leader (following the remote, never promoting)
// without the lag gate, since every member fetches what it lacks from the remote cluster.
func TestRuleStandbySwitchover(t *testing.T) {
	v := probed(leaderView("a", runningReplica(100)), Peer{Name: "b", Reachable: true, WALEnd: 90})
	v.Settings.StandbyCluster = true
	v.Local.Upstream = RemoteUpstream
	v.Cluster.Failover = &dcs.Failover{Leader: "a", Member: "b"}
	require.Equal(t, []Action{act(RenewLeader), actOn(Handover, "b")}, Decide(v).Actions)

	v.Settings.Pause = true
	require.Equal(t, []Kind{RenewLeader}, kinds(Decide(v)), "pause: the request waits")
	v.Settings.Pause = false

	v.Cluster.Failover = &dcs.Failover{Leader: "a", Member: "zz"}
	require.Equal(t, []Kind{RenewLeader, ClearFailover}, kinds(Decide(v)), "an unknown candidate: cleared")

	c := cluster("", member("a", "replica"), member("b", "replica"))
	c.Failover = &dcs.Failover{Leader: "a", Member: "b"}
	c.Status.Optime = 100
	w := probed(view("b", c, runningReplica(90)))
	w.Settings.StandbyCluster = true
	p := Decide(w)
	require.Equal(t, []Action{act(AcquireLeader), actOn(Follow, RemoteUpstream), act(ClearFailover)}, p.Actions, p.Reason)

	w = probed(view("c", c, runningReplica(100)), Peer{Name: "b", Reachable: true, WALEnd: 90})
	w.Settings.StandbyCluster = true
	require.Empty(t, kinds(Decide(w)), "the others wait for the candidate, even one that is behind")
}

// TestRuleReplicateFrom: a replica tagged replicatefrom streams from the member it names while
// that member runs and its own chain reaches the leader; otherwise from the leader.
func TestRuleReplicateFrom(t *testing.T) {
	stopped := member("b", "replica")
	stopped.Data.State = "stopped"
	loopB := tagged(member("b", "replica"), map[string]any{"replicatefrom": "c"})
	chainB := tagged(member("b", "replica"), map[string]any{"replicatefrom": "d"})
	for name, tc := range map[string]struct {
		members []dcs.Member
		want    string
	}{
		"b runs":                    {[]dcs.Member{member("b", "replica")}, "b"},
		"b is gone":                 {nil, "a"},
		"b is stopped":              {[]dcs.Member{stopped}, "a"},
		"b cascades from me: loop":  {[]dcs.Member{loopB}, "a"},
		"b cascades from d, d runs": {[]dcs.Member{chainB, member("d", "replica")}, "b"},
		"b names a member that is gone: b streams from the leader": {[]dcs.Member{chainB}, "b"},
	} {
		c := cluster("a", append([]dcs.Member{member("a", "primary"), member("c", "replica")}, tc.members...)...)
		v := view("c", c, runningReplica(100))
		v.Settings.ReplicateFrom = "b"
		require.Equal(t, tc.want, UpstreamOf(v, "a"), name)
	}

	c := cluster("a", member("a", "primary"), member("b", "replica"), member("c", "replica"))
	v := view("c", c, Local{DataDir: DataDirValid, SysID: "7300000000000000001", Timeline: 1, Diverged: boolp(false)})
	v.Settings.ReplicateFrom = "b"
	require.Equal(t, []Action{actOn(StartReplica, "b")}, Decide(v).Actions, "started as b's replica")
	v = view("c", c, runningReplica(100))
	v.Settings.ReplicateFrom = "b"
	v.Local.Upstream = "a"
	require.Equal(t, []Action{actOn(Follow, "b")}, Decide(v).Actions, "re-pointed at b")
	v.Local.Upstream = "b"
	require.Empty(t, Decide(v).Actions, "streaming from b")
	v.Settings.ReplicateFrom = "a"
	require.Equal(t, []Action{actOn(Follow, "a")}, Decide(v).Actions, "replicatefrom the leader: the leader")
}
