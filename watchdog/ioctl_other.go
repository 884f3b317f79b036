//go:build !linux

package watchdog

import "errors"

// errNotSupported is what the ioctl layer returns on systems without the Linux watchdog API.
var errNotSupported = errors.New("watchdog ioctls are only supported on Linux")

// Elsewhere only stand-ins work; a character device is refused at the first ioctl, which
// Required mode reports and Automatic mode logs.
const wdiofSetTimeout = 0x0080

func getSupport(int) (watchdogInfo, error) { return watchdogInfo{}, errNotSupported }
func setTimeout(int, int) error            { return errNotSupported }
func getTimeout(int) (int, error)          { return 0, errNotSupported }
