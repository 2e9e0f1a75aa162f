package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

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
	Batchable bool `yaml:"batchable" json:"batchable"`
	BatchDim  int  `yaml:"batch_dim" json:"batch_dim"`
	// Note says why an import that asked for batching, not insisting,
	// recorded the signature not batchable: what the model fixes.
	Note    string       `yaml:"note,omitempty" json:"note,omitempty"`
	Inputs  []TensorSpec `yaml:"inputs" json:"inputs"`
	Outputs []TensorSpec `yaml:"outputs" json:"outputs"`
}

// TensorSpec is one model input or output: dtype names as in engine
// (float32, int64, …) and -1 for a dynamic dim.
type TensorSpec struct {
	Name  string `yaml:"name" json:"name"`
	DType string `yaml:"dtype" json:"dtype"`
	Shape []int  `yaml:"shape,flow" json:"shape"`
	// Kind is set when the value is not a tensor (sequence, map, …). Import
	// refuses such models; manifests written before it did may have one.
	Kind string `yaml:"kind,omitempty" json:"kind,omitempty"`
	// Unbatched marks, in a batchable signature, an input the model does
	// not let vary along the batch dim (a fixed size there, or no such
	// dim): it is not cut into callers' rows but passed once per batch, so
	// only requests that send the same value share a batch.
	Unbatched bool `yaml:"unbatched,omitempty" json:"unbatched,omitempty"`
}

// String is e.g. "x float32[-1 64]", "scale float32[1] unbatched".
func (t TensorSpec) String() string {
	if t.Kind != "" {
		return t.Name + " " + t.Kind
	}
	dims := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = strconv.Itoa(d)
	}
	s := t.Name + " " + t.DType + "[" + strings.Join(dims, " ") + "]"
	if t.Unbatched {
		s += " unbatched"
	}
	return s
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
			out[i] = TensorSpec{Name: v.Name, Kind: v.Type()}
		}
	}
	return out
}

