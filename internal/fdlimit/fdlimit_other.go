//go:build !unix

package fdlimit

import "errors"

// Raise reports that open-file limits are not managed on this system.
func Raise() (before, after Limits, err error) {
	return before, after, errors.ErrUnsupported
}
