package ctl

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/patroni"
)

func TestParseDCSURL(t *testing.T) {
	for _, tc := range []struct {
		in    string
		hosts []string
		ns    string
	}{
		{"etcd3://10.0.0.1:2379", []string{"10.0.0.1:2379"}, ""},
		{"etcd://10.0.0.1:2379/service2", []string{"10.0.0.1:2379"}, "/service2"},
		{"etcd3://10.0.0.1", []string{"10.0.0.1:2379"}, ""},
		{"etcd3://a:1,b:2,c/ns/", []string{"a:1", "b:2", "c:2379"}, "/ns"},
		{"etcd3://[::1]:2379", []string{"[::1]:2379"}, ""},
		{"etcd3://[::1]", []string{"[::1]:2379"}, ""},
		{"10.0.0.1:2379", []string{"10.0.0.1:2379"}, ""}, // no scheme: the port says etcd
		{"10.0.0.1", []string{"10.0.0.1:2379"}, ""},      // no port either: etcd
		{"etcd3://", []string{"localhost:2379"}, ""},
		{"ETCD3://h:2379", []string{"h:2379"}, ""},
	} {
		u, err := ParseDCSURL(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, "etcd3", u.Scheme, tc.in)
		assert.Equal(t, tc.hosts, u.Hosts, tc.in)
		assert.Equal(t, tc.ns, u.Namespace, tc.in)
	}
	for _, tc := range []struct {
		in, scheme string
		hosts      []string
	}{
		{"consul://h:8500", "consul", []string{"h:8500"}},
		{"h:8500", "consul", []string{"h:8500"}},
		{"consul://h", "consul", []string{"h:8500"}},
		{"zookeeper://z1,z2:2182/ns", "zookeeper", []string{"z1:2181", "z2:2182"}},
		{"h:2181", "zookeeper", []string{"h:2181"}},
		{"kubernetes://", "kubernetes", nil},
		{"kubernetes:///service2", "kubernetes", nil},
	} {
		u, err := ParseDCSURL(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.scheme, u.Scheme, tc.in)
		assert.Equal(t, tc.hosts, u.Hosts, tc.in)
	}
	_, err := ParseDCSURL("exhibitor://h")
	require.ErrorIs(t, err, errUnsupportedDCS)
	for _, in := range []string{"", "redis://h:6379", "etcd3://h:port", "etcd3://h:99999", "etcd3://h:1:2"} {
		_, err := ParseDCSURL(in)
		require.Error(t, err, in)
		require.NotErrorIs(t, err, errUnsupportedDCS, in)
	}
}

