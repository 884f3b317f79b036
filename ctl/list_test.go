package ctl

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/dcs"
)

func TestListTable(t *testing.T) {
	id := "7300000000000000001"
	loc, rloc := int64(3<<20), int64(1<<20)
	c := &dcs.Cluster{Initialize: &id, Leader: &dcs.Leader{Name: "n1"}, Status: dcs.Status{Optime: 3 << 20},
		Members: []dcs.Member{
			{Name: "n1", Data: dcs.MemberData{ConnURL: "postgres://127.0.0.1:5432/postgres", State: "running", Role: "primary", Timeline: 2, XLogLocation: &loc}},
			{Name: "n2", Data: dcs.MemberData{ConnURL: "postgres://127.0.0.1:5433/postgres", State: "running", Role: "replica", ReplicationState: "streaming", Timeline: 2, XLogLocation: &rloc}},
			{Name: "n3", Data: dcs.MemberData{State: "stopped"}},
		}}
	var b bytes.Buffer
	require.NoError(t, List(&b, "demo", c))
	want := `+ Cluster: demo (7300000000000000001)
Member  Host            Role     State      TL  Lag in MB  
n1      127.0.0.1:5432  Leader   running    2              
n2      127.0.0.1:5433  Replica  streaming  2   2          
n3                      Replica  stopped        unknown    
`
	require.Equal(t, want, b.String())
}
