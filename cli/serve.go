package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/benchtop/benchtop/samples"
)

func newLogger(format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func newServeCmd(version string) *cobra.Command {
	f := engineFlags{version: version}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the engine headless: the config's runners and APIs over HTTP",
		Long: `Run the engine without the workbench: the runners and APIs of the config,
served on a local port (default http://127.0.0.1:3000) and, over gRPC (the
KServe v2 inference.GRPCInferenceService, with the standard health service
and reflection), on the next one (default 127.0.0.1:3001), live-reloading
the config file. SIGINT or SIGTERM stop accepting, let in-flight requests finish
(up to --drain-timeout), then exit 0.

With --runners NAME[,NAME...] it is a runner server: it serves only those
runners of the config, without its APIs (KServe v2 over HTTP and gRPC,
/metrics, /livez and /readyz as always), and batches their requests for the
front ends that call it as a remote: runner. Live reload still applies to
those runners. See docs/KUBERNETES.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(f.logFormat, slog.LevelInfo)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("runners") {
				if f.runners, err = runnerNames(f.runners); err != nil {
					return err
				}
			}
			return runStack(cmd.Context(), &f, logger, func(ctx context.Context, st *stack) error {
				source := f.config
				if source == "" {
					source = samples.ConfigName
				}
				if f.runners != nil {
					logger.Info("benchtop serving runners", "runners", f.runners, "url", st.URL(), "grpc", st.GRPCAddr(), "config", source, "version", version)
				} else {
					logger.Info("benchtop serving", "url", st.URL(), "grpc", st.GRPCAddr(), "config", source, "version", version)
				}
				<-ctx.Done()
				logger.Info("shutting down: draining runners")
				return nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringSliceVar(&f.runners, "runners", nil, "serve only these runners of the config (comma-separated), without APIs: a runner server")
	return cmd
}

// runnerNames checks --runners: at least one name, each once.
func runnerNames(given []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, n := range given {
		n = strings.TrimSpace(n)
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--runners: name at least one runner of the config (--runners sim,sentiment)")
	}
	return out, nil
}