func TestApplySets(t *testing.T) {
	base := func() map[string]any {
		m, err := decodeConfig([]byte(`{"ttl":6,"loop_wait":1,"postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":40,"work_mem":"4MB"}},"tags":{"a":1}}`))
		require.NoError(t, err)
		return m
	}
	for _, tc := range []struct {
		name string
		sets []string
		want string
	}{
		{"top-level integer", []string{"loop_wait=2"},
			`{"loop_wait":2,"postgresql":{"parameters":{"max_connections":40,"work_mem":"4MB"},"use_pg_rewind":true},"tags":{"a":1},"ttl":6}`},
		{"nested new keys", []string{"standby_cluster.host=10.0.0.1", "standby_cluster.port=5433"},
			`{"loop_wait":1,"postgresql":{"parameters":{"max_connections":40,"work_mem":"4MB"},"use_pg_rewind":true},"standby_cluster":{"host":"10.0.0.1","port":5433},"tags":{"a":1},"ttl":6}`},
		{"-p and a dotted GUC", []string{"postgresql.parameters.max_connections=123", "postgresql.parameters.auto_explain.log_min_duration='1s'"},
			`{"loop_wait":1,"postgresql":{"parameters":{"auto_explain.log_min_duration":"1s","max_connections":123,"work_mem":"4MB"},"use_pg_rewind":true},"tags":{"a":1},"ttl":6}`},
		{"null removes", []string{"postgresql.parameters.work_mem=null"},
			`{"loop_wait":1,"postgresql":{"parameters":{"max_connections":40},"use_pg_rewind":true},"tags":{"a":1},"ttl":6}`},
		{"empty removes, and empty maps go", []string{"tags.a="},
			`{"loop_wait":1,"postgresql":{"parameters":{"max_connections":40,"work_mem":"4MB"},"use_pg_rewind":true},"ttl":6}`},
		{"removing what is not there", []string{"nothing.here=null", "ttl.sub=null"},
			`{"loop_wait":1,"postgresql":{"parameters":{"max_connections":40,"work_mem":"4MB"},"use_pg_rewind":true},"tags":{"a":1},"ttl":6}`},
		{"YAML values", []string{"pause=on", "synchronous_mode=false", "slots={s1: {type: physical}}", "x=[1, two]", "y=\"123\"", "z=1.5"},
			`{"loop_wait":1,"pause":true,"postgresql":{"parameters":{"max_connections":40,"work_mem":"4MB"},"use_pg_rewind":true},"slots":{"s1":{"type":"physical"}},"synchronous_mode":false,"tags":{"a":1},"ttl":6,"x":[1,"two"],"y":"123","z":1.5}`},
		{"a value containing =", []string{"postgresql.parameters.search_path=a=b"},
			`{"loop_wait":1,"postgresql":{"parameters":{"max_connections":40,"search_path":"a=b","work_mem":"4MB"},"use_pg_rewind":true},"tags":{"a":1},"ttl":6}`},
		{"a scalar replaced by a map", []string{"ttl.x=1"},
			`{"loop_wait":1,"postgresql":{"parameters":{"max_connections":40,"work_mem":"4MB"},"use_pg_rewind":true},"tags":{"a":1},"ttl":{"x":1}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			require.NoError(t, applySets(m, tc.sets))
			b, err := encodeConfig(m)
			require.NoError(t, err)
			assert.JSONEq(t, tc.want, string(b))
			assert.Equal(t, tc.want, string(b), "keys sorted, compact")
		})
	}
	for _, bad := range []string{"novalue", "=1", ".a=1", "a.=1", "a..b=1", "x=[unclosed"} {
		err := applySets(base(), []string{bad})
		require.Error(t, err, bad)
		assert.Equal(t, ExitUsage, ExitCode(err), bad)
	}
}

func TestMergePatchAndSameTree(t *testing.T) {
	m, err := decodeConfig([]byte(`{"a":{"b":1,"c":2},"d":3,"f":1.0}`))
	require.NoError(t, err)
	patch, err := decodeYAMLConfig("patch", []byte("a:\n  b: null\n  e: 5\nd: {x: 1}\n"))
	require.NoError(t, err)
	mergePatch(m, patch)
	b, err := encodeConfig(m)
	require.NoError(t, err)
	assert.Equal(t, `{"a":{"c":2,"e":5},"d":{"x":1},"f":1}`, string(b))

	// A configuration survives a YAML round trip unchanged (1.0 comes back as 1).
	orig, err := decodeConfig([]byte(`{"ttl":6,"x":1.0,"y":[1,{"z":null}],"big":12345678901234}`))
	require.NoError(t, err)
	y, err := configYAML(orig)
	require.NoError(t, err)
	back, err := decodeYAMLConfig("yaml", []byte(y))
	require.NoError(t, err)
	assert.True(t, sameTree(orig, back), "%v vs %v", orig, back)
	back["ttl"] = int64(7)
	assert.False(t, sameTree(orig, back))

	_, err = decodeYAMLConfig("the input", []byte("- a\n- b\n"))
	require.ErrorContains(t, err, "must be a YAML mapping")
}

func TestUnifiedDiff(t *testing.T) {
	d := unifiedDiff("a: 1\nb: 2\n", "a: 1\nb: 3\n", false)
	assert.Equal(t, "--- before\n+++ after\n@@ -1,2 +1,2 @@\n a: 1\n-b: 2\n+b: 3\n", d)
	assert.Contains(t, unifiedDiff("a: 1\n", "a: 2\n", true), "\033[31m-a: 1\033[0m\n")
}

func TestRoles(t *testing.T) {
	c := testCluster()
	names := func(role string) []string { return memberNames(membersWithRole(c, role)) }
	assert.Equal(t, []string{"n1", "n2", "n3"}, names(roleAny))
	assert.Equal(t, []string{"n1"}, names(roleLeader))
	assert.Equal(t, []string{"n1"}, names(rolePrimary))
	assert.Empty(t, names(roleStandbyLeader))
	assert.Equal(t, []string{"n2", "n3"}, names(roleReplica))

	c.Members[0].Data.Role = "standby_leader"
	assert.Empty(t, names(rolePrimary))
	assert.Equal(t, []string{"n1"}, names(roleStandbyLeader))
	assert.Equal(t, []string{"n1"}, names(roleLeader))

	c.Leader = &dcs.Leader{Name: "n2"} // leader first in every list
	assert.Equal(t, []string{"n2", "n1", "n3"}, names(roleAny))

	for in, want := range map[string]string{"standby": roleReplica, "master": rolePrimary, "Standby-Leader": roleStandbyLeader, "ANY": roleAny} {
		r, err := parseRole(in)
		require.NoError(t, err)
		assert.Equal(t, want, r)
	}
	_, err := parseRole("boss")
	require.Error(t, err)
	assert.Equal(t, ExitUsage, ExitCode(err))
}

func TestSelectMembers(t *testing.T) {
	c := testCluster()
	ms, err := selectMembers(c, "demo", nil, roleReplica)
	require.NoError(t, err)
	assert.Equal(t, []string{"n2", "n3"}, memberNames(ms))
	ms, err = selectMembers(c, "demo", []string{"n3", "n2", "n3"}, roleAny)
	require.NoError(t, err)
	assert.Equal(t, []string{"n3", "n2"}, memberNames(ms))

	_, err = selectMembers(c, "demo", []string{"n9"}, roleAny)
	require.EqualError(t, err, `"n9" is not a member of cluster "demo" (members: n1, n2, n3)`)
	_, err = selectMembers(c, "demo", []string{"n1"}, roleReplica)
	require.EqualError(t, err, `member "n1" of cluster "demo" does not have role replica (with that role: n2, n3)`)
	_, err = selectMembers(c, "demo", nil, roleStandbyLeader)
	require.EqualError(t, err, `cluster "demo" has no member with role standby-leader (members: n1, n2, n3)`)

	m, err := findMember(c, "demo", "", "")
	require.NoError(t, err)
	assert.Equal(t, "n1", m.Name)
	m, err = findMember(c, "demo", "", roleReplica)
	require.NoError(t, err)
	assert.Equal(t, "n2", m.Name)
	_, err = findMember(c, "demo", "x", "")
	require.EqualError(t, err, `"x" is not a member of cluster "demo" (members: n1, n2, n3)`)

	assert.True(t, patroni.NoFailover(c.Members[2].Data.Tags))
	assert.False(t, patroni.NoFailover(c.Members[1].Data.Tags))
	c.Members[1].Data.Tags = map[string]any{"failover_priority": float64(0)}
	assert.True(t, patroni.NoFailover(c.Members[1].Data.Tags))
}

func TestTopology(t *testing.T) {
	mv := func(name string, leader bool, from string) memberView {
		return memberView{name: name, isLeader: leader, replicateFrom: from}
	}
	names := func(ms []memberView) []string {
		var out []string
		for _, m := range topologyOrder(ms) {
			out = append(out, m.name)
		}
		return out
	}
	// a leads; b and d stream from it; c cascades from b, e from c; f names itself and g an
	// unknown member: both hang under the leader.
	assert.Equal(t, []string{"a", "+ b", "  + c", "    + e", "+ d", "+ f", "+ g"}, names([]memberView{
		mv("a", true, ""), mv("b", false, ""), mv("c", false, "b"), mv("d", false, "a"), mv("e", false, "c"),
		mv("f", false, "f"), mv("g", false, "zz"),
	}))
	// A replicatefrom cycle is not lost.
	assert.Equal(t, []string{"a", "+ d", "+ b", "  + c"}, names([]memberView{
		mv("a", true, ""), mv("b", false, "c"), mv("c", false, "b"), mv("d", false, ""),
	}))
	// Without a leader the members are roots.
	assert.Equal(t, []string{"x", "y", "+ z"}, names([]memberView{mv("x", false, ""), mv("y", false, ""), mv("z", false, "y")}))
}

func TestPrompts(t *testing.T) {
	newPromptApp := func(in string) (*app, *bytes.Buffer) {
		var errOut bytes.Buffer
		a := newApp(context.Background(), Env{Stdin: strings.NewReader(in), Stderr: &errOut})
		return a, &errOut
	}
	a, errOut := newPromptApp("y\n")
	require.NoError(t, a.confirm("Sure?"))
	assert.Equal(t, "Sure? [y/N]: \n", errOut.String(), "stdin is no terminal: the prompt ends its line")

	for _, in := range []string{"n\n", "\n", "no\n", "NO\n"} {
		a, _ = newPromptApp(in)
		require.ErrorIs(t, a.confirm("Sure?"), errAborted, "%q", in)
	}
	a, _ = newPromptApp("")
	err := a.confirm("Sure?")
	require.ErrorIs(t, err, errAborted, "EOF aborts")
	assert.Equal(t, ExitError, ExitCode(err))

	a, errOut = newPromptApp("maybe\nYes\n")
	require.NoError(t, a.confirm("Sure?"))
	assert.Contains(t, errOut.String(), "invalid input")

	a, _ = newPromptApp("yes") // no final newline
	require.NoError(t, a.confirm("Sure?"))

	a, errOut = newPromptApp("\nn2\n")
	ans, err := a.ask("Candidate", "n3")
	require.NoError(t, err)
	assert.Equal(t, "n3", ans, "empty answer takes the default")
	ans, err = a.ask("Candidate", "")
	require.NoError(t, err)
	assert.Equal(t, "n2", ans)
	assert.Equal(t, "Candidate [n3]: \nCandidate: \n", errOut.String())
	a = newApp(context.Background(), Env{Stdin: strings.NewReader("n2\n"), Stderr: errOut, StdinTTY: true})
	errOut.Reset()
	_, err = a.ask("Candidate", "")
	require.NoError(t, err)
	assert.Equal(t, "Candidate: ", errOut.String(), "on a terminal the user's Enter ends the line")
	_, err = a.ask("More", "")
	require.ErrorIs(t, err, errAborted)

	a = newApp(context.Background(), Env{Stdin: strings.NewReader("s3cret\n")})
	a.in = bufio.NewReader(strings.NewReader("s3cret\n"))
	pw, err := a.password("Password")
	require.NoError(t, err)
	assert.Equal(t, "s3cret", pw)
}

func TestExitCodes(t *testing.T) {
	assert.Equal(t, ExitOK, ExitCode(nil))
	assert.Equal(t, ExitUsage, ExitCode(usagef("bad")))
	assert.Equal(t, ExitUsage, ExitCode(&opError{usagef("bad")}), "a usage error stays one when wrapped")
	assert.Equal(t, ExitError, ExitCode(&opError{errors.New("failed")}))
	assert.Equal(t, ExitError, ExitCode(fmt.Errorf("wrapped: %w", errAborted)))
	assert.Equal(t, ExitUsage, ExitCode(errors.New("unknown flag: --x")), "errors from cobra's parsing are usage errors")
}

func TestParseScheduled(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	at, err := parseScheduled("now", now)
	require.NoError(t, err)
	assert.Nil(t, at)
	at, err = parseScheduled("", now)
	require.NoError(t, err)
	assert.Nil(t, at)
	at, err = parseScheduled("2024-05-01T13:00+00:00", now)
	require.NoError(t, err)
	assert.Equal(t, "2024-05-01T13:00:00Z", at.UTC().Format(time.RFC3339))
	at, err = parseScheduled("2024-05-01 13:30", now) // no zone: the local one
	require.NoError(t, err)
	assert.Equal(t, "2024-05-01T13:30:00+02:00", at.Format(time.RFC3339))
	_, err = parseScheduled("2024-05-01T11:00+02:00", now)
	require.ErrorContains(t, err, "in the past")
	_, err = parseScheduled("tomorrow", now)
	require.ErrorContains(t, err, "unable to parse scheduled timestamp (tomorrow)")
	assert.Equal(t, ExitUsage, ExitCode(err))
}

func TestFormatPGVersion(t *testing.T) {
	assert.Equal(t, "15.4", formatPGVersion(150004))
	assert.Equal(t, "9.6.24", formatPGVersion(90624))
}
