//go:build unix

package server

import (
	"fmt"
	"syscall"
)

// fileLimit is the process's RLIMIT_NOFILE. Go raises the soft limit to the
// hard one when the process starts (package syscall, since Go 1.19) and
// gives child processes the original back; benchtop never lowers it.
func fileLimit() (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, fmt.Errorf("getrlimit RLIMIT_NOFILE: %w", err)
	}
	return uint64(lim.Cur), uint64(lim.Max), nil
}