// describeONNX reads the inputs and outputs of an ONNX model and checks the
// signature can be served from them. Its errors name no path: the file is
// a copy in the store's scratch folder, and the caller names the file the
// user gave.
func describeONNX(path string, sig SignatureOptions) (Signature, map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Signature{}, nil, err
	}
	pb, err := onnxpb.Read(data)
	if err != nil {
		return Signature{}, nil, notONNX(data, err)
	}
	ins, outs := pb.Graph.GraphInputs(), pb.Graph.Outputs
	if err := CheckTensors(ins, outs); err != nil {
		return Signature{}, nil, err
	}
	s := Signature{
		Batchable: sig.Batchable,
		BatchDim:  sig.BatchDim,
		Inputs:    specsOf(ins),
		Outputs:   specsOf(outs),
	}
	if err := s.check(ins, sig.Auto); err != nil {
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

// exportHint is how a model becomes an ONNX file, for messages.
const exportHint = "export the model to ONNX first (torch.onnx.export, tf2onnx, skl2onnx) and import the .onnx file"

// notONNX says what is wrong with data, which onnxpb could not read (err):
// empty, cut short, or what it is instead, judged by its first bytes.
func notONNX(data []byte, err error) error {
	head := data[:min(len(data), 512)]
	switch {
	case len(data) == 0:
		return errors.New("the file is empty, not an ONNX model")
	case bytes.HasPrefix(data, []byte("PK\x03\x04")):
		return fmt.Errorf("it is a zip archive, not an ONNX model (a PyTorch .pt or .pth checkpoint is one): %s", exportHint)
	case bytes.HasPrefix(data, []byte("\x89HDF\r\n\x1a\n")):
		return fmt.Errorf("it is an HDF5 file, not an ONNX model (a Keras .h5 model is one): %s", exportHint)
	case len(data) > 1 && data[0] == 0x80 && data[1] >= 2 && data[1] <= 5:
		return fmt.Errorf("it is a Python pickle, not an ONNX model (a model saved with pickle, joblib or torch.save is one): %s", exportHint)
	case utf8.Valid(head) && printable(head):
		line, _, _ := strings.Cut(string(head), "\n")
		if len(line) > 40 {
			line = line[:40] + "…"
		}
		return fmt.Errorf("it is text (it begins %q), not an ONNX model, which is a binary protobuf: %s", line, exportHint)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("it ends in the middle of the model, after %d bytes: the file is cut short (an interrupted download or copy?); get the whole file again", len(data))
	}
	return fmt.Errorf("%w; %s", err, exportHint)
}

// printable says whether text is what a person writes: no control bytes
// but whitespace.
func printable(text []byte) bool {
	for _, r := range string(text) {
		if unicode.IsControl(r) && !unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// CheckTensors refuses inputs and outputs that are not tensors, saying how
// to export the model so that they are. benchtop's values are tensors,
// text and JSON; a sequence or a map has no batch dim to cut callers' rows
// along. The onnx runner refuses them with the same message.
func CheckTensors(ins, outs []onnxpb.ValueInfo) error {
	for _, side := range []struct {
		what string
		vs   []onnxpb.ValueInfo
	}{{"input", ins}, {"output", outs}} {
		for _, v := range side.vs {
			if v.Kind == onnxpb.KindTensor {
				continue
			}
			err := fmt.Errorf("%s %q is a %s, not a tensor, and benchtop serves tensors only", side.what, v.Name, v.Type())
			if isZipMap(v) {
				return fmt.Errorf("%w: it is what scikit-learn's ZipMap makes of a classifier's probabilities; convert the model again with ZipMap off, e.g. skl2onnx.to_onnx(model, X, options={id(model): {\"zipmap\": False}}), and %q becomes a float32 tensor [N, classes]", err, v.Name)
			}
			return fmt.Errorf("%w: export the model so that it %ss tensors", err, map[string]string{"input": "take", "output": "return"}[side.what])
		}
	}
	return nil
}

// isZipMap reports a sequence of maps, which is what ZipMap returns.
func isZipMap(v onnxpb.ValueInfo) bool {
	return v.Kind == onnxpb.KindSequence && v.Elem != nil && v.Elem.Kind == onnxpb.KindMap
}

// check reports what makes the signature impossible to serve: no input or
// output, a negative batch dim, or for a batchable signature an output the
// model does not let vary along the batch dim or no input that it does. An
// input the model fixes along the batch dim is marked Unbatched (the rule
// the onnx runner follows too): ins are the model's inputs, in order.
//
// With auto, a model that cannot be batched is not an error: a model
// exported with a fixed batch size ([1, 64]) is common and runs fine one
// request at a time, so the signature becomes not batchable and Note says
// why.
func (s *Signature) check(ins []onnxpb.ValueInfo, auto bool) error {
	if len(s.Inputs) == 0 || len(s.Outputs) == 0 {
		return fmt.Errorf("the model has %d inputs and %d outputs; it needs at least one of each", len(s.Inputs), len(s.Outputs))
	}
	if s.BatchDim < 0 {
		return fmt.Errorf("batch dim %d: want 0 or more", s.BatchDim)
	}
	if !s.Batchable {
		return nil
	}
	u := s.batchAlong(ins)
	switch {
	case u == nil:
		return nil
	case !auto:
		return fmt.Errorf("%s, so rows from several callers cannot be batched along it: %s", u.why, u.fix())
	}
	s.Batchable = false
	for i := range s.Inputs {
		s.Inputs[i].Unbatched = false
	}
	s.Note = u.why + ": the model runs one request at a time (not batchable)"
	if u.fixedDim {
		s.Note += "; to batch callers' rows, re-export it with a dynamic batch axis"
	}
	return nil
}

// unbatchable is why a signature cannot be batched along its batch dim.
type unbatchable struct {
	why string
	// fixedDim: the model fixes the dim (rather than lacking it), which a
	// dynamic batch axis in the export mends.
	fixedDim bool
}

func (u *unbatchable) fix() string {
	if u.fixedDim {
		return "re-export the model with a dynamic batch axis or import with --batchable=false"
	}
	return "import with a smaller --batch-dim or --batchable=false"
}

// batchAlong marks the inputs that carry no rows along the batch dim
// Unbatched, and says why the signature cannot be batched along it, nil
// when it can.
func (s *Signature) batchAlong(ins []onnxpb.ValueInfo) *unbatchable {
	batched := false
	for i, v := range ins {
		s.Inputs[i].Unbatched = !v.VariesAt(s.BatchDim)
		batched = batched || !s.Inputs[i].Unbatched
	}
	if !batched {
		u := notBatched("input", s.Inputs[0], s.BatchDim)
		if len(ins) > 1 {
			u.why = fmt.Sprintf("no input lets dim %d vary, so nothing counts a request's rows; the first: %s", s.BatchDim, u.why)
		}
		return u
	}
	for _, t := range s.Outputs {
		if u := notBatched("output", t, s.BatchDim); u != nil {
			return u
		}
	}
	return nil
}

// notBatched says why t cannot be cut into rows along dim, nil if it can.
func notBatched(what string, t TensorSpec, dim int) *unbatchable {
	switch {
	case t.Shape == nil:
		return nil // rank unknown: the runtime will tell
	case dim >= len(t.Shape):
		return &unbatchable{why: fmt.Sprintf("%s %q has %d dims, so it has no batch dim %d", what, t.Name, len(t.Shape), dim)}
	case t.Shape[dim] >= 0:
		return &unbatchable{why: fmt.Sprintf("%s %q fixes dim %d at %d", what, t.Name, dim, t.Shape[dim]), fixedDim: true}
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
