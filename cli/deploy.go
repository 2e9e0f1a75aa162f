package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/benchtop/benchtop/deploy/kubernetes"
	"github.com/benchtop/benchtop/watcher"
)

func newDeployCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deploy",
		Short: "Write what runs a config elsewhere (Kubernetes manifests)",
	}
	var (
		path, outDir string
		opts         kubernetes.Options
		skipCheck    bool
	)
	k8s := &cobra.Command{
		Use:   "kubernetes --config FILE --image IMAGE",
		Short: "Write Kubernetes manifests that run a config as runner servers behind an API front end",
		Long: `Write the Kubernetes manifests that run a config as a fleet: per runner, a
Deployment of runner servers (benchtop serve --runners NAME) behind a
headless Service, a PodDisruptionBudget and, where replicas.max is above
replicas.min, an autoscaler on the runner's queue depth; and the API front
end, a Deployment and Service whose config calls every runner on its
Service. The config goes in a ConfigMap, beside the front end's.

Without --out the manifests go to stdout as one multi-document YAML stream
(kubectl apply -f -); with --out, one file per object, numbered in the order
to apply them (kubectl apply -f DIR). The config is checked first, as
benchtop config check does. Nothing talks to a cluster. See
docs/KUBERNETES.md.`,
		Example: `  benchtop deploy kubernetes --config benchtop.yaml --image registry.example/benchtop:0.4 | kubectl apply -f -
  benchtop deploy kubernetes -c benchtop.yaml --image registry.example/benchtop:0.4 --namespace ml --autoscaler keda --out manifests/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return fmt.Errorf("--config: required, the config to deploy")
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("read config: %w", err)
			}
			cfg, err := watcher.Parse(path, src)
			if err != nil {
				return fmt.Errorf("%s is not valid:\n%w", path, err)
			}
			if !skipCheck {
				eng, closeChecker, err := checker()
				if err != nil {
					return err
				}
				defer closeChecker()
				models, err := openModels(cmd.Context(), false)
				if err != nil {
					return err
				}
				// Remote runners are checked where the front end runs them:
				// a runner server here is not what they call.
				var local []string
				for _, r := range cfg.Runners {
					if r.Remote == nil {
						local = append(local, r.Name)
					}
				}
				if len(local) > 0 {
					if _, err := cfg.Check(cmd.Context(), eng, watcher.WithModels(models), watcher.WithRunners(local)); err != nil {
						return fmt.Errorf("%s is not valid (--skip-check deploys it all the same):\n%w", path, err)
					}
				}
			}
			objs, err := kubernetes.Build(cfg, src, opts)
			if err != nil {
				return err
			}
			if outDir != "" {
				if err := kubernetes.WriteDir(outDir, objs); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d manifests to %s: kubectl apply -f %s\n", len(objs), outDir, outDir)
				return nil
			}
			out, err := kubernetes.Marshal(objs)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	fl := k8s.Flags()
	fl.StringVarP(&path, "config", "c", "", "config file to deploy (required)")
	fl.StringVar(&opts.Image, "image", "", "container image whose entrypoint is benchtop (required; see the Dockerfile)")
	fl.StringVar(&opts.Namespace, "namespace", "default", "namespace of every object")
	fl.StringVar(&opts.Autoscaler, "autoscaler", kubernetes.HPA, "per-runner autoscaling on queue depth: hpa (autoscaling/v2 through prometheus-adapter), keda (a ScaledObject) or none")
	fl.StringVar(&opts.PrometheusURL, "prometheus-url", kubernetes.DefaultPrometheusURL, "the Prometheus that KEDA queries (--autoscaler keda)")
	fl.DurationVar(&opts.DrainTimeout, "drain-timeout", 30*time.Second, "serve's --drain-timeout in every pod; pods get longer than this to stop")
	fl.Int32Var(&opts.FrontEndReplicas, "frontend-replicas", 2, "pods of the API front end")
	fl.StringVarP(&outDir, "out", "o", "", "write one file per object to this folder instead of stdout")
	fl.BoolVar(&skipCheck, "skip-check", false, "deploy without checking the config here (its model: runners may resolve only in the image's store)")
	cmd.AddCommand(k8s)
	return cmd
}
