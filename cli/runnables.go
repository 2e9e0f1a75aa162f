package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/onnx"
	"github.com/benchtop/benchtop/engine/process"
	"github.com/benchtop/benchtop/engine/remote"
	"github.com/benchtop/benchtop/samples"
)

// registry is every runnable this binary can build runners from.
func registry(pool *remote.Pool) (*engine.Registry, error) {
	reg := engine.NewRegistry()
	// remote: runners call runner servers through the pool, which its
	// caller closes after the engine.
	if err := pool.Register(reg); err != nil {
		return nil, err
	}
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
			pool := remote.NewPool(remote.Options{})
			defer pool.Close()
			reg, err := registry(pool)
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
					fmt.Fprintf(out, "  %-12s %s → %s  (%s)\n", m.Name, m.Inputs, m.Outputs, batch)
				}
			}
			return nil
		},
	}
}
