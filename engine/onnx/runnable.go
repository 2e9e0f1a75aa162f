package onnx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
)

// Type is the "onnx" runnable over lib (usually Locate()). Its methods come
// from the model named by the init params; building a worker loads lib.
func Type(lib *Library) *engine.RunnableType {
	return &engine.RunnableType{
		Name: TypeName,
		Doc:  "an ONNX model on ONNX Runtime; init: {path: model.onnx} or model: name:version from the store",
		Describe: func(_ context.Context, p engine.Params) ([]engine.MethodSpec, error) {
			info, err := describe(p)
			if err != nil {
				return nil, err
			}
			return []engine.MethodSpec{info.spec}, nil
		},
		Validate: func(_ context.Context, p engine.Params) error {
			_, err := describe(p)
			return err
		},
		SupportedResources: []string{engine.ResourceCPU, engine.ResourceGPU},
		MultiThreaded:      true,
		New: func(ctx context.Context, env engine.Env) (engine.Instance, error) {
			return newSession(ctx, lib, env)
		},
	}
}

// Register adds the onnx runnable over lib to reg.
func Register(reg *engine.Registry, lib *Library) error { return reg.Register(Type(lib)) }

// live counts runtime values not yet released, so tests can check that
// every call releases what it made, error paths included; made counts
// every value ever made, so that they can tell a path that made values
// from one that made none.
var live, made atomic.Int64

func track(v ort.Value) ort.Value {
	live.Add(1)
	made.Add(1)
	return v
}

func release(v ort.Value) {
	if v != nil {
		_ = v.Destroy()
		live.Add(-1)
	}
}

// session is one worker's instance: an ONNX Runtime session and the run
// options that let a call's deadline interrupt it.
type session struct {
	info *modelInfo
	sess *ort.DynamicAdvancedSession
	opts *ort.RunOptions
	// fixedOut holds, per output, its shape when only the batch dim varies,
	// so that the output can be written straight into Go memory; nil for an
	// output whose size only the run tells (the runtime allocates it).
	fixedOut [][]int64
	// batchedIn is the first batched input, whose size along the batch dim
	// is the batch's rows; -1 for a method that is not batchable.
	batchedIn int

	// mu guards the handshake with a deadline's AfterFunc: it may only
	// terminate the run it was armed for (gen), never a later one.
	mu         sync.Mutex
	gen        uint64
	running    bool
	terminated bool
}

var (
	_ engine.Instance = (*session)(nil)
	_ engine.Closer   = (*session)(nil)
)

func newSession(ctx context.Context, lib *Library, env engine.Env) (*session, error) {
	if err := lib.Load(); err != nil {
		return nil, err
	}
	info, err := describe(env.Params)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	logger := env.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	threads := max(1, env.Threads)
	sess, provider, err := openSession(info, threads, env.GPUs, logger)
	if err != nil {
		return nil, fmt.Errorf("onnx session for %s: %w", info.params.Path, err)
	}
	opts, err := ort.NewRunOptions()
	if err != nil {
		_ = sess.Destroy()
		return nil, fmt.Errorf("onnx run options: %w", err)
	}
	s := &session{info: info, sess: sess, opts: opts, fixedOut: make([][]int64, len(info.spec.Outputs)), batchedIn: -1}
	spec := &info.spec
	for j, o := range spec.Outputs {
		s.fixedOut[j] = fixedShape(o, spec.Batchable && !o.Unbatched, spec.OutputBatchDim)
	}
	if spec.Batchable {
		s.batchedIn = slices.IndexFunc(spec.Inputs, func(in tensor.IOSpec) bool { return !in.Unbatched })
	}
	logger.Info("onnx session ready", "model", info.params.Path, "provider", provider, "intra_op_threads", threads,
		"inputs", names(info.ins), "outputs", names(info.outs))
	info.data = nil // the session has its own copy
	return s, nil
}

// fixedShape is o's shape when every dim but the batch dim (if batched) is
// known, nil otherwise.
func fixedShape(o tensor.IOSpec, batched bool, batchDim int) []int64 {
	if o.Shape == nil || o.DType == tensor.String {
		return nil
	}
	shape := make([]int64, len(o.Shape))
	for i, d := range o.Shape {
		if d < 0 && !(batched && i == batchDim) {
			return nil
		}
		shape[i] = int64(d)
	}
	return shape
}

// openSession creates the session on the worker's GPU when it has one and
// the runtime can use it, else on CPU, and says which.
func openSession(info *modelInfo, threads int, gpus []int, logger *slog.Logger) (*ort.DynamicAdvancedSession, string, error) {
	if len(gpus) > 0 {
		sess, err := newORTSession(info, threads, &gpus[0])
		if err == nil {
			return sess, "cuda:" + strconv.Itoa(gpus[0]), nil
		}
		logger.Warn("onnx: CUDA execution provider unavailable, running on CPU", "gpu", gpus[0], "err", err)
	}
	sess, err := newORTSession(info, threads, nil)
	return sess, "cpu", err
}

