package config

import (
	"fmt"
	"strings"
)

// StandbyCluster is the dynamic configuration's standby_cluster: this cluster follows another
// one (the remote primary, at Host:Port, or through its archive with RestoreCommand). Its leader
// is a standby leader that replicates from the remote, the other members cascade from it, and
// nobody is promoted until standby_cluster is removed (promote-cluster).
type StandbyCluster struct {
	Host                  string // one host or "h1,h2,...": libpq tries them for the read-write one
	Port                  int    // 0: 5432
	PrimarySlotName       string // the slot on the remote primary; none: no slot
	CreateReplicaMethods  []string
	RestoreCommand        string
	ArchiveCleanupCommand string
	RecoveryMinApplyDelay string
}

// Active reports whether the section makes this a standby cluster: it names a host, a port or a
// restore_command (Patroni's rule; an empty or partial section does not).
func (s *StandbyCluster) Active() bool {
	return s != nil && (s.Host != "" || s.Port != 0 || s.RestoreCommand != "")
}

// RemotePort is the remote primary's port.
func (s *StandbyCluster) RemotePort() int {
	if s.Port == 0 {
		return 5432
	}
	return s.Port
}

func (d *decoder) standbyCluster(path string, n *node) *StandbyCluster {
	if n.kind == nullNode && d.cat == nil {
		return nil
	}
	s := &StandbyCluster{}
	d.fields(path, n, intHandlers(d, map[string]func(string, *node){
		"host":                     d.setStr(&s.Host, `a string "host" or "host1,host2"`),
		"primary_slot_name":        d.setStr(&s.PrimarySlotName, "a string (a slot name)"),
		"restore_command":          d.setStr(&s.RestoreCommand, "a string (a command)"),
		"archive_cleanup_command":  d.setStr(&s.ArchiveCleanupCommand, "a string (a command)"),
		"recovery_min_apply_delay": d.setStr(&s.RecoveryMinApplyDelay, `a string ("5min") or a number of milliseconds`),
		"create_replica_methods": func(p string, v *node) {
			s.CreateReplicaMethods = d.commaList(p, v, "a list of method names")
		},
	}, standbyInts, s))
	return s
}

var standbyInts = []intKey[StandbyCluster, int]{portKey("port", func(s *StandbyCluster) *int { return &s.Port }, false)}

// standbyProblems checks the standby_cluster section (keys relative to the dynamic configuration).
func (s *StandbyCluster) problems(add func(key, msg string)) {
	if s == nil {
		return
	}
	checkInts(standbyInts, s, "standby_cluster.", add)
	for _, f := range []struct{ key, v string }{
		{"host", s.Host}, {"primary_slot_name", s.PrimarySlotName}, {"restore_command", s.RestoreCommand},
		{"archive_cleanup_command", s.ArchiveCleanupCommand}, {"recovery_min_apply_delay", s.RecoveryMinApplyDelay},
	} {
		if p := textProblem(f.v); p != "" {
			add("standby_cluster."+f.key, p)
		}
	}
	for _, h := range strings.Split(s.Host, ",") {
		if s.Host != "" && (strings.TrimSpace(h) == "" || strings.ContainsAny(h, " \t'\\=")) {
			add("standby_cluster.host", fmt.Sprintf("%q is not a host or a comma-separated list of hosts", s.Host))
			break
		}
	}
	if s.PrimarySlotName != "" && !validIdent(s.PrimarySlotName) {
		add("standby_cluster.primary_slot_name", fmt.Sprintf("%q is not a valid replication slot name", s.PrimarySlotName))
	}
	for i, m := range s.CreateReplicaMethods {
		if msg := methodName(m); msg != "" {
			add(indexPath("standby_cluster.create_replica_methods", i), msg)
		}
	}
}
