package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tusker-ha/tusker/test/harness"
)

// The test network: a bridge in the root namespace, and one network namespace per host (the DCS
// server and each node) joined to it by a veth pair. The nemesis itself stays in the root
// namespace, where it reaches every host through the bridge; the writers dial from inside their
// node's namespace (see NetNS.DialContext).
const (
	bridgeName = "tskbr0"
	subnet     = "10.213.7.0/24"
	bridgeIP   = "10.213.7.1"
	dcsIP      = "10.213.7.2"
	nsPrefix   = "tsk-"
	lockPath   = "/run/tusker-nemesis.lock"
)

// nodeIP is the address of node i (1-based).
func nodeIP(i int) string { return fmt.Sprintf("10.213.7.%d", 10+i) }

// Host is one network namespace on the bridge.
type Host struct {
	Name string // namespace name, e.g. tsk-n1
	IP   string
	veth string // the root-namespace end of the veth pair; down = the host is cut off
	fd   int    // the namespace, held open while the network exists
}

// Network is the bridge and its hosts. Close removes all of it.
type Network struct {
	Hosts map[string]*Host // by short name: dcs, n1, n2, n3
	lock  *os.File
}

func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// NewNetwork builds the bridge and one namespace per name (short names: "dcs", "n1", ...). Only
// one nemesis run may own the network at a time; leftovers of a run that was killed are removed
// first.
func NewNetwork(ctx context.Context, names map[string]string) (*Network, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("the nemesis needs root: it builds network namespaces, a bridge and veth pairs (run it as root, e.g. sudo make nemesis)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("the nemesis needs iproute2's ip command: %w (apt-get install iproute2)", err)
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		return nil, fmt.Errorf("the nemesis needs util-linux's nsenter: %w", err)
	}
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", lockPath, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("another nemesis run holds %s (its network is in use): %w", lockPath, err)
	}
	nw := &Network{Hosts: map[string]*Host{}, lock: lock}
	nw.removeLeftovers(ctx)
	if err := nw.build(ctx, names); err != nil {
		nw.Close()
		return nil, err
	}
	return nw, nil
}

func (nw *Network) removeLeftovers(ctx context.Context) {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), nsPrefix) {
			_ = ipCmd(ctx, "netns", "del", e.Name())
		}
	}
	_ = ipCmd(ctx, "link", "del", bridgeName)
}

func (nw *Network) build(ctx context.Context, names map[string]string) error {
	steps := [][]string{
		{"link", "add", bridgeName, "type", "bridge"},
		{"addr", "add", bridgeIP + "/24", "dev", bridgeName},
		{"link", "set", bridgeName, "up"},
	}
	for _, s := range steps {
		if err := ipCmd(ctx, s...); err != nil {
			return err
		}
	}
	for short, ip := range names {
		h := &Host{Name: nsPrefix + short, IP: ip, veth: nsPrefix + short + "h", fd: -1}
		steps := [][]string{
			{"netns", "add", h.Name},
			{"-n", h.Name, "link", "set", "lo", "up"},
			{"link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.Name},
			{"link", "set", h.veth, "master", bridgeName},
			{"link", "set", h.veth, "up"},
			{"-n", h.Name, "addr", "add", ip + "/24", "dev", "eth0"},
			{"-n", h.Name, "link", "set", "eth0", "up"},
		}
		for _, s := range steps {
			if err := ipCmd(ctx, s...); err != nil {
				return err
			}
		}
		fd, err := unix.Open(filepath.Join("/run/netns", h.Name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening network namespace %s: %w", h.Name, err)
		}
		h.fd = fd
		nw.Hosts[short] = h
	}
	return nil
}

// Close removes the namespaces (and with them the veth pairs) and the bridge.
func (nw *Network) Close() {
	ctx := context.Background()
	for _, h := range nw.Hosts {
		if h.fd >= 0 {
			_ = unix.Close(h.fd)
		}
		_ = ipCmd(ctx, "netns", "del", h.Name)
	}
	_ = ipCmd(ctx, "link", "del", bridgeName)
	if nw.lock != nil {
		nw.lock.Close()
	}
}

// Wrap is the command prefix that runs a program inside the host's namespace as uid/gid (nsenter
// execs the program, so its pid is the program's own).
func (h *Host) Wrap(cred *syscall.Credential) []string {
	w := []string{"nsenter", "--net=" + filepath.Join("/run/netns", h.Name)}
	if cred != nil {
		w = append(w, "-S", fmt.Sprint(cred.Uid), "-G", fmt.Sprint(cred.Gid))
	}
	return append(w, "--")
}

// Cut takes the host off the network (its veth is down: nothing gets in or out, and TCP peers
// see silence, not resets). Heal brings it back.
func (h *Host) Cut(ctx context.Context) error  { return ipCmd(ctx, "link", "set", h.veth, "down") }
func (h *Host) Heal(ctx context.Context) error { return ipCmd(ctx, "link", "set", h.veth, "up") }

// Drop makes this host silently discard its replies to ip (a blackhole route in this host's
// namespace): the peer's packets arrive, the answers never leave, so the peer's connections hang
// as behind a firewall that drops. Undrop removes the route.
func (h *Host) Drop(ctx context.Context, ip string) error {
	return ipCmd(ctx, "-n", h.Name, "route", "add", "blackhole", ip+"/32")
}
func (h *Host) Undrop(ctx context.Context, ip string) error {
	return ipCmd(ctx, "-n", h.Name, "route", "del", "blackhole", ip+"/32")
}

// DialContext dials from inside the host's namespace (harness.DialIn: the dialing thread enters
// it and comes back, so that no thread ends and kills the servers it started).
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return harness.DialIn(ctx, filepath.Join("/run/netns", h.Name), network, addr)
}
