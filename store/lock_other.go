//go:build !unix

package store

import (
	"fmt"
	"os"
	"runtime"
)

func lockFile(path string, wait bool) (*os.File, bool, error) {
	return nil, false, fmt.Errorf("lock %s: the model store needs flock, which %s lacks", path, runtime.GOOS)
}
