package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/benchtop/benchtop/samples/models"
	"github.com/benchtop/benchtop/store"
	"github.com/benchtop/benchtop/store/atomicfile"
	"github.com/benchtop/benchtop/store/names"
	"github.com/benchtop/benchtop/ui/console"
)

func newModelsCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "models",
		Short: "Manage the model store: list, get, import, export, delete",
		Long: `The model store keeps versioned models with their signatures, so that a
config can run one by its tag (model: mlp:latest). It lives in
$BENCHTOP_HOME/models, by default ~/.benchtop/models.

Tags are name (the latest version), name:latest, name:version, or
name:PREFIX for a version prefix that is unique.`,
	}
	cmd.PersistentFlags().StringVar(&dir, "store", "", "model store directory (default $BENCHTOP_HOME/models, else ~/.benchtop/models)")
	open := func() (*store.Store, error) {
		d := dir
		if d == "" {
			var err error
			if d, err = store.DefaultDir(); err != nil {
				return nil, err
			}
		}
		return store.Open(d)
	}
	cmd.AddCommand(
		newModelsListCmd(open),
		newModelsGetCmd(open),
		newModelsImportCmd(open),
		newModelsExportCmd(open),
		newModelsDeleteCmd(open),
		newModelsSamplesCmd(open),
	)
	return cmd
}

type openStore func() (*store.Store, error)

// modelView is a stored model as the commands print it: model.yaml plus
// where it is and whether it is the latest.
type modelView struct {
	store.Model `yaml:",inline"`
	Tag         string `yaml:"tag" json:"tag"`
	Path        string `yaml:"path" json:"path"`
	Latest      bool   `yaml:"latest" json:"latest"`
}

func view(m *store.Model) modelView {
	return modelView{Model: *m, Tag: m.Tag(), Path: m.Path(), Latest: m.Latest}
}

func writeAs(w io.Writer, format string, v any) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		if err := enc.Encode(v); err != nil {
			return err
		}
		return enc.Close()
	}
	return fmt.Errorf("output format %q: want table, json or yaml", format)
}

