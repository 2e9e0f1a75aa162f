//go:build !unix

package server

import "errors"

func fileLimit() (soft, hard uint64, err error) {
	return 0, 0, errors.New("no open-file limit to read on this system")
}
