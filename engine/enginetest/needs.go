package enginetest

import (
	"os"
	"strings"
	"testing"
)

// CI reports whether the tests run under CI: the environment variable CI
// set to true (or 1, yes), as CI services and the Makefile's unit and test
// targets set it.
func CI() bool {
	switch strings.ToLower(os.Getenv("CI")) {
	case "true", "1", "yes":
		return true
	}
	return false
}

// Needs is for a test that cannot run without something installed apart
// from the Go modules: ONNX Runtime (make onnxruntime), python3. err says
// what is missing and install how to get it. Under CI, which must run every
// test, the test fails; elsewhere it is skipped, saying both, so that a
// plain `go test ./...` on a bare machine passes without hiding why.
func Needs(t testing.TB, what, install string, err error) {
	t.Helper()
	if CI() {
		t.Fatalf("%s is missing, and under CI (CI=%s) every test must run: %v; install it: %s", what, os.Getenv("CI"), err, install)
		return
	}
	t.Skipf("%s is missing (%v): install it with %s, then run the test again (CI=true makes this a failure)", what, err, install)
}
