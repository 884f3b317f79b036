//go:build !linux

package binpages

import "errors"

// Release is Linux-only.
func Release() (int64, error) {
	return 0, errors.New("releasing binary pages is only implemented on Linux")
}
