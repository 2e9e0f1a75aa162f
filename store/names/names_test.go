package names_test

import (
	"strings"
	"testing"

	"github.com/benchtop/benchtop/store/names"
)

func TestValid(t *testing.T) {
	cases := []struct {
		name  string
		valid bool
	}{
		{"sim", true},
		{"a", true},
		{"0", true},
		{"mlp-small", true},
		{"resnet50-v1.12", true},
		{"my_runner", true},
		{"a..b", true},
		{strings.Repeat("a", 63), true},
		{"", false},
		{strings.Repeat("a", 64), false},
		{"Sim", false},
		{"-sim", false},
		{"sim-", false},
		{".hidden", false},
		{"sim.", false},
		{"_x", false},
		{"..", false},
		{"../etc", false},
		{"a/b", false},
		{"a b", false},
		{"a:b", false},
		{"café", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := names.Valid(c.name); got != c.valid {
				t.Fatalf("Valid(%q) = %v, want %v", c.name, got, c.valid)
			}
		})
	}
}
