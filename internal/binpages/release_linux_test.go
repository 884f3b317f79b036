package binpages

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseMapsKeepsOnlyReadOnlyPrivateMappingsOfTheFile(t *testing.T) {
	maps := `00400000-012fc000 r-xp 00000000 fd:00 1234 /usr/bin/tusker
012fc000-0240c000 r--p 00efc000 fd:00 1234 /usr/bin/tusker
0240c000-024c6000 rw-p 0200c000 fd:00 1234 /usr/bin/tusker
024c6000-04510000 rw-p 00000000 00:00 0
7f0000000000-7f0000001000 r--s 00000000 fd:00 1234 /usr/bin/tusker
7f0000002000-7f0000003000 r--p 00000000 fd:00 999 /usr/lib/other
7f0000004000-7f0000005000 r--p 00000000 fd:01 1234 /other/device
7f0000006000-7f0000007000 r-xp 00000000 fd:00 1234 /usr/bin/tusker (deleted)
short line
`
	rs, err := parseMaps(bufio.NewScanner(strings.NewReader(maps)), "fd:00", 1234)
	require.NoError(t, err)
	require.Equal(t, []addrRange{{0x400000, 0x12fc000}, {0x12fc000, 0x240c000}, {0x7f0000006000, 0x7f0000007000}}, rs,
		"text, read-only data and a replaced binary's text; never writable, shared, or another file's")

	_, err = parseMaps(bufio.NewScanner(strings.NewReader("zz-00 r--p 0 fd:00 1234 /x\n")), "fd:00", 1234)
	require.ErrorContains(t, err, `bad address range "zz-00"`)
}

// marker is written at run time: its page is private and modified, which Release must keep.
var marker = []byte("as linked")

func TestReleaseUnmapsTheBinaryAndKeepsWritableData(t *testing.T) {
	copy(marker, "rewritten")
	before := exeRss(t)
	require.Greater(t, before, int64(0), "the test binary's read-only mappings are resident")

	n, err := Release()
	require.NoError(t, err)
	require.Greater(t, n, int64(1<<20), "the text and read-only data of the test binary were released")

	after := exeRss(t)
	require.Less(t, after, before, "fewer of the binary's pages are mapped after Release")
	require.Equal(t, "rewritten", string(marker), "writable data survives")
	require.Equal(t, "ok", strings.ToLower("OK"), "code still runs, faulted back in")
}

// exeRss sums the Rss of this process's read-only mappings of its own executable, in kB.
func exeRss(t *testing.T) int64 {
	t.Helper()
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat("/proc/self/exe", &st))
	f, err := os.Open("/proc/self/smaps")
	require.NoError(t, err)
	defer f.Close()
	dev, ino := devString(st.Dev), strconv.FormatUint(st.Ino, 10)
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) >= 5 && strings.Contains(fl[0], "-") && !strings.HasSuffix(fl[0], ":") {
			in = len(fl[1]) == 4 && fl[1][1] != 'w' && fl[3] == dev && fl[4] == ino
			continue
		}
		if in && len(fl) >= 2 && fl[0] == "Rss:" {
			kb, err := strconv.ParseInt(fl[1], 10, 64)
			require.NoError(t, err)
			total += kb
		}
	}
	require.NoError(t, sc.Err())
	return total
}