func newORTSession(info *modelInfo, threads int, gpu *int) (*ort.DynamicAdvancedSession, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	if err := so.SetIntraOpNumThreads(threads); err != nil {
		return nil, err
	}
	// One worker runs one batch at a time: parallelism is within operators.
	if err := so.SetInterOpNumThreads(1); err != nil {
		return nil, err
	}
	if !*info.params.Spinning {
		if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			return nil, err
		}
	}
	if gpu != nil {
		cuda, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return nil, fmt.Errorf("cuda provider options: %w", err)
		}
		defer cuda.Destroy()
		if err := cuda.Update(map[string]string{"device_id": strconv.Itoa(*gpu)}); err != nil {
			return nil, fmt.Errorf("cuda device %d: %w", *gpu, err)
		}
		if err := so.AppendExecutionProviderCUDA(cuda); err != nil {
			return nil, fmt.Errorf("cuda execution provider: %w", err)
		}
	}
	return ort.NewDynamicAdvancedSessionWithONNXData(info.data, info.inNames(), info.outNames(), so)
}

// Close releases the session.
func (s *session) Close() error {
	errs := []error{s.sess.Destroy(), s.opts.Destroy()}
	return errors.Join(errs...)
}

// Call runs the model on one batch: a value per input in, a value per
// exposed output out, every runtime value released before it returns.
func (s *session) Call(ctx context.Context, method string, ins []tensor.Value) ([]tensor.Value, error) {
	spec := &s.info.spec
	if method != spec.Name {
		return nil, fmt.Errorf("%w %q: the model's method is %q", engine.ErrUnknownMethod, method, spec.Name)
	}
	rows, err := s.check(ins)
	if err != nil {
		return nil, engine.InvalidInput(err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("onnx run not started: %w", err)
	}
	inputs := make([]ort.Value, len(ins))
	defer releaseAll(inputs)
	for i, v := range ins {
		if inputs[i], err = toORT(v.Tensor()); err != nil {
			return nil, fmt.Errorf("input %q: %w", spec.Inputs[i].Name, err)
		}
	}
	// Outputs of a known shape are written into memory that becomes the
	// callers'; the others the runtime allocates and the bindings copy.
	outputs := make([]ort.Value, len(spec.Outputs))
	defer releaseAll(outputs)
	bufs := make([][]byte, len(outputs))
	for j, fixed := range s.fixedOut {
		if fixed == nil {
			continue
		}
		shape := ort.Shape(slices.Clone(fixed))
		if rows > 0 && !spec.Outputs[j].Unbatched {
			shape[spec.OutputBatchDim] = int64(rows)
		}
		if shape.FlattenedSize() == 0 {
			continue
		}
		dt := spec.Outputs[j].DType
		z, err := tensor.Zeros(dt, ints(shape)) // aligned for dt
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", spec.Outputs[j].Name, err)
		}
		bufs[j] = z.Bytes()
		v, err := ort.NewCustomDataTensor(shape, bufs[j], ortType[dt])
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", spec.Outputs[j].Name, err)
		}
		outputs[j] = track(v)
	}
	if err := s.run(ctx, inputs, outputs); err != nil {
		return nil, err
	}
	for j, v := range outputs {
		if bufs[j] == nil && v != nil {
			live.Add(1) // the runtime allocated it; it is ours to release
			made.Add(1)
		}
	}
	out := make([]tensor.Value, len(outputs))
	for j, v := range outputs {
		t, err := fromORT(v, bufs[j])
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", spec.Outputs[j].Name, err)
		}
		out[j] = tensor.TensorValue(t)
	}
	return out, nil
}

// check checks ins against the method's inputs, as the engine has done
// for a runner's batches (an instance may also be called directly), and
// returns the rows along the batch dim, 0 for a method that is not
// batchable. The runtime takes neither an absent input nor an empty one.
func (s *session) check(ins []tensor.Value) (int, error) {
	spec := &s.info.spec
	if len(ins) != len(spec.Inputs) {
		return 0, fmt.Errorf("got %d values, but the model takes %d inputs, %s", len(ins), len(spec.Inputs), spec.Inputs.Names())
	}
	for i, in := range ins {
		if err := spec.Inputs[i].Check(in); err != nil {
			return 0, fmt.Errorf("input %q: %w", spec.Inputs[i].Name, err)
		}
		if t := in.Tensor(); t.Len() == 0 {
			return 0, fmt.Errorf("input %q: shape %v has no elements", spec.Inputs[i].Name, t.Shape())
		}
	}
	for _, sym := range s.info.same {
		a := sym.dims[0]
		want := ins[a.in].Tensor().Shape()[a.dim]
		for _, b := range sym.dims[1:] {
			if got := ins[b.in].Tensor().Shape()[b.dim]; got != want {
				return 0, fmt.Errorf("input %q dim %d is %d, but input %q dim %d is %d: the model calls both %q, so they must be equal",
					spec.Inputs[b.in].Name, b.dim, got, spec.Inputs[a.in].Name, a.dim, want, sym.name)
			}
		}
	}
	if s.batchedIn < 0 {
		return 0, nil
	}
	rows := ins[s.batchedIn].Tensor().Shape()[spec.BatchDim]
	for i, in := range ins {
		if n := in.Tensor().Shape()[spec.BatchDim]; !spec.Inputs[i].Unbatched && n != rows {
			return 0, fmt.Errorf("inputs %q and %q disagree on the batch size: %d rows and %d rows along dim %d",
				spec.Inputs[s.batchedIn].Name, spec.Inputs[i].Name, rows, n, spec.BatchDim)
		}
	}
	return rows, nil
}

