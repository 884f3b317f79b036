package binpages

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Release unmaps the read-only private mappings of the running executable's file and returns
// the size of the ranges it released.
func Release() (int64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return 0, fmt.Errorf("stat /proc/self/exe: %w", err)
	}
	ranges, err := readOnlyRanges("/proc/self/maps", devString(st.Dev), st.Ino)
	if err != nil {
		return 0, err
	}
	if len(ranges) == 0 {
		return 0, fmt.Errorf("/proc/self/maps: no read-only mapping of the executable (inode %d)", st.Ino)
	}
	var total int64
	for _, r := range ranges {
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, r.lo, r.hi-r.lo, syscall.MADV_DONTNEED); e != 0 {
			return total, fmt.Errorf("madvise(%#x-%#x, MADV_DONTNEED): %w", r.lo, r.hi, e)
		}
		total += int64(r.hi - r.lo)
	}
	return total, nil
}

type addrRange struct{ lo, hi uintptr }

// devString formats a device number as /proc/PID/maps does: major:minor in hex.
func devString(dev uint64) string {
	major := (dev>>8)&0xfff | (dev>>32)&^0xfff
	minor := dev&0xff | (dev>>12)&^0xff
	return fmt.Sprintf("%02x:%02x", major, minor)
}

// readOnlyRanges lists the mappings in the maps file at path that are private, not writable and
// backed by the file dev/ino.
func readOnlyRanges(path, dev string, ino uint64) ([]addrRange, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	rs, err := parseMaps(bufio.NewScanner(f), dev, ino)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rs, nil
}

func parseMaps(sc *bufio.Scanner, dev string, ino uint64) ([]addrRange, error) {
	var rs []addrRange
	for sc.Scan() {
		// address perms offset dev inode [path]
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		perms := f[1]
		if len(perms) != 4 || perms[1] == 'w' || perms[3] != 'p' || f[3] != dev {
			continue
		}
		if n, err := strconv.ParseUint(f[4], 10, 64); err != nil || n != ino {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("bad address range %q", f[0])
		}
		l, err1 := strconv.ParseUint(lo, 16, 64)
		h, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || h <= l {
			return nil, fmt.Errorf("bad address range %q", f[0])
		}
		rs = append(rs, addrRange{uintptr(l), uintptr(h)})
	}
	return rs, sc.Err()
}
