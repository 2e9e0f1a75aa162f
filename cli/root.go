package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Main runs the benchtop command line on args (os.Args[1:]) and returns the
// exit code. version is the binary's, shown by /v2 and in the log.
func Main(args []string, version string) int {
	// SIGHUP too: a workbench whose terminal went away (a dropped SSH
	// session) shuts down cleanly instead of lingering.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	root := newRootCmd(version)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtop:", err)
		return 1
	}
	return 0
}

func newRootCmd(version string) *cobra.Command {
	f := engineFlags{version: version}
	var logPath string
	var sample bool
	root := &cobra.Command{
		Use:   "benchtop",
		Short: "A local workbench for serving ML models",
		Long: `benchtop runs models as runners with adaptive batching, in the spirit of
BentoML's Runners. With no command it opens the workbench: a terminal screen
over the live engine (runners, batch sizes, latency, knobs, test inputs,
load), which also serves the engine on a local HTTP port. With no --config it
runs your copy of the sample config, made on first run as
$XDG_CONFIG_HOME/benchtop/benchtop.yaml (by default ~/.config/benchtop/benchtop.yaml):
it is watched, and w saves tweaks into it. --sample runs the embedded sample
instead, read-only.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runWorkbench(cmd, &f, logPath, sample)
		},
	}
	f.register(root)
	root.Flags().Lookup("config").Usage = "config file, watched and live-reloaded (default: your copy of the sample config, made on first run; see --sample)"
	root.Flags().StringVar(&logPath, "log-file", "", "where the workbench logs (default: ~/.benchtop/workbench.log)")
	root.Flags().BoolVar(&sample, "sample", false, "run the embedded sample config, read-only, instead of your copy of it (tweaks cannot be saved)")
	root.AddCommand(newServeCmd(version), newBenchCmd(), newModelsCmd(), newRunnablesCmd(), newConfigCmd(), newDeployCmd())
	return root
}
