package store

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/benchtop/benchtop/store/onnxpb"
)

// ManifestFile is the description every version directory holds.
const ManifestFile = "model.yaml"

// FrameworkONNX is the only framework the store imports today.
const FrameworkONNX = "onnx"

// Model is one stored version, as model.yaml records it.
type Model struct {
	Name      string `yaml:"name" json:"name"`
	Version   string `yaml:"version" json:"version"`
	Framework string `yaml:"framework" json:"framework"`
	// File is the model file inside the version directory.
	File    string    `yaml:"file" json:"file"`
	Created time.Time `yaml:"created" json:"created"`
	// Size is the bytes of every file but model.yaml.
	Size int64 `yaml:"size" json:"size"`
	// SHA256 maps each file but model.yaml to its hex checksum.
	SHA256     map[string]string    `yaml:"sha256" json:"sha256"`
	Signatures map[string]Signature `yaml:"signatures" json:"signatures"`
	Labels     map[string]string    `yaml:"labels,omitempty" json:"labels,omitempty"`
	Metadata   map[string]string    `yaml:"metadata,omitempty" json:"metadata,omitempty"`

	// Dir is the version directory; it is where the model is, not part of
	// what it is, so it is not written.
	Dir string `yaml:"-" json:"-"`
	// Latest says whether name:latest means this version when it was read.
	Latest bool `yaml:"-" json:"-"`
}

// Signature is how one method of a runner built from the model is called.
type Signature struct {
	Batchable bool         `yaml:"batchable" json:"batchable"`
	BatchDim  int          `yaml:"batch_dim" json:"batch_dim"`
	Inputs    []TensorSpec `yaml:"inputs" json:"inputs"`
	Outputs   []TensorSpec `yaml:"outputs" json:"outputs"`
}

// TensorSpec is one model input or output: dtype names as in engine
// (float32, int64, …) and -1 for a dynamic dim.
type TensorSpec struct {
	Name  string `yaml:"name" json:"name"`
	DType string `yaml:"dtype" json:"dtype"`
	Shape []int  `yaml:"shape,flow" json:"shape"`
	// Kind is set when the value is not a tensor (sequence, map, …).
	Kind string `yaml:"kind,omitempty" json:"kind,omitempty"`
}

// String is e.g. "x float32[-1 64]".
func (t TensorSpec) String() string {
	if t.Kind != "" {
		return t.Name + " " + t.Kind
	}
	dims := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = strconv.Itoa(d)
	}
	return t.Name + " " + t.DType + "[" + strings.Join(dims, " ") + "]"
}

// Tag is "name:version".
func (m *Model) Tag() string { return m.Name + ":" + m.Version }

// Path is the model file's absolute path, for a runner to load.
func (m *Model) Path() string { return filepath.Join(m.Dir, m.File) }

// Methods lists the signature names, sorted.
func (m *Model) Methods() []string {
	names := make([]string, 0, len(m.Signatures))
	for n := range m.Signatures {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func specsOf(vs []onnxpb.ValueInfo) []TensorSpec {
	out := make([]TensorSpec, len(vs))
	for i, v := range vs {
		out[i] = TensorSpec{Name: v.Name, DType: v.ElemType.String(), Shape: v.Shape()}
		if v.Kind != onnxpb.KindTensor {
			out[i] = TensorSpec{Name: v.Name, Kind: v.Kind.String()}
		}
	}
	return out
}

// describeONNX reads the inputs and outputs of an ONNX model and checks the
// signature can be served from them.
func describeONNX(path string, sig SignatureOptions) (Signature, map[string]string, error) {
	pb, err := onnxpb.ReadFile(path)
	if err != nil {
		return Signature{}, nil, err
	}
	s := Signature{
		Batchable: sig.Batchable,
		BatchDim:  sig.BatchDim,
		Inputs:    specsOf(pb.Graph.GraphInputs()),
		Outputs:   specsOf(pb.Graph.Outputs),
	}
	if err := s.check(); err != nil {
		return Signature{}, nil, err
	}
	meta := map[string]string{
		"onnx.ir_version": strconv.FormatInt(pb.IRVersion, 10),
		"onnx.opset":      strconv.FormatInt(pb.Opset(), 10),
	}
	for k, v := range map[string]string{"onnx.producer": strings.TrimSpace(pb.ProducerName + " " + pb.ProducerVersion), "onnx.graph": pb.Graph.Name} {
		if v != "" {
			meta[k] = v
		}
	}
	for _, p := range pb.Metadata {
		meta["onnx.meta."+p.Key] = p.Value
	}
	return s, meta, nil
}

// check reports a batchable signature whose batch dim the model fixes.
func (s Signature) check() error {
	if len(s.Inputs) == 0 || len(s.Outputs) == 0 {
		return fmt.Errorf("the model has %d inputs and %d outputs; it needs at least one of each", len(s.Inputs), len(s.Outputs))
	}
	if s.BatchDim < 0 {
		return fmt.Errorf("batch dim %d: want 0 or more", s.BatchDim)
	}
	if !s.Batchable {
		return nil
	}
	for _, group := range []struct {
		what  string
		specs []TensorSpec
	}{{"input", s.Inputs}, {"output", s.Outputs}} {
		for _, t := range group.specs {
			if t.Kind != "" {
				continue // not a tensor: the runner says what it cannot serve
			}
			if s.BatchDim >= len(t.Shape) {
				return fmt.Errorf("%s %q has %d dims, so it has no batch dim %d: import with a smaller --batch-dim or --batchable=false", group.what, t.Name, len(t.Shape), s.BatchDim)
			}
			if d := t.Shape[s.BatchDim]; d >= 0 {
				return fmt.Errorf("%s %q fixes dim %d at %d, so rows from several callers cannot be batched along it: re-export the model with a dynamic batch axis or import with --batchable=false", group.what, t.Name, s.BatchDim, d)
			}
		}
	}
	return nil
}

func readManifest(dir string) (*Model, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, err
	}
	m, err := parseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestFile), err)
	}
	m.Dir = dir
	return m, nil
}

func parseManifest(raw []byte) (*Model, error) {
	var m Model
	if err := yaml.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if err := checkName(m.Name); err != nil {
		return nil, err
	}
	if err := checkVersion(m.Version); err != nil {
		return nil, err
	}
	if !validFile(m.File) || m.File == ManifestFile {
		return nil, fmt.Errorf("file %q: want a plain file name", m.File)
	}
	if _, ok := m.SHA256[m.File]; !ok {
		return nil, fmt.Errorf("no sha256 for the model file %q", m.File)
	}
	for f, sum := range m.SHA256 {
		if !validFile(f) || f == ManifestFile {
			return nil, fmt.Errorf("sha256 of %q: want a plain file name", f)
		}
		if len(sum) != 64 {
			return nil, fmt.Errorf("sha256 of %q is %q: want 64 hex digits", f, sum)
		}
	}
	return &m, nil
}

func (m *Model) marshal() ([]byte, error) {
	b, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", ManifestFile, err)
	}
	return append([]byte("# written by benchtop; the checksums guard the files next to it\n"), b...), nil
}
