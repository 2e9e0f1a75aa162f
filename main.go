// Command benchtop is a local workbench for serving ML models: runners with
// adaptive batching, a model store, an HTTP front end and a terminal UI.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/onnx"
	"github.com/benchtop/benchtop/engine/process"
	"github.com/benchtop/benchtop/samples"
)

func main() {
	// SIGHUP too: a workbench whose terminal went away (a dropped SSH
	// session) shuts down cleanly instead of lingering.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtop:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	var f engineFlags
	var logPath string
	root := &cobra.Command{
		Use:   "benchtop",
		Short: "A local workbench for serving ML models",
		Long: `benchtop runs models as runners with adaptive batching, in the spirit of
BentoML's Runners. With no command it opens the workbench: a terminal screen
over the live engine (runners, batch sizes, latency, knobs, test inputs,
load), which also serves the engine on a local HTTP port. With no --config it
runs the embedded sample config.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runWorkbench(cmd, &f, logPath)
		},
	}
	f.register(root)
	root.Flags().StringVar(&logPath, "log-file", "", "where the workbench logs (default ~/.benchtop/workbench.log)")
	root.AddCommand(newServeCmd(), newBenchCmd(), newModelsCmd(), newRunnablesCmd(), newConfigCmd())
	return root
}

// registry is every runnable this binary can build runners from.
func registry() (*engine.Registry, error) {
	reg := engine.NewRegistry()
	if err := samples.Register(reg); err != nil {
		return nil, err
	}
	// Worker processes (a Python worker among them) declare their methods
	// at their handshake.
	if err := reg.Register(process.Type()); err != nil {
		return nil, err
	}
	// The ONNX runtime library is looked up now and loaded when a model
	// runner first starts; without it only ONNX runners fail, saying how
	// to install it.
	if err := onnx.Register(reg, onnx.Locate()); err != nil {
		return nil, err
	}
	return reg, nil
}

func newRunnablesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "runnables",
		Short: "List the runnable types runners can be made of, with their method signatures",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg, err := registry()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, name := range reg.Names() {
				t, err := reg.Lookup(name)
				if err != nil {
					return err
				}
				threads := "single-threaded"
				if t.MultiThreaded {
					threads = "multi-threaded"
				}
				fmt.Fprintf(out, "%s — %s (%s)\n", t.Name, t.Doc, threads)
				if t.Describe != nil && len(t.Methods) == 0 {
					fmt.Fprintln(out, "  (methods come from each runner's model or worker handshake)")
				}
				for _, m := range t.Methods {
					batch := "not batchable"
					if m.Batchable {
						batch = fmt.Sprintf("batchable, batch dim %d", m.BatchDim)
					}
					fmt.Fprintf(out, "  %-12s %s → %s  (%s)\n", m.Name, m.Input, m.Output, batch)
				}
			}
			return nil
		},
	}
}
