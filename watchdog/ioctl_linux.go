package watchdog

import (
	"bytes"

	"golang.org/x/sys/unix"
)

// The request numbers come from x/sys/unix, which has them per architecture: the _IOR/_IOWR
// encoding differs on mips, powerpc and sparc. On the generic encoding they are
// WDIOC_GETSUPPORT 0x80285700, WDIOC_KEEPALIVE 0x80045705, WDIOC_SETTIMEOUT 0xC0045706 and
// WDIOC_GETTIMEOUT 0x80045707 (checked in ioctl_linux_test.go).
const wdiofSetTimeout = unix.WDIOF_SETTIMEOUT

func getSupport(fd int) (watchdogInfo, error) {
	info, err := unix.IoctlGetWatchdogInfo(fd)
	if err != nil {
		return watchdogInfo{}, err
	}
	ident, _, _ := bytes.Cut(info.Identity[:], []byte{0})
	return watchdogInfo{options: info.Options, identity: string(ident)}, nil
}

// setTimeout passes a pointer to a C int, as WDIOC_SETTIMEOUT expects.
func setTimeout(fd, sec int) error {
	return unix.IoctlSetPointerInt(fd, unix.WDIOC_SETTIMEOUT, sec)
}

// getTimeout reads into a 32-bit value: the kernel writes a C int, and IoctlGetInt's Go int
// would be read wrongly on 64-bit big-endian machines.
func getTimeout(fd int) (int, error) {
	v, err := unix.IoctlGetUint32(fd, unix.WDIOC_GETTIMEOUT)
	return int(int32(v)), err
}