func newModelsListCmd(open openStore) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List stored models, newest version of each name first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := open()
			if err != nil {
				return err
			}
			all, err := s.List()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if format != "table" {
				views := make([]modelView, len(all))
				for i, m := range all {
					views[i] = view(m)
				}
				return writeAs(out, format, views)
			}
			if len(all) == 0 {
				fmt.Fprintf(out, "no models in %s: add one with benchtop models import FILE.onnx --name NAME (or benchtop models samples)\n", s.Dir())
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TAG\tLATEST\tFRAMEWORK\tSIGNATURE\tSIZE\tCREATED")
			for _, m := range all {
				latest := ""
				if m.Latest {
					latest = "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Tag(), latest, m.Framework, signature(m), console.Bytes(m.Size), m.Created.Local().Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

// signature is a one-line summary: "run(x float32[-1 64]) → probs float32[-1 10], batch dim 0"
// or "run(x float32[1 64]) → probs float32[1 10], not batchable".
func signature(m *store.Model) string {
	var parts []string
	for _, name := range m.Methods() {
		sig := m.Signatures[name]
		ins := make([]string, len(sig.Inputs))
		for i, t := range sig.Inputs {
			ins[i] = t.String()
		}
		outs := make([]string, len(sig.Outputs))
		for i, t := range sig.Outputs {
			outs[i] = t.String()
		}
		s := fmt.Sprintf("%s(%s) → %s", name, strings.Join(ins, ", "), strings.Join(outs, ", "))
		if sig.Batchable {
			s += fmt.Sprintf(", batch dim %d", sig.BatchDim)
		} else {
			s += ", not batchable"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func newModelsGetCmd(open openStore) *cobra.Command {
	var format string
	var verify bool
	cmd := &cobra.Command{
		Use:   "get TAG",
		Short: "Show one stored model: its signature, files, checksums, labels and where it is",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := open()
			if err != nil {
				return err
			}
			get := s.Get
			if verify {
				get = s.Verify
			}
			m, err := get(args[0])
			if err != nil {
				return err
			}
			if err := writeAs(cmd.OutOrStdout(), format, view(m)); err != nil {
				return err
			}
			if verify {
				files := slices.Sorted(maps.Keys(m.SHA256))
				note := fmt.Sprintf("verified %s: the sha256 of %d %s (%s) match model.yaml",
					m.Tag(), len(files), map[bool]string{true: "file", false: "files"}[len(files) == 1], strings.Join(files, ", "))
				// A YAML comment keeps the output YAML; JSON has none, so
				// there it goes to a terminal's stderr.
				if format != "json" {
					fmt.Fprintln(cmd.OutOrStdout(), "# "+note)
				} else if console.IsTerminal(os.Stderr) {
					fmt.Fprintln(cmd.ErrOrStderr(), note)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", "yaml", "output format: yaml or json")
	cmd.Flags().BoolVar(&verify, "verify", false, "recompute the files' checksums against model.yaml and say which were checked")
	return cmd
}

var defaultNameRE = regexp.MustCompile(`[^a-z0-9._-]+`)

// defaultName derives a model name from a file name: "MLP Small.onnx" →
// "mlp-small"; "" when nothing valid is left.
func defaultName(path string) string {
	base := strings.ToLower(strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)))
	name := strings.Trim(defaultNameRE.ReplaceAllString(base, "-"), "-._")
	if store.ValidName(name) {
		return name
	}
	return ""
}

// isArchive tells a tar.gz from an .onnx file by its gzip magic number.
func isArchive(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var magic [2]byte
	n, _ := io.ReadFull(f, magic[:])
	return n == 2 && magic[0] == 0x1f && magic[1] == 0x8b, nil
}

// archiveName says whether a file is named like a tar.gz.
func archiveName(path string) bool {
	p := strings.ToLower(path)
	return strings.HasSuffix(p, ".tar.gz") || strings.HasSuffix(p, ".tgz")
}

func newModelsImportCmd(open openStore) *cobra.Command {
	var (
		name, version, method string
		batchable             bool
		batchDim              int
		labels                []string
	)
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Add an ONNX model (FILE.onnx) or an exported archive (FILE.tar.gz) to the store",
		Long: `Import an ONNX model as a new version of --name (default: the file's name),
reading its inputs and outputs from the model itself. The new version becomes
the latest, so runners of name:latest reload onto it.

Runners batch callers' rows along --batch-dim when the model leaves that dim
dynamic ([N 64]). A model exported with a fixed batch size ([1 64]) is
imported not batchable, saying so: runners give it one request at a time.
Given --batchable or --batch-dim, batching is demanded and such a model is
refused.

An archive made by benchtop models export is imported as it is, checksums
verified; the flags describing a model do not apply to it.`,
		Example: `  benchtop models import mlp.onnx --name mlp
  benchtop models import mlp.onnx --name mlp --version v2 --label team=search
  benchtop models import detector.onnx --name detector --batchable=false
  benchtop models import mlp-20251125-150405-a1b2c3.tar.gz`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			archive, err := isArchive(path)
			if err != nil {
				return fmt.Errorf("import: %w", err)
			}
			if !archive && archiveName(path) {
				return fmt.Errorf("import %s: not a gzip archive, though the name says so (it does not start with gzip's bytes 1f 8b): import the tar.gz that benchtop models export wrote, or an ONNX model named .onnx", path)
			}
			s, err := open()
			if err != nil {
				return err
			}
			bar := newProgressBar(cmd, "importing "+filepath.Base(path))
			var m *store.Model
			if archive {
				for _, f := range []string{"name", "version", "method", "batchable", "batch-dim", "label"} {
					if cmd.Flags().Changed(f) {
						return fmt.Errorf("import %s: it is an archive, which carries its own %s: drop --%s", path, f, f)
					}
				}
				f, err := os.Open(path)
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				defer f.Close()
				st, err := f.Stat()
				if err != nil {
					return err
				}
				m, err = s.ImportArchive(cmd.Context(), bufio.NewReader(f), store.ArchiveOptions{Size: st.Size(), Progress: bar.Update})
				bar.Done()
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
			} else {
				if name == "" {
					if name = defaultName(path); name == "" {
						return fmt.Errorf("import %s: give the model a name with --name: %s", path, names.Rule)
					}
				}
				lbls, err := parseLabels(labels)
				if err != nil {
					return err
				}
				m, err = s.Import(cmd.Context(), path, store.ImportOptions{
					Name:    name,
					Version: version,
					// Batching asked for by a flag is demanded: a model
					// that cannot batch is refused, not served otherwise.
					Signature: &store.SignatureOptions{Method: method, Batchable: batchable, BatchDim: batchDim,
						Auto: !cmd.Flags().Changed("batchable") && !cmd.Flags().Changed("batch-dim")},
					Labels:   lbls,
					Progress: bar.Update,
				})
				bar.Done()
				if err != nil {
					return err
				}
			}
			latest := ""
			if m.Latest {
				latest = ", now " + m.Name + ":latest"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %s (%s%s)\n  %s\n", m.Tag(), console.Bytes(m.Size), latest, signature(m))
			for _, method := range m.Methods() {
				if note := m.Signatures[method].Note; note != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "  note: %s\n", note)
				}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&name, "name", "", "model name (default: from the file name)")
	fl.StringVar(&version, "version", "", "version (default: generated, time-sortable and unique)")
	fl.StringVar(&method, "method", "run", "name of the method runners serve")
	fl.BoolVar(&batchable, "batchable", true, "batch callers' rows along --batch-dim (the model must leave that dim dynamic); left out, a model that fixes it (shape [1 64]) is imported not batchable")
	fl.IntVar(&batchDim, "batch-dim", 0, "the batch dimension of the input and output")
	fl.StringArrayVar(&labels, "label", nil, "a label key=value (repeatable)")
	return cmd
}

func parseLabels(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

func newModelsExportCmd(open openStore) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export TAG [FILE]",
		Short: "Write one model version to a tar.gz (default NAME-VERSION.tar.gz; - for stdout)",
		Long: `Export a model version with its model.yaml into a single tar.gz, which
benchtop models import FILE.tar.gz adds to another store with every checksum
verified.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := open()
			if err != nil {
				return err
			}
			m, err := s.Get(args[0])
			if err != nil {
				return err
			}
			dest := m.Name + "-" + m.Version + ".tar.gz"
			if len(args) == 2 {
				dest = args[1]
			}
			if dest == "-" {
				_, err := s.Export(cmd.Context(), m.Tag(), cmd.OutOrStdout(), nil)
				return err
			}
			bar := newProgressBar(cmd, "exporting "+m.Tag())
			err = atomicfile.Write(dest, func(w io.Writer) error {
				_, err := s.Export(cmd.Context(), m.Tag(), w, bar.Update)
				return err
			})
			bar.Done()
			if err != nil {
				return err
			}
			st, err := os.Stat(dest)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exported %s to %s (%s)\n", m.Tag(), dest, console.Bytes(st.Size()))
			return nil
		},
	}
	return cmd
}

func newModelsDeleteCmd(open openStore) *cobra.Command {
	return &cobra.Command{
		Use:   "delete TAG...",
		Short: "Delete model versions; latest moves to the newest version left",
		Long: `Delete the version each tag resolves to (a bare name means its latest
version). Runners of name:latest reload onto the newest version left; when
none is left the name is gone and they fail their next reload.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := open()
			if err != nil {
				return err
			}
			var errs []error
			for _, tag := range args {
				m, err := s.Delete(tag)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				now := "no version of " + m.Name + " is left"
				if latest, err := s.Get(m.Name); err == nil {
					now = m.Name + ":latest is " + latest.Tag()
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %s (%s)\n", m.Tag(), now)
			}
			return errors.Join(errs...)
		},
	}
}

func newModelsSamplesCmd(open openStore) *cobra.Command {
	return &cobra.Command{
		Use:   "samples",
		Short: "Import the sample models mlp-small, mlp-large and text-classifier, unless they are there",
		Long: `Generate the sample models (deterministic weights) and import each one whose
name has no version yet:

  mlp-small        float32 [N, 64]  → 256 → 256 → 10 class probabilities
  mlp-large        float32 [N, 256] → 1024 → 1024 → 10 class probabilities
  text-classifier  int64 input_ids and attention_mask [N, seq] (token ids
                   below 1000) → int64 label [N], float32 probabilities [N, 4]`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := open()
			if err != nil {
				return err
			}
			ms, err := models.EnsureSamples(cmd.Context(), s)
			if err != nil {
				return err
			}
			for _, m := range ms {
				fmt.Fprintf(cmd.OutOrStdout(), "%s (%s)\n  %s\n", m.Tag(), console.Bytes(m.Size), signature(m))
			}
			return nil
		},
	}
}

// newProgressBar draws on stderr while stdout and stderr are both
// terminals; piped or redirected, the commands stay quiet.
func newProgressBar(cmd *cobra.Command, label string) *console.Bar {
	if !console.IsTerminal(cmd.OutOrStdout()) || !console.IsTerminal(cmd.ErrOrStderr()) {
		return console.NewBar(nil, label)
	}
	return console.NewBar(cmd.ErrOrStderr(), label)
}
