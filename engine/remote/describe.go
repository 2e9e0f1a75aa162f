package remote

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/engine/v2pb"
)

// describe reads the methods of model from every healthy endpoint once one
// is healthy (or ctx ends): the first method as the model itself, the
// others as model.method, as the servers list them. Endpoints that answer
// must agree; an unhealthy one is left to its probes and checked again on
// the next reload.
func (c *client) describe(ctx context.Context, model string) ([]engine.MethodSpec, error) {
	if err := c.waitHealthy(ctx, c.params.timeout()); err != nil {
		return nil, err
	}
	c.mu.RLock()
	var eps []*endpoint
	for _, ep := range c.endpoints {
		if ep.healthy.Load() && ep.infer != nil {
			eps = append(eps, ep)
		}
	}
	c.mu.RUnlock()
	type answer struct {
		specs []engine.MethodSpec
		err   error
	}
	answers := make([]answer, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() {
			specs, err := methodsAt(ctx, ep, model)
			answers[i] = answer{specs, err}
		})
	}
	wg.Wait()
	var first []engine.MethodSpec
	var firstAt string
	var errs []string
	for i, a := range answers {
		switch {
		case a.err != nil:
			errs = append(errs, fmt.Sprintf("%s: %v", eps[i].addr, a.err))
		case first == nil:
			first, firstAt = a.specs, eps[i].addr
		default:
			if d := differ(first, a.specs); d != "" {
				return nil, fmt.Errorf("runner servers disagree on %q: %s says %s, %s says %s: serve one config on every endpoint",
					model, firstAt, d, eps[i].addr, describeDiff(a.specs, d))
			}
		}
	}
	if first == nil {
		return nil, fmt.Errorf("read %q from its runner servers: %s", model, strings.Join(errs, "; "))
	}
	return first, nil
}

