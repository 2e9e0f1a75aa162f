package store_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/benchtop/benchtop/samples/models"
	"github.com/benchtop/benchtop/store"
	"github.com/benchtop/benchtop/store/onnxpb"
)

func TestParseTag(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	long64 := strings.Repeat("a", 64)
	cases := []struct {
		tag     string
		want    store.Tag
		wantErr bool
	}{
		{tag: "mlp", want: store.Tag{Name: "mlp"}},
		{tag: "mlp:latest", want: store.Tag{Name: "mlp"}},
		{tag: "mlp:v1", want: store.Tag{Name: "mlp", Version: "v1"}},
		{tag: "mlp-small:2025", want: store.Tag{Name: "mlp-small", Version: "2025"}},
		{tag: "mlp:20251125-", want: store.Tag{Name: "mlp", Version: "20251125-"}},
		{tag: "a.b_c-d:1.0", want: store.Tag{Name: "a.b_c-d", Version: "1.0"}},
		{tag: long63, want: store.Tag{Name: long63}},
		{tag: "", wantErr: true},
		{tag: "../x", wantErr: true},
		{tag: "..", wantErr: true},
		{tag: "/etc", wantErr: true},
		{tag: "/etc/passwd:x", wantErr: true},
		{tag: "name:../../v", wantErr: true},
		{tag: "name:..", wantErr: true},
		{tag: "name:v/../../x", wantErr: true},
		{tag: "x/y", wantErr: true},
		{tag: "MLP", wantErr: true},
		{tag: "mlp:V1", wantErr: true},
		{tag: long64, wantErr: true},
		{tag: "mlp:" + long64, wantErr: true},
		{tag: "a:b:c", wantErr: true},
		{tag: "mlp:", wantErr: true},
		{tag: ":v1", wantErr: true},
		{tag: ".hidden", wantErr: true},
		{tag: "-x", wantErr: true},
		{tag: "x-", wantErr: true},
		{tag: "a b", wantErr: true},
		{tag: "mlp:-v", wantErr: true},
		{tag: "mlp\x00:v", wantErr: true},
		{tag: `c:\windows`, wantErr: true},
	}
	for _, c := range cases {
		name := c.tag
		if name == "" {
			name = "empty"
		}
		t.Run(name, func(t *testing.T) {
			got, err := store.ParseTag(c.tag)
			if c.wantErr {
				if err == nil {
					t.Fatalf("ParseTag(%q) = %+v, want an error", c.tag, got)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("ParseTag(%q) = %+v, %v; want %+v", c.tag, got, err, c.want)
			}
		})
	}
}

func TestVersionNames(t *testing.T) {
	cases := []struct {
		version string
		valid   bool
	}{
		{"v1", true}, {"1.2.3", true}, {"latest", false}, {"20251125-", false}, {"", false}, {"..", false}, {"a/b", false},
	}
	for _, c := range cases {
		t.Run(c.version, func(t *testing.T) {
			if got := store.ValidVersion(c.version); got != c.valid {
				t.Fatalf("ValidVersion(%q) = %v", c.version, got)
			}
		})
	}
	a, b := store.NewVersion(timeAt(0)), store.NewVersion(timeAt(0))
	if a == b || !store.ValidVersion(a) {
		t.Fatalf("generated versions %q and %q: want valid and unique", a, b)
	}
	if later := store.NewVersion(timeAt(1)); later <= a {
		t.Fatalf("version %q sorts before %q, one second older", later, a)
	}
}

func open(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "models"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var ctx = context.Background()

func importSmall(t *testing.T, s *store.Store, name, version string) *store.Model {
	t.Helper()
	m, err := s.ImportData(ctx, models.Small().ONNX, store.ImportOptions{Name: name, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestImportReadsTheModel(t *testing.T) {
	s := open(t)
	src := filepath.Join(t.TempDir(), "mlp.onnx")
	if err := os.WriteFile(src, models.Small().ONNX, 0o644); err != nil {
		t.Fatal(err)
	}
	var progress []int64
	m, err := s.Import(ctx, src, store.ImportOptions{
		Name: "mlp", Labels: map[string]string{"team": "ml"},
		Progress: func(done, total int64) { progress = append(progress, done, total) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.Framework != "onnx" || !m.Latest || m.Size != int64(len(models.Small().ONNX)) || m.Labels["team"] != "ml" {
		t.Fatalf("imported %+v", m)
	}
	sig, ok := m.Signatures["run"]
	if !ok || !sig.Batchable || sig.BatchDim != 0 {
		t.Fatalf("signatures %+v: want run, batchable along 0", m.Signatures)
	}
	if len(sig.Inputs) != 1 || sig.Inputs[0].String() != "x float32[-1 64]" || sig.Outputs[0].String() != "probs float32[-1 10]" {
		t.Fatalf("io %v → %v", sig.Inputs, sig.Outputs)
	}
	if m.Metadata["onnx.opset"] != "13" || m.Metadata["onnx.meta.benchtop.sample"] != "mlp-small" {
		t.Fatalf("metadata %v", m.Metadata)
	}
	if got, _ := os.ReadFile(m.Path()); !bytes.Equal(got, models.Small().ONNX) {
		t.Fatal("stored file differs from the source")
	}
	if n := len(progress); n == 0 || progress[n-2] != m.Size || progress[n-1] != m.Size {
		t.Fatalf("progress %v: want to end at %d of %d", progress, m.Size, m.Size)
	}
	for _, tag := range []string{"mlp", "mlp:latest", "mlp:" + m.Version, "mlp:" + m.Version[:8]} {
		got, err := s.Get(tag)
		if err != nil || got.Version != m.Version || got.Dir != m.Dir {
			t.Fatalf("Get(%q) = %v, %v", tag, got, err)
		}
	}
	if _, err := s.Verify("mlp"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("other"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of a missing name: %v", err)
	}
	if _, err := s.Get("mlp:nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of a missing version: %v", err)
	}
}

func TestImportRefuses(t *testing.T) {
	fixed := &onnxpb.Model{IRVersion: 8, OpsetImports: []onnxpb.OpsetID{{Version: 13}}, Graph: onnxpb.Graph{
		Nodes:   []onnxpb.Node{{OpType: "Relu", Inputs: []string{"x"}, Outputs: []string{"y"}}},
		Inputs:  []onnxpb.ValueInfo{onnxpb.TensorInfo("x", onnxpb.Float, onnxpb.FixedDim(1), onnxpb.FixedDim(4))},
		Outputs: []onnxpb.ValueInfo{onnxpb.TensorInfo("y", onnxpb.Float, onnxpb.FixedDim(1), onnxpb.FixedDim(4))},
	}}
	notBatchable := &store.SignatureOptions{Method: "predict", Batchable: false}
	cases := []struct {
		name string
		data []byte
		opts store.ImportOptions
		want string // "" = accepted
	}{
		{"not onnx", []byte("hello"), store.ImportOptions{Name: "m"}, "it is text"},
		{"fixed batch dim, batching demanded", fixed.Marshal(), store.ImportOptions{Name: "m", Signature: &store.SignatureOptions{Method: "run", Batchable: true}}, `input "x" fixes dim 0 at 1, so rows from several callers cannot be batched along it: re-export the model with a dynamic batch axis or import with --batchable=false`},
		{"fixed batch dim, not batchable", fixed.Marshal(), store.ImportOptions{Name: "m", Signature: notBatchable}, ""},
		{"batch dim past the rank", models.Small().ONNX, store.ImportOptions{Name: "m", Signature: &store.SignatureOptions{Method: "run", Batchable: true, BatchDim: 2}}, "no batch dim 2"},
		{"bad name", models.Small().ONNX, store.ImportOptions{Name: "../m"}, "model name"},
		{"bad version", models.Small().ONNX, store.ImportOptions{Name: "m", Version: "../../x"}, "version"},
		{"reserved version", models.Small().ONNX, store.ImportOptions{Name: "m", Version: "latest"}, "reserved"},
		{"bad method", models.Small().ONNX, store.ImportOptions{Name: "m", Signature: &store.SignatureOptions{Method: "Run!"}}, "method"},
		{"bad label", models.Small().ONNX, store.ImportOptions{Name: "m", Labels: map[string]string{"a b": "c"}}, "label"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			m, err := s.ImportData(ctx, c.data, c.opts)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := m.Signatures["predict"]; !ok {
					t.Fatalf("signatures %v", m.Signatures)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error about %q", err, c.want)
			}
			if all, _ := s.List(); len(all) != 0 {
				t.Fatalf("a refused import is listed: %v", all)
			}
			assertNoTemp(t, s)
		})
	}
}

// graph is a one-node model for import tests: op over ins → outs.
func graph(op string, ins, outs []onnxpb.ValueInfo) []byte {
	var in, out []string
	for _, v := range ins {
		in = append(in, v.Name)
	}
	for _, v := range outs {
		out = append(out, v.Name)
	}
	return (&onnxpb.Model{IRVersion: 8, OpsetImports: []onnxpb.OpsetID{{Version: 13}}, Graph: onnxpb.Graph{
		Nodes:  []onnxpb.Node{{OpType: op, Inputs: in, Outputs: out}},
		Inputs: ins, Outputs: outs,
	}}).Marshal()
}

// TestImportSignatures: every input and output of a model, as the store
// records and shows them; a non-tensor output is refused saying how to
// export the model again; an input the model fixes along the batch dim is
// passed whole (unbatched) as long as another input carries the rows, and
// where batching is demanded, a model that cannot batch is refused.
func TestImportSignatures(t *testing.T) {
	n, f := onnxpb.SymbolicDim("N"), func(d int64) onnxpb.Dim { return onnxpb.FixedDim(d) }
	x := onnxpb.TensorInfo("x", onnxpb.Float, n, f(4))
	scale := onnxpb.TensorInfo("scale", onnxpb.Float, f(1))
	zipmap := onnxpb.SequenceOf("output_probability", onnxpb.MapOf("", onnxpb.Int64, onnxpb.ValueInfo{Kind: onnxpb.KindTensor, ElemType: onnxpb.Float}))
	label := onnxpb.TensorInfo("output_label", onnxpb.Int64, n)
	cases := []struct {
		name string
		data []byte
		want string // the signature, or the error
		ok   bool
	}{
		{"two inputs, two outputs", models.Text().ONNX,
			"input_ids int64[-1 -1], attention_mask int64[-1 -1] → label int64[-1], probabilities float32[-1 4]", true},
		{"an unbatched input", graph("Mul", []onnxpb.ValueInfo{x, scale}, []onnxpb.ValueInfo{onnxpb.TensorInfo("y", onnxpb.Float, n, f(4))}),
			"x float32[-1 4], scale float32[1] unbatched → y float32[-1 4]", true},
		{"zipmap", graph("ZipMap", []onnxpb.ValueInfo{x}, []onnxpb.ValueInfo{label, zipmap}),
			`output "output_probability" is a seq(map(int64, float32)), not a tensor, and benchtop serves tensors only: it is what scikit-learn's ZipMap makes`, false},
		{"zipmap advice", graph("ZipMap", []onnxpb.ValueInfo{x}, []onnxpb.ValueInfo{label, zipmap}), `{"zipmap": False}`, false},
		{"a map input", graph("Identity", []onnxpb.ValueInfo{onnxpb.MapOf("m", onnxpb.String, onnxpb.ValueInfo{Kind: onnxpb.KindTensor, ElemType: onnxpb.Float})}, []onnxpb.ValueInfo{label}),
			`input "m" is a map(string, float32), not a tensor, and benchtop serves tensors only: export the model so that it takes tensors`, false},
		{"an output fixed along the batch dim", graph("ReduceSum", []onnxpb.ValueInfo{x}, []onnxpb.ValueInfo{onnxpb.TensorInfo("total", onnxpb.Float, f(1), f(4))}),
			`output "total" fixes dim 0 at 1`, false},
		{"no input varies", graph("Mul", []onnxpb.ValueInfo{onnxpb.TensorInfo("a", onnxpb.Float, f(2), f(4)), scale}, []onnxpb.ValueInfo{onnxpb.TensorInfo("y", onnxpb.Float, n, f(4))}),
			`no input lets dim 0 vary, so nothing counts a request's rows; the first: input "a" fixes dim 0 at 2`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			opts := store.ImportOptions{Name: "m"}
			if !c.ok {
				// Batching demanded, so a model that cannot batch is refused
				// (TestImportFixedBatch: what a plain import makes of it).
				opts.Signature = &store.SignatureOptions{Method: "run", Batchable: true}
			}
			m, err := s.ImportData(ctx, c.data, opts)
			if !c.ok {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("got %v, want an error containing %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sig := m.Signatures["run"]
			var ins, outs []string
			for _, v := range sig.Inputs {
				ins = append(ins, v.String())
			}
			for _, v := range sig.Outputs {
				outs = append(outs, v.String())
			}
			if got := strings.Join(ins, ", ") + " → " + strings.Join(outs, ", "); got != c.want {
				t.Fatalf("signature %q, want %q", got, c.want)
			}
			// What model.yaml says is what Get reads back.
			again, err := s.Get("m")
			if err != nil || !slices.EqualFunc(again.Signatures["run"].Inputs, sig.Inputs, func(a, b store.TensorSpec) bool { return a.String() == b.String() }) {
				t.Fatalf("read back %+v, %v", again.Signatures, err)
			}
		})
	}
}

func assertNoTemp(t *testing.T, s *store.Store) {
	t.Helper()
	left, err := os.ReadDir(filepath.Join(s.Dir(), ".tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Fatalf("left in .tmp: %v", names)
	}
}

func TestConcurrentImportsOfOneName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "models")
	const n = 8
	var wg sync.WaitGroup
	got := make([]*store.Model, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			// A store per goroutine, as separate processes would have.
			s, err := store.Open(dir)
			if err == nil {
				got[i], err = s.ImportData(ctx, models.Small().ONNX, store.ImportOptions{Name: "mlp"})
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n {
		t.Fatalf("%d versions listed, want %d", len(all), n)
	}
	versions := map[string]bool{}
	for _, m := range got {
		versions[m.Version] = true
	}
	if len(versions) != n {
		t.Fatalf("versions collided: %v", versions)
	}
	latest, err := s.Get("mlp")
	if err != nil {
		t.Fatal(err)
	}
	if latest.Version != all[0].Version {
		t.Fatalf("latest is %s, want the newest %s", latest.Version, all[0].Version)
	}
	raw, _ := os.ReadFile(s.LatestFile("mlp"))
	if strings.TrimSpace(string(raw)) != latest.Version {
		t.Fatalf("latest file says %q, want %s", raw, latest.Version)
	}
	assertNoTemp(t, s)
}

func TestExplicitVersionIsNeverReplaced(t *testing.T) {
	s := open(t)
	importSmall(t, s, "mlp", "v1")
	_, err := s.ImportData(ctx, models.Large().ONNX, store.ImportOptions{Name: "mlp", Version: "v1"})
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("got %v, want ErrExists", err)
	}
	m, err := s.Verify("mlp:v1")
	if err != nil || m.Size != int64(len(models.Small().ONNX)) {
		t.Fatalf("v1 changed: %+v %v", m, err)
	}
	assertNoTemp(t, s)
}

func TestKeepExisting(t *testing.T) {
	s := open(t)
	first := importSmall(t, s, "mlp", "v1")
	m, err := s.ImportData(ctx, models.Large().ONNX, store.ImportOptions{Name: "mlp", KeepExisting: true})
	if err != nil || m.Version != first.Version {
		t.Fatalf("KeepExisting imported %v, %v", m, err)
	}
}

func TestDeleteFixesLatest(t *testing.T) {
	s := open(t)
	for _, v := range []string{"v1", "v2", "v3"} {
		importSmall(t, s, "mlp", v)
	}
	importSmall(t, s, "other", "v1")
	steps := []struct {
		del        string
		wantLatest string // "" = name gone
	}{
		{"mlp", "v2"},    // the latest itself
		{"mlp:v1", "v2"}, // an older one: latest stays
		{"mlp:v2", ""},   // the last one: the name goes
	}
	for _, st := range steps {
		t.Run(st.del, func(t *testing.T) {
			if _, err := s.Delete(st.del); err != nil {
				t.Fatal(err)
			}
			m, err := s.Get("mlp")
			if st.wantLatest == "" {
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("after deleting every version: %v, %v", m, err)
				}
				if _, err := os.Stat(filepath.Join(s.Dir(), "mlp")); !os.IsNotExist(err) {
					t.Fatalf("the name's directory is still there: %v", err)
				}
				return
			}
			if err != nil || m.Version != st.wantLatest {
				t.Fatalf("latest is %v (%v), want %s", m, err, st.wantLatest)
			}
			raw, _ := os.ReadFile(s.LatestFile("mlp"))
			if strings.TrimSpace(string(raw)) != st.wantLatest {
				t.Fatalf("latest file says %q", raw)
			}
		})
	}
	if _, err := s.Get("other"); err != nil {
		t.Fatalf("another name was touched: %v", err)
	}
	if _, err := s.Delete("mlp"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting a missing model: %v", err)
	}
	assertNoTemp(t, s)
}

func TestVersionPrefix(t *testing.T) {
	s := open(t)
	importSmall(t, s, "mlp", "20250101-aaa")
	importSmall(t, s, "mlp", "20250102-bbb")
	if _, err := s.Get("mlp:2025"); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Fatalf("ambiguous prefix: %v", err)
	}
	m, err := s.Get("mlp:20250101")
	if err != nil || m.Version != "20250101-aaa" {
		t.Fatalf("unique prefix: %v, %v", m, err)
	}
}

func TestLatestSurvivesAMissingPointer(t *testing.T) {
	s := open(t)
	importSmall(t, s, "mlp", "v1")
	v2 := importSmall(t, s, "mlp", "v2")
	// A crash between installing a version and writing latest, or a
	// pointer to a version removed by hand: the newest version wins.
	for _, content := range []string{"", "gone\n"} {
		if content == "" {
			os.Remove(s.LatestFile("mlp"))
		} else {
			os.WriteFile(s.LatestFile("mlp"), []byte(content), 0o644)
		}
		m, err := s.Get("mlp")
		if err != nil || m.Version != v2.Version {
			t.Fatalf("latest with pointer %q: %v, %v", content, m, err)
		}
	}
}

func TestArchiveRoundTrip(t *testing.T) {
	a, b := open(t), open(t)
	src, err := a.ImportData(ctx, models.Small().ONNX, store.ImportOptions{Name: "mlp", Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	var exported int64
	if _, err := a.Export(ctx, "mlp", &buf, func(done, total int64) { exported = done }); err != nil {
		t.Fatal(err)
	}
	if exported != src.Size {
		t.Fatalf("export progress ended at %d of %d", exported, src.Size)
	}
	size := int64(buf.Len())
	var read int64
	got, err := b.ImportArchive(ctx, bytes.NewReader(buf.Bytes()), store.ArchiveOptions{Size: size, Progress: func(done, total int64) { read = done }})
	if err != nil {
		t.Fatal(err)
	}
	if read != size {
		t.Fatalf("import progress ended at %d of %d", read, size)
	}
	if got.Tag() != src.Tag() || !got.Created.Equal(src.Created) || got.Labels["k"] != "v" || !got.Latest || got.SHA256["model.onnx"] != src.SHA256["model.onnx"] {
		t.Fatalf("round trip: got %+v, want %+v", got, src)
	}
	if body, _ := os.ReadFile(got.Path()); !bytes.Equal(body, models.Small().ONNX) {
		t.Fatal("model file changed in the round trip")
	}
	if _, err := b.ImportArchive(ctx, bytes.NewReader(buf.Bytes()), store.ArchiveOptions{}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("importing it twice: %v", err)
	}
	assertNoTemp(t, b)
}

// entry is one file of a hand-made archive.
type entry struct {
	name, link string
	typ        byte
	body       []byte
	// zeros, if set, is the body instead: that many zero bytes, which
	// gzip shrinks about a thousandfold.
	zeros int64
}

// zeroReader reads zero bytes without end.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func makeArchive(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		var body io.Reader = bytes.NewReader(e.body)
		size := int64(len(e.body))
		if e.zeros > 0 {
			body, size = io.LimitReader(zeroReader{}, e.zeros), e.zeros
		}
		if typ != tar.TypeReg {
			size = 0
		}
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Mode: 0o644, Size: size}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(tw, body, size); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestArchiveRefused(t *testing.T) {
	a := open(t)
	src := importSmall(t, a, "mlp", "v1")
	manifest, err := os.ReadFile(filepath.Join(src.Dir, "model.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	model := models.Small().ONNX
	tampered := slices.Clone(model)
	tampered[len(tampered)-100] ^= 0xff
	otherVersion := bytes.ReplaceAll(manifest, []byte("version: v1"), []byte("version: v2"))
	wrongSize := bytes.ReplaceAll(manifest, []byte(fmt.Sprintf("size: %d", len(model))), []byte("size: 1"))
	if bytes.Equal(wrongSize, manifest) {
		t.Fatal("the manifest has no size line to tamper with")
	}
	cases := []struct {
		name    string
		entries []entry
		raw     []byte
		want    string
	}{
		{name: "tampered model", entries: []entry{{name: "mlp/v1/model.yaml", body: manifest}, {name: "mlp/v1/model.onnx", body: tampered}}, want: "sha256"},
		{name: "missing model", entries: []entry{{name: "mlp/v1/model.yaml", body: manifest}}, want: "lacks"},
		{name: "extra file", entries: []entry{{name: "mlp/v1/model.yaml", body: manifest}, {name: "mlp/v1/model.onnx", body: model}, {name: "mlp/v1/run.sh", body: []byte("rm -rf /")}}, want: "not in model.yaml"},
		{name: "no manifest", entries: []entry{{name: "mlp/v1/", typ: tar.TypeDir}}, want: "no model.yaml"},
		{name: "model before the manifest", entries: []entry{{name: "mlp/v1/model.onnx", body: model}, {name: "mlp/v1/model.yaml", body: manifest}}, want: `entry "mlp/v1/model.onnx" comes before model.yaml`},
		{name: "directories before the manifest", entries: []entry{{name: "mlp/", typ: tar.TypeDir}, {name: "mlp/v1/", typ: tar.TypeDir}, {name: "mlp/v1/model.onnx", body: model}, {name: "mlp/v1/model.yaml", body: manifest}}, want: "comes before model.yaml"},
		{name: "dot dot", entries: []entry{{name: "mlp/v1/../../../evil", body: []byte("x")}}, want: "clean relative path"},
		{name: "absolute", entries: []entry{{name: "/etc/cron.d/evil", body: []byte("x")}}, want: "clean relative path"},
		{name: "hostile name", entries: []entry{{name: "../v1/model.yaml", body: manifest}}, want: "model name"},
		{name: "too deep", entries: []entry{{name: "mlp/v1/sub/model.onnx", body: model}}, want: "name/version/file"},
		{name: "symlink", entries: []entry{{name: "mlp/v1/model.onnx", typ: tar.TypeSymlink, link: "/etc/passwd"}}, want: "only regular files"},
		{name: "hard link", entries: []entry{{name: "mlp/v1/model.onnx", typ: tar.TypeLink, link: "mlp/v1/model.yaml"}}, want: "only regular files"},
		{name: "two versions", entries: []entry{{name: "mlp/v1/model.yaml", body: manifest}, {name: "mlp/v2/model.onnx", body: model}}, want: "one model version"},
		{name: "manifest of another version", entries: []entry{{name: "mlp/v1/model.yaml", body: otherVersion}, {name: "mlp/v1/model.onnx", body: model}}, want: "says mlp:v2"},
		{name: "manifest size lies", entries: []entry{{name: "mlp/v1/model.yaml", body: wrongSize}, {name: "mlp/v1/model.onnx", body: model}}, want: fmt.Sprintf("model.onnx is %d bytes in the archive, but model.yaml says it is 1", len(model))},
		{name: "model shorter than declared", entries: []entry{{name: "mlp/v1/model.yaml", body: manifest}, {name: "mlp/v1/model.onnx", body: model[:len(model)-100]}}, want: fmt.Sprintf("model.onnx is %d bytes in the archive, but model.yaml says it is %d", len(model)-100, len(model))},
		{name: "not gzip", raw: []byte("plain text"), want: "not a tar.gz"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := open(t)
			raw := c.raw
			if raw == nil {
				raw = makeArchive(t, c.entries)
			}
			_, err := b.ImportArchive(ctx, bytes.NewReader(raw), store.ArchiveOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error about %q", err, c.want)
			}
			if all, _ := b.List(); len(all) != 0 {
				t.Fatalf("a refused archive is listed: %v", all)
			}
			assertNoTemp(t, b)
			if _, err := os.Stat(filepath.Join(filepath.Dir(b.Dir()), "evil")); err == nil {
				t.Fatal("an entry escaped the store")
			}
		})
	}
}

// storeWatcher reads an archive for ImportArchive and, at every read,
// notes how many bytes the store's files hold: the most seen is what the
// import had written so far, at its peak.
type storeWatcher struct {
	t    *testing.T
	r    io.Reader
	dir  string
	peak int64
}

func (w *storeWatcher) Read(p []byte) (int, error) {
	w.peak = max(w.peak, storeBytes(w.t, w.dir))
	return w.r.Read(p)
}

// storeBytes is the size of every file under dir.
func storeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestHostileArchiveWritesNothingLarge(t *testing.T) {
	// A small gzip whose tar header declares a large file must be refused
	// from the header and model.yaml alone: not one byte of the file may
	// reach the store's .tmp (the import once wrote all of it, then
	// refused the checksum).
	const huge = 64 << 20 // zeros: about 64 KiB of gzip
	a := open(t)
	src := importSmall(t, a, "mlp", "v1")
	manifest, err := os.ReadFile(filepath.Join(src.Dir, "model.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	model := models.Small().ONNX
	// A manifest of two files, 10 bytes for extra.bin.
	twoFiles := bytes.Replace(manifest, []byte("sha256:\n"), []byte("sha256:\n    extra.bin: "+strings.Repeat("0", 64)+"\n"), 1)
	twoFiles = bytes.Replace(twoFiles, []byte(fmt.Sprintf("size: %d", len(model))), []byte(fmt.Sprintf("size: %d", len(model)+10)), 1)
	if bytes.Equal(twoFiles, manifest) {
		t.Fatal("could not add a file to the manifest")
	}
	yamlEntry := func(body []byte) entry { return entry{name: "mlp/v1/model.yaml", body: body} }
	cases := []struct {
		name    string
		entries []entry
		want    string
	}{
		{"model larger than declared", []entry{yamlEntry(manifest), {name: "mlp/v1/model.onnx", zeros: huge}},
			fmt.Sprintf("model.onnx is %d bytes in the archive, but model.yaml says it is %d", huge, len(model))},
		{"first of two files larger than both", []entry{yamlEntry(twoFiles), {name: "mlp/v1/extra.bin", zeros: huge}},
			fmt.Sprintf("extra.bin is %d bytes in the archive, more than the %d model.yaml leaves for it", huge, len(model)+10)},
		{"second of two files larger than what is left", []entry{yamlEntry(twoFiles), {name: "mlp/v1/model.onnx", body: model}, {name: "mlp/v1/extra.bin", zeros: huge}},
			fmt.Sprintf("extra.bin is %d bytes in the archive, but model.yaml leaves it 10", huge)},
		{"a file model.yaml does not list", []entry{yamlEntry(manifest), {name: "mlp/v1/model.onnx", body: model}, {name: "mlp/v1/big.bin", zeros: huge}},
			"big.bin is in the archive but not in model.yaml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := makeArchive(t, c.entries)
			if len(raw) > 1<<20 {
				t.Fatalf("the hostile archive is %d bytes: want a small one", len(raw))
			}
			b := open(t)
			w := &storeWatcher{t: t, r: bytes.NewReader(raw), dir: b.Dir()}
			_, err := b.ImportArchive(ctx, w, store.ArchiveOptions{})
			if err == nil {
				t.Fatal("accepted")
			}
			// The model itself (333 KiB) may be written before a later
			// file is refused; the large file may not.
			if w.peak > 1<<20 {
				t.Fatalf("the store held %d bytes while importing an archive that declares a %d-byte file against model.yaml: it was written before being refused (%v)", w.peak, huge, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error about %q", err, c.want)
			}
			assertNoTemp(t, b)
			if n := storeBytes(t, b.Dir()); n != 0 {
				t.Fatalf("%d bytes left in the store after the refusal", n)
			}
		})
	}
}

func TestExportRefusesADamagedStore(t *testing.T) {
	s := open(t)
	m := importSmall(t, s, "mlp", "v1")
	if err := os.WriteFile(m.Path(), []byte("not the model"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Export(ctx, "mlp", io.Discard, nil); err == nil || !strings.Contains(err.Error(), "changed or damaged") {
		t.Fatalf("export of a damaged model: %v", err)
	}
	if _, err := s.Verify("mlp"); err == nil {
		t.Fatal("Verify passed a damaged model")
	}
}

func TestImportHonoursCancellation(t *testing.T) {
	s := open(t)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.ImportData(cctx, models.Small().ONNX, store.ImportOptions{Name: "mlp"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	assertNoTemp(t, s)
}

// TestImportFixedBatch: a model exported with a fixed batch size is
// imported not batchable unless batching is demanded, and model.yaml says
// why; one whose input lets the batch dim vary is batched as before.
func TestImportFixedBatch(t *testing.T) {
	n, f := onnxpb.SymbolicDim("N"), onnxpb.FixedDim
	x1 := onnxpb.TensorInfo("x", onnxpb.Float, f(1), f(4))
	xn := onnxpb.TensorInfo("x", onnxpb.Float, n, f(4))
	cases := []struct {
		name      string
		data      []byte
		batchable bool
		note      string
	}{
		{"input and output fixed", graph("Relu", []onnxpb.ValueInfo{x1}, []onnxpb.ValueInfo{onnxpb.TensorInfo("y", onnxpb.Float, f(1), f(4))}), false,
			`input "x" fixes dim 0 at 1: the model runs one request at a time (not batchable); to batch callers' rows, re-export it with a dynamic batch axis`},
		{"every input fixed", graph("Add", []onnxpb.ValueInfo{x1, onnxpb.TensorInfo("b", onnxpb.Float, f(1), f(4))}, []onnxpb.ValueInfo{onnxpb.TensorInfo("y", onnxpb.Float, f(1), f(4))}), false,
			`no input lets dim 0 vary, so nothing counts a request's rows; the first: input "x" fixes dim 0 at 1: the model runs one request at a time`},
		{"an output reduced over the rows", graph("ReduceSum", []onnxpb.ValueInfo{xn}, []onnxpb.ValueInfo{onnxpb.TensorInfo("total", onnxpb.Float, f(1), f(4))}), false,
			`output "total" fixes dim 0 at 1: the model runs one request at a time`},
		{"a scalar input", graph("Neg", []onnxpb.ValueInfo{onnxpb.TensorInfo("s", onnxpb.Float)}, []onnxpb.ValueInfo{onnxpb.TensorInfo("y", onnxpb.Float)}), false,
			`input "s" has 0 dims, so it has no batch dim 0: the model runs one request at a time (not batchable)`},
		{"dynamic batch dim", models.Small().ONNX, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			m, err := s.ImportData(ctx, c.data, store.ImportOptions{Name: "m"})
			if err != nil {
				t.Fatal(err)
			}
			// What a runner is built from is model.yaml as read back.
			m, err = s.Get(m.Tag())
			if err != nil {
				t.Fatal(err)
			}
			sig := m.Signatures["run"]
			if sig.Batchable != c.batchable || !strings.Contains(sig.Note, c.note) || (c.note == "") != (sig.Note == "") {
				t.Fatalf("batchable %v, note %q; want %v, %q", sig.Batchable, sig.Note, c.batchable, c.note)
			}
			for _, in := range sig.Inputs {
				if in.Unbatched && !sig.Batchable {
					t.Fatalf("input %s is marked unbatched in a signature that is not batchable", in)
				}
			}
			if c.batchable {
				return
			}
			// An archive carries the signature as imported, note and all.
			var buf bytes.Buffer
			if _, err := s.Export(ctx, m.Tag(), &buf, nil); err != nil {
				t.Fatal(err)
			}
			moved, err := open(t).ImportArchive(ctx, &buf, store.ArchiveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := moved.Signatures["run"]; got.Batchable || got.Note != sig.Note {
				t.Fatalf("after an archive: batchable %v, note %q", got.Batchable, got.Note)
			}
			demand := &store.SignatureOptions{Method: "run", Batchable: true}
			if _, err := s.ImportData(ctx, c.data, store.ImportOptions{Name: "m", Signature: demand}); err == nil || !strings.Contains(err.Error(), "cannot be batched") {
				t.Fatalf("batching demanded: %v, want a refusal", err)
			}
		})
	}
}

// TestImportNotONNX: a file that is not an ONNX model is refused naming
// the file the caller gave, never the store's scratch copy, and saying what
// the file is instead.
func TestImportNotONNX(t *testing.T) {
	small := models.Small().ONNX
	cases := []struct {
		file string
		data []byte
		want string
	}{
		{"notes.txt", []byte("# my model\nweights go here\n"), `it is text (it begins "# my model"), not an ONNX model, which is a binary protobuf: export the model to ONNX first`},
		{"model.onnx", small[:len(small)/2], fmt.Sprintf("it ends in the middle of the model, after %d bytes: the file is cut short", len(small)/2)},
		{"empty.onnx", nil, "the file is empty"},
		{"model.pt", append([]byte("PK\x03\x04"), make([]byte, 64)...), "it is a zip archive, not an ONNX model (a PyTorch .pt or .pth checkpoint is one)"},
		{"model.h5", []byte("\x89HDF\r\n\x1a\n\x00\x00\x00"), "it is an HDF5 file"},
		{"model.pkl", []byte("\x80\x04\x95\x10\x00\x00\x00"), "it is a Python pickle"},
		{"random.bin", []byte{0x0f, 0xff, 0xff, 0x00, 0x07}, "not a readable ONNX model"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			s := open(t)
			src := filepath.Join(t.TempDir(), c.file)
			if err := os.WriteFile(src, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := s.Import(ctx, src, store.ImportOptions{Name: "m"})
			if err == nil {
				t.Fatal("imported")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "import "+src+": ") || !strings.Contains(msg, c.want) {
				t.Fatalf("got %q, want %q naming %s", msg, c.want, src)
			}
			if strings.Contains(msg, s.Dir()) {
				t.Fatalf("the error names the store's own files: %q", msg)
			}
			assertNoTemp(t, s)
		})
	}
}