func releaseAll(vs []ort.Value) {
	for _, v := range vs {
		release(v)
	}
}

// run runs the session, letting ctx's end terminate it.
func (s *session) run(ctx context.Context, ins, outs []ort.Value) error {
	s.mu.Lock()
	s.gen++
	gen := s.gen
	s.running = true
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.running && s.gen == gen {
			_ = s.opts.Terminate()
			s.terminated = true
		}
	})
	err := s.sess.RunWithOptions(ins, outs, s.opts)
	stop()
	s.mu.Lock()
	s.running = false
	if s.terminated {
		s.terminated = false
		_ = s.opts.UnsetTerminate()
	}
	s.mu.Unlock()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("onnx run interrupted: %w", ctxErr)
		}
		return fmt.Errorf("onnx run: %w", err)
	}
	return nil
}

func ints(s ort.Shape) []int {
	out := make([]int, len(s))
	for i, d := range s {
		out[i] = int(d)
	}
	return out
}

var ortType = map[tensor.DType]ort.TensorElementDataType{
	tensor.Float32: ort.TensorElementDataTypeFloat,
	tensor.Float64: ort.TensorElementDataTypeDouble,
	tensor.Int32:   ort.TensorElementDataTypeInt32,
	tensor.Int64:   ort.TensorElementDataTypeInt64,
	tensor.Uint8:   ort.TensorElementDataTypeUint8,
	tensor.Bool:    ort.TensorElementDataTypeBool,
}

// toORT wraps t for the runtime. Numeric data is passed in place: the
// runtime only reads inputs, and t outlives the call.
func toORT(t *tensor.Tensor) (ort.Value, error) {
	shape := make(ort.Shape, len(t.Shape()))
	for i, d := range t.Shape() {
		shape[i] = int64(d)
	}
	if t.DType() == tensor.String {
		st, err := ort.NewStringTensor(shape)
		if err != nil {
			return nil, err
		}
		track(st)
		if err := st.SetContents(t.Strings()); err != nil {
			release(st)
			return nil, err
		}
		return st, nil
	}
	v, err := ort.NewCustomDataTensor(shape, t.Bytes(), ortType[t.DType()])
	if err != nil {
		return nil, err
	}
	return track(v), nil
}

// fromORT reads an output into an engine tensor: buf when the output was
// written into it, else a copy the bindings made of the runtime's memory.
func fromORT(v ort.Value, buf []byte) (*tensor.Tensor, error) {
	shape := ints(v.GetShape())
	switch x := v.(type) {
	case *ort.CustomDataTensor:
		if buf == nil {
			buf = append([]byte(nil), x.GetData()...)
		}
		dt, ok := engineType(ort.TensorElementDataType(x.DataType()))
		if !ok {
			return nil, fmt.Errorf("element type %v has no benchtop dtype", ort.TensorElementDataType(x.DataType()))
		}
		return tensor.NewTensorFromBytes(dt, shape, buf)
	case *ort.Tensor[float32]:
		return tensor.NewTensor(shape, x.GetData())
	case *ort.Tensor[float64]:
		return tensor.NewTensor(shape, x.GetData())
	case *ort.Tensor[int32]:
		return tensor.NewTensor(shape, x.GetData())
	case *ort.Tensor[int64]:
		return tensor.NewTensor(shape, x.GetData())
	case *ort.Tensor[uint8]:
		return tensor.NewTensor(shape, x.GetData())
	case *ort.Tensor[bool]:
		return tensor.NewTensor(shape, x.GetData())
	case *ort.StringTensor:
		strs, err := x.GetContents()
		if err != nil {
			return nil, err
		}
		return tensor.NewStringTensor(shape, strs)
	}
	return nil, fmt.Errorf("the runtime returned %s %T, which benchtop tensors cannot carry", v.GetONNXType(), v)
}

func engineType(t ort.TensorElementDataType) (tensor.DType, bool) {
	for dt, ot := range ortType {
		if ot == t {
			return dt, true
		}
	}
	return tensor.DTypeInvalid, false
}