// methodsAt reads every method of model from one endpoint.
func methodsAt(ctx context.Context, ep *endpoint, model string) ([]engine.MethodSpec, error) {
	metas, err := metadataAt(ctx, ep, model)
	if err != nil {
		return nil, err
	}
	specs := make([]engine.MethodSpec, 0, len(metas))
	for _, m := range metas {
		spec, err := methodSpec(m)
		if err != nil {
			return nil, err
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

// metadataAt is the metadata of every method of model at one endpoint, the
// first (the model itself) first.
func metadataAt(ctx context.Context, ep *endpoint, model string) ([]*v2pb.ModelMetadataResponse, error) {
	meta, err := ep.infer.ModelMetadata(ctx, &v2pb.ModelMetadataRequest{Name: model})
	if err != nil {
		return nil, grpcMessage(err)
	}
	out := []*v2pb.ModelMetadataResponse{meta}
	first := meta.Parameters["method"].GetStringParam()
	for _, name := range strings.Split(meta.Parameters["methods"].GetStringParam(), ",") {
		if name == "" || name == first {
			continue
		}
		m, err := ep.infer.ModelMetadata(ctx, &v2pb.ModelMetadataRequest{Name: model + "." + name})
		if err != nil {
			return nil, grpcMessage(err)
		}
		out = append(out, m)
	}
	return out, nil
}

// ServerBatching is how one method batches on a remote runner's servers,
// as their metadata says: what the workbench shows, read-only.
type ServerBatching struct {
	Method       string
	Policy       string
	MaxBatchSize int
	MaxLatency   time.Duration
	Workers      int // on the endpoint asked
}

// learnBatching reads the servers' batching from the first healthy
// endpoint, once.
func (c *client) learnBatching(ctx context.Context) {
	c.mu.RLock()
	known := c.batching != nil
	c.mu.RUnlock()
	ep := c.pick(nil)
	if known || ep == nil {
		return
	}
	metas, err := metadataAt(ctx, ep, c.params.Model)
	if err != nil {
		return // the probes say what is wrong; the panel shows nothing
	}
	var out []ServerBatching
	for _, m := range metas {
		p := m.Parameters
		out = append(out, ServerBatching{
			Method: p["method"].GetStringParam(), Policy: p["policy"].GetStringParam(),
			MaxBatchSize: int(p["max_batch_size"].GetInt64Param()),
			MaxLatency:   time.Duration(p["max_latency_ms"].GetDoubleParam() * float64(time.Millisecond)),
			Workers:      int(p["workers"].GetInt64Param()),
		})
	}
	c.mu.Lock()
	c.batching = out
	c.mu.Unlock()
}

// methodSpec is a method's signature as a server's metadata gives it: v2's
// fields plus benchtop's parameters (server/v2.go, v2Meta).
func methodSpec(meta *v2pb.ModelMetadataResponse) (engine.MethodSpec, error) {
	p := meta.Parameters
	spec := engine.MethodSpec{
		Name:           p["method"].GetStringParam(),
		Doc:            p["doc"].GetStringParam(),
		Batchable:      p["batchable"].GetBoolParam(),
		BatchDim:       int(p["batch_dim"].GetInt64Param()),
		OutputBatchDim: int(p["output_batch_dim"].GetInt64Param()),
	}
	if spec.Name == "" {
		return engine.MethodSpec{}, fmt.Errorf("model %q: its metadata names no method: is it a benchtop runner server?", meta.Name)
	}
	var err error
	if spec.Inputs, err = ioSpecs(meta.Inputs); err != nil {
		return engine.MethodSpec{}, fmt.Errorf("model %q: %w", meta.Name, err)
	}
	if spec.Outputs, err = ioSpecs(meta.Outputs); err != nil {
		return engine.MethodSpec{}, fmt.Errorf("model %q: %w", meta.Name, err)
	}
	return spec, nil
}

func ioSpecs(metas []*v2pb.ModelMetadataResponse_TensorMetadata) (tensor.IOSpecs, error) {
	out := make(tensor.IOSpecs, 0, len(metas))
	for _, m := range metas {
		p := m.Parameters
		io := tensor.IOSpec{Name: m.Name, Kind: tensor.KindTensor,
			Optional: p["optional"].GetBoolParam(), Unbatched: p["unbatched"].GetBoolParam()}
		switch content := p["content"].GetStringParam(); content {
		case "":
		case "text":
			io.Kind = tensor.KindText
		case "json":
			io.Kind = tensor.KindJSON
		default:
			return nil, fmt.Errorf("%q has content %q, want text or json", m.Name, content)
		}
		if io.Kind == tensor.KindTensor {
			if m.Datatype != "" {
				dt, err := tensor.ParseDType(m.Datatype)
				if err != nil {
					return nil, fmt.Errorf("%q: %w", m.Name, err)
				}
				io.DType = dt
			}
			if !p["any_shape"].GetBoolParam() {
				io.Shape = make([]int, len(m.Shape))
				for i, d := range m.Shape {
					io.Shape[i] = int(d)
				}
			}
		}
		out = append(out, io)
	}
	return out, nil
}

// differ names the first method whose signature differs, "" if none.
func differ(a, b []engine.MethodSpec) string {
	if len(a) != len(b) {
		return "methods"
	}
	for i := range a {
		if fmt.Sprint(a[i]) != fmt.Sprint(b[i]) {
			return a[i].Name
		}
	}
	return ""
}

// describeDiff says what specs have where differ found a difference.
func describeDiff(specs []engine.MethodSpec, what string) string {
	if what == "methods" {
		var names []string
		for _, s := range specs {
			names = append(names, s.Name)
		}
		return "methods " + strings.Join(names, ", ")
	}
	for _, s := range specs {
		if s.Name == what {
			return fmt.Sprintf("%s(%s) → %s", s.Name, s.Inputs, s.Outputs)
		}
	}
	return "no method " + what
}

func grpcMessage(err error) error {
	return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "rpc error: "))
}
