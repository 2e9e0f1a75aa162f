package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/onnx"
	"github.com/benchtop/benchtop/engine/remote"
	"github.com/benchtop/benchtop/samples"
	"github.com/benchtop/benchtop/samples/models"
	"github.com/benchtop/benchtop/store"
	"github.com/benchtop/benchtop/watcher"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check a config file or print the effective config",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check FILE",
		Short: "Validate a config without running it; every problem is listed with file:line:column",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			eng, closeChecker, err := checker()
			if err != nil {
				return err
			}
			defer closeChecker()
			models, err := openModels(cmd.Context(), false)
			if err != nil {
				return err
			}
			cfg, err := watcher.LoadAndValidate(cmd.Context(), args[0], eng, os.Getenv, watcher.WithModels(models))
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return fmt.Errorf("%s is not valid", args[0])
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d runners, %d apis)\n", args[0], len(cfg.Runners), len(cfg.APIs))
			return nil
		},
	})
	var path string
	print := &cobra.Command{
		Use:   "print",
		Short: "Print the effective config (defaults and environment overrides filled in)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			eng, closeChecker, err := checker()
			if err != nil {
				return err
			}
			defer closeChecker()
			cfg, err := loadConfig(cmd.Context(), path, eng)
			if err != nil {
				return err
			}
			out, err := cfg.Effective()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	print.Flags().StringVarP(&path, "config", "c", "", "config file (default: the embedded sample config)")
	cmd.AddCommand(print)
	return cmd
}

// checker is an engine that serves nothing, to check configs on: a check is
// the planning step of a reload without the applying.
// A remote: runner's signature is read from its servers, so checking one
// reaches them; close releases those connections.
func checker() (eng *engine.Engine, close func(), err error) {
	pool := remote.NewPool(remote.Options{})
	reg, err := registry(pool)
	if err != nil {
		return nil, nil, err
	}
	eng, err = engine.New(engine.Options{Registry: reg})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return eng, pool.Close, nil
}

// loadConfig loads path, or the embedded sample when empty, and checks it
// on eng.
func loadConfig(ctx context.Context, path string, eng *engine.Engine) (*watcher.Checked, error) {
	models, err := openModels(ctx, path == "")
	if err != nil {
		return nil, err
	}
	if path == "" {
		return watcher.ParseAndValidate(ctx, samples.ConfigName, samples.Config, eng, os.Getenv, watcher.WithModels(models))
	}
	return watcher.LoadAndValidate(ctx, path, eng, os.Getenv, watcher.WithModels(models))
}

// openModels opens the model store for `model:` runners. The embedded
// sample config runs the sample MLPs, which are generated and imported on
// first use.
func openModels(ctx context.Context, withSamples bool) (onnx.StoreResolver, error) {
	dir, err := store.DefaultDir()
	if err != nil {
		return onnx.StoreResolver{}, err
	}
	s, err := store.Open(dir)
	if err != nil {
		return onnx.StoreResolver{}, fmt.Errorf("open the model store: %w", err)
	}
	if withSamples {
		if _, err := models.EnsureSamples(ctx, s); err != nil {
			return onnx.StoreResolver{}, fmt.Errorf("import the sample models: %w", err)
		}
	}
	return onnx.StoreResolver{Store: s}, nil
}

// userConfigName is the workbench's own config under the user's config
// folder (os.UserConfigDir: $XDG_CONFIG_HOME or ~/.config on Linux,
// ~/Library/Application Support on macOS).
const userConfigName = "benchtop/benchtop.yaml"

// userConfig is the config the workbench runs when given no --config: the
// user's copy of the sample config, made on first run so that tweaks saved
// with `w` have a file to go to. It says where it is and whether it was
// just made. A copy the user has edited is never replaced.
func userConfig() (path string, made bool, err error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", false, fmt.Errorf("find your config folder: %w (give --config FILE, or --sample to run the embedded sample)", err)
	}
	path = filepath.Join(dir, filepath.FromSlash(userConfigName))
	if _, err := os.Stat(path); err == nil {
		return path, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("your config %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", false, fmt.Errorf("make your config folder: %w (give --config FILE, or --sample to run the embedded sample)", err)
	}
	// O_EXCL: two first runs at once make one copy, and neither replaces
	// the other's.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return path, false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("copy the sample config to %s: %w (give --config FILE, or --sample to run the embedded sample)", path, err)
	}
	_, werr := f.Write(samples.Config)
	if serr := f.Sync(); werr == nil {
		werr = serr
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path) // a half copy would be read as the user's config next time
		return "", false, fmt.Errorf("copy the sample config to %s: %w", path, werr)
	}
	return path, true, nil
}

// userConfigNote is what the workbench says about the config it runs when
// given no --config.
func userConfigNote(path string, made bool) string {
	if made {
		return fmt.Sprintf("first run: copied the sample config to %s; it is watched, and w saves tweaks into it (--sample runs the embedded one, read-only)", path)
	}
	return fmt.Sprintf("running your config %s (a copy of the sample made on first run); w saves tweaks into it", path)
}
