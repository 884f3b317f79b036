package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/test/harness"
)

var tuskerBin string

// TestMain builds tusker. It stays root (unlike the other suites' harness.Main): the nemesis
// builds network namespaces and drops privileges for each process it starts.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tusker-nemesis-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = os.Chmod(dir, 0o755)
	if err := harness.GoBuild(dir, "tusker", "github.com/tusker-ha/tusker/cmd/tusker"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	tuskerBin = filepath.Join(dir, "tusker")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestNemesisShortProfile is `make nemesis` with about ten faults (every kind at least once) in
// synchronous_mode on: no split brain, no acknowledged write lost, every fault healed, every
// replica holding the primary's rows. NEMESIS_SEED replays a run (the seed is printed first).
func TestNemesisShortProfile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the nemesis needs root to build network namespaces (CI runs as root; run `sudo make test`)")
	}
	opts, err := OptionsFromEnv(tuskerBin)
	require.NoError(t, err)
	if os.Getenv("NEMESIS_FAULTS") == "" {
		opts.Faults = 10
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	res := Run(ctx, opts)
	fmt.Println(res.Line())
	require.Empty(t, res.Failed(opts.Mode), "replay with NEMESIS_SEED=%d NEMESIS_FAULTS=%d NEMESIS_MODE=%s", opts.Seed, opts.Faults, opts.Mode)
	require.Equal(t, opts.Faults, res.Faults)
	require.Zero(t, res.Lost)
	require.Zero(t, res.SplitBrains)
	require.Positive(t, res.MaxHeal)
}

func TestResultLine(t *testing.T) {
	r := Result{Faults: 100, Lost: 0, SplitBrains: 0, MaxHeal: 7250 * time.Millisecond, Seed: 42}
	require.Regexp(t, regexp.MustCompile(`^nemesis: faults=\d+ lost=\d+ split_brain=\d+ max_heal_s=\d+\.\d seed=\d+$`), r.Line())
	require.Equal(t, "nemesis: faults=100 lost=0 split_brain=0 max_heal_s=7.2 seed=42", r.Line())
	require.Empty(t, r.Failed("on"))
	require.Empty(t, Result{Lost: 3}.Failed("off"), "asynchronous replication may lose acknowledged writes")
	require.Contains(t, Result{Lost: 3}.Failed("quorum"), "3 acknowledged writes lost")
	require.Contains(t, Result{SplitBrains: 1}.Failed("off"), "1 split brains")
	require.Contains(t, Result{Divergent: []string{"n2"}}.Failed("on"), "n2")
}

func TestOptionsFromEnv(t *testing.T) {
	t.Setenv("NEMESIS_FAULTS", "7")
	t.Setenv("NEMESIS_SEED", "1234")
	t.Setenv("NEMESIS_MODE", "quorum")
	o, err := OptionsFromEnv("x")
	require.NoError(t, err)
	require.Equal(t, 7, o.Faults)
	require.Equal(t, uint64(1234), o.Seed)
	require.Equal(t, "quorum", o.Mode)
	t.Setenv("NEMESIS_KINDS", "partition, dcs-cut")
	o, err = OptionsFromEnv("x")
	require.NoError(t, err)
	require.Equal(t, []string{partition, dcsCut}, o.Kinds)
	for k, v := range map[string]string{"NEMESIS_FAULTS": "0", "NEMESIS_SEED": "-1", "NEMESIS_MODE": "maybe", "NEMESIS_KINDS": "partition,meteor"} {
		t.Run(k, func(t *testing.T) {
			t.Setenv(k, v)
			_, err := OptionsFromEnv("x")
			require.ErrorContains(t, err, k)
		})
	}
}

func TestScheduleReplaysAndCoversEveryFault(t *testing.T) {
	ttl := 6 * time.Second
	a, b := schedule(99, 100, ttl, nil), schedule(99, 100, ttl, nil)
	require.Equal(t, a, b, "the same seed gives the same run")
	require.NotEqual(t, a, schedule(100, 100, ttl, nil))
	for _, s := range schedule(7, 20, ttl, []string{partition, dcsCut}) {
		require.Contains(t, []string{partition, dcsCut}, s.Kind, "NEMESIS_KINDS limits the draw")
	}
	short := schedule(5, 10, ttl, nil)
	require.Len(t, short, 10)
	var kinds []string
	for _, s := range short[:len(faultKinds)] {
		kinds = append(kinds, s.Kind)
	}
	slices.Sort(kinds)
	want := slices.Clone(faultKinds)
	slices.Sort(want)
	require.Equal(t, want, kinds, "a short run sees every fault")
	for _, s := range a {
		switch s.Kind {
		case freezeTusker, partition, dcsCut, dcsOutage:
			require.Greater(t, s.Hold, ttl, "%s lasts longer than ttl", s.Kind)
		case killPostgres:
			require.Zero(t, s.Hold)
		}
		if s.Kind == dcsCut {
			require.True(t, s.OnPrimary, "the primary is the one cut off the DCS")
		}
	}
}

// ops builds a writer history: "+" an acknowledged write, "-" a failed attempt, each taking 10 ms
// from start (a fresh 20 ms slot per op).
func ops(from time.Time, pattern string) []op {
	var out []op
	for i, c := range pattern {
		s := from.Add(time.Duration(i) * 20 * time.Millisecond)
		out = append(out, op{Value: int64(i + 1), Start: s, End: s.Add(10 * time.Millisecond), OK: c == '+'})
	}
	return out
}

func TestSplitBrainDetection(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	// n1 accepts writes, then fails; n2 starts after n1's last: a clean handover.
	clean := map[string][]op{
		"n1": ops(t0, "+++++-----"),
		"n2": ops(t0, "------++++"),
	}
	require.Empty(t, findSplitBrains(clean))

	// n2 accepts writes while n1 still does: a split brain, found whichever way round.
	overlap := map[string][]op{
		"n1": ops(t0, "++++++++--"),
		"n2": ops(t0, "----++++++"),
	}
	sb := findSplitBrains(overlap)
	require.Len(t, sb, 1)
	require.Contains(t, sb[0].String(), "n1 accepted")

	// Alternating single writes prove no span on either side: no overlap is claimed.
	single := map[string][]op{
		"n1": ops(t0, "+-+-+-+-+-"),
		"n2": ops(t0, "-+-+-+-+-+"),
	}
	require.Empty(t, findSplitBrains(single))

	// A lone write on n1 committed while n2 surely accepted writes: the frozen primary that
	// answered /primary from its last status on waking (fixed in restapi).
	lone := map[string][]op{
		"n1": ops(t0, "-----+----"),
		"n2": ops(t0, "--++++++++"),
	}
	require.Len(t, findSplitBrains(lone), 1)

	// A failed attempt ends a run: n1's writes before and after it are two runs, and n2's run
	// in the gap overlaps neither.
	gap := map[string][]op{
		"n1": ops(t0, "+++-----+++"),
		"n2": ops(t0, "----++-----"),
	}
	require.Empty(t, findSplitBrains(gap))
}

func TestLostWrites(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	h := map[string][]op{"n1": ops(t0, "++-+")} // values 1, 2, 4 acknowledged; 3 failed
	require.Empty(t, lostWrites(h, map[int64]bool{1: true, 2: true, 4: true}))
	require.Empty(t, lostWrites(h, map[int64]bool{1: true, 2: true, 3: true, 4: true}), "an unacknowledged write may be there")
	lost := lostWrites(h, map[int64]bool{1: true, 3: true})
	require.Len(t, lost, 2)
	require.Equal(t, []int64{2, 4}, []int64{lost[0].Value, lost[1].Value})
}
