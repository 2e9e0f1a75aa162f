package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/benchtop/benchtop/samples"
)

// TestUserConfigFirstRun: the first run copies the sample config into the
// user's config folder and says so; later runs use that copy as the user
// left it. The folder is the test's: nothing touches the real one.
func TestUserConfigFirstRun(t *testing.T) {
	cfgHome := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfgHome)
	t.Setenv("HOME", t.TempDir())
	want := filepath.Join(cfgHome, "benchtop", "benchtop.yaml")

	path, made, err := userConfig()
	if err != nil {
		t.Fatal(err)
	}
	if path != want || !made {
		t.Fatalf("first run: %s (made %v), want %s made", path, made, want)
	}
	data, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(data, samples.Config) {
		t.Fatalf("the copy is not the sample config (%v)", err)
	}
	if note := userConfigNote(path, made); !strings.Contains(note, path) || !strings.Contains(note, "copied the sample") {
		t.Fatalf("first-run note does not say where: %q", note)
	}

	edited := append(data, []byte("# mine now\n")...)
	if err := os.WriteFile(path, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	path, made, err = userConfig()
	if err != nil || path != want || made {
		t.Fatalf("second run: %s made %v (%v), want %s as it is", path, made, err, want)
	}
	if data, _ := os.ReadFile(path); !bytes.Equal(data, edited) {
		t.Fatal("the second run replaced the user's edited config")
	}
	if note := userConfigNote(path, made); !strings.Contains(note, path) || strings.Contains(note, "copied") {
		t.Fatalf("later-run note: %q", note)
	}
}

// TestHelpStatesEachDefaultOnce: a flag whose usage says its default has no
// second "(default …)" from the flag package after it.
func TestHelpStatesEachDefaultOnce(t *testing.T) {
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		for _, line := range strings.Split(cmd.LocalFlags().FlagUsages(), "\n") {
			if strings.Count(line, "(default") > 1 {
				t.Errorf("%s: %s", cmd.CommandPath(), strings.TrimSpace(line))
			}
		}
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd("test"))
}
