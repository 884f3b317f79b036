package zookeeper

import (
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tusker-ha/tusker/test/harness"
)

func TestMain(m *testing.M) { harness.Main(m, harness.CheckZooKeeper) }

func TestScratch(t *testing.T) {
	t0 := time.Now()
	z := harness.StartZooKeeper(t)
	t.Logf("started in %v", time.Since(t0))
	a, _, err := zk.Connect([]string{z.Addr}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := zk.Connect([]string{z.Addr}, 2*time.Second)
	_, err = a.Create("/x", []byte("a"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	t.Log("create", err, a.SessionID())
	a2, _, _ := zk.Connect([]string{z.Addr}, 4*time.Second)
	_, st, _ := a.Get("/x")
	ok, _, ch, err := b.ExistsW("/x")
	t.Log("existsw", ok, err)
	res, err := a2.Multi(&zk.DeleteRequest{Path: "/x", Version: st.Version}, &zk.CreateRequest{Path: "/x", Data: []byte("a"), Acl: zk.WorldACL(zk.PermAll), Flags: zk.FlagEphemeral})
	t.Log("multi", res, err)
	select {
	case ev := <-ch:
		t.Logf("event %+v", ev)
	case <-time.After(time.Second):
		t.Log("no event")
	}
	_, st2, _ := b.Get("/x")
	t.Logf("owner %x a2 %x", st2.EphemeralOwner, a2.SessionID())
	acl, _, err := b.GetACL("/x")
	t.Log(acl, err)
}
