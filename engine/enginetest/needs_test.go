package enginetest_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/benchtop/benchtop/engine/enginetest"
)

// verdict records what Needs asked of the test instead of ending it.
type verdict struct {
	testing.TB
	failed, skipped string
}

func (v *verdict) Helper()                        {}
func (v *verdict) Fatalf(format string, a ...any) { v.failed = fmt.Sprintf(format, a...) }
func (v *verdict) Skipf(format string, a ...any)  { v.skipped = fmt.Sprintf(format, a...) }

// TestNeeds: without what a test needs, CI fails it and elsewhere it is
// skipped; both say what is missing and how to install it.
func TestNeeds(t *testing.T) {
	missing := errors.New("libonnxruntime.so.1: no such file")
	for _, c := range []struct {
		ci   string
		fail bool
	}{{"true", true}, {"1", true}, {"yes", true}, {"", false}, {"false", false}, {"0", false}} {
		t.Run("CI="+c.ci, func(t *testing.T) {
			t.Setenv("CI", c.ci)
			if enginetest.CI() != c.fail {
				t.Fatalf("CI() = %v", enginetest.CI())
			}
			v := &verdict{TB: t}
			enginetest.Needs(v, "ONNX Runtime", "make onnxruntime", missing)
			said := v.skipped
			if c.fail {
				said = v.failed
			}
			if (v.failed != "") != c.fail || (v.skipped != "") == c.fail {
				t.Fatalf("failed %q, skipped %q", v.failed, v.skipped)
			}
			for _, want := range []string{"ONNX Runtime", "make onnxruntime", "no such file"} {
				if !strings.Contains(said, want) {
					t.Errorf("%q does not say %q", said, want)
				}
			}
		})
	}
}
