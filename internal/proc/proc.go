// Package proc reads what tusker needs from Linux's /proc: a process's parent, its CPU time, and
// the children of a process.
package proc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Stat is the part of /proc/<pid>/stat tusker uses.
type Stat struct {
	PPID       int
	CPUSeconds float64 // utime + stime
}

// ReadStat parses /proc/<pid>/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	return parseStat(string(b))
}

// parseStat skips the command name, which may itself hold spaces and parentheses.
func parseStat(s string) (Stat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return Stat{}, fmt.Errorf("unexpected /proc stat line %q", s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return Stat{}, fmt.Errorf("short /proc stat line %q", s)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return Stat{}, fmt.Errorf("/proc stat ppid %q: %w", f[1], err)
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	// USER_HZ is 100 on every Linux architecture Go supports.
	return Stat{PPID: ppid, CPUSeconds: (ut + st) / 100}, nil
}

// Children lists the processes whose parent is pid.
func Children(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := ReadStat(n); err == nil && st.PPID == pid {
			out = append(out, n)
		}
	}
	return out
}
