// Package remote is the runnable behind a `remote:` runner: its methods
// are served by runner servers (`benchtop serve --runners NAME`) and called
// over the KServe v2 gRPC protocol with raw tensors. Batching happens on
// the servers, where the workers are; the front end's own batcher only
// coalesces calls when its cost model says a shared call pays (see
// Defaults). The runners of one config that name the same servers share
// one client (Pool): one connection per endpoint, balanced by least
// outstanding calls, each endpoint probed by the standard health service
// and taken out while it fails.
package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/engine/v2pb"
)

// TypeName is the runnable a `remote:` runner resolves to.
const TypeName = "remote"

// A remote runner's workers are its calls in flight, each a goroutine
// waiting on the network. Fewer slots than callers is what lets the front
// end coalesce: while every slot is busy, requests queue and leave as one
// call (BenchmarkRemoteCoalescing: 64 callers of echo through 8 slots make
// one call per ~29 requests and 11× the rate of one call per request).
// Enough slots keep every server's batcher fed: CallsPerEndpoint for each
// listed endpoint, at least MinConcurrency, DNSConcurrency for a dns:///
// name (its count of addresses changes); remote.concurrency overrides.
const (
	CallsPerEndpoint = 4
	MinConcurrency   = 8
	DNSConcurrency   = 16
)

// isDNS is whether the endpoints are one dns:/// name to resolve.
func (p Params) isDNS() bool {
	return len(p.Endpoints) == 1 && strings.HasPrefix(p.Endpoints[0], dnsScheme)
}

// concurrency is the calls in flight of a runner with these params.
func (p Params) concurrency() int {
	switch {
	case p.Concurrency > 0:
		return p.Concurrency
	case p.isDNS():
		return DNSConcurrency
	}
	return max(MinConcurrency, CallsPerEndpoint*len(p.Endpoints))
}

// Params are a remote runner's init params, as the config's remote: entry
// resolves to them.
type Params struct {
	// Endpoints are host:port addresses, or one dns:///name:port whose
	// addresses are the endpoints, re-resolved as they change.
	Endpoints []string `json:"endpoints"`
	// Model is the runner's name on the servers.
	Model string `json:"model"`
	// TimeoutMS bounds one call.
	TimeoutMS int64 `json:"timeout_ms"`
	// Concurrency is the calls in flight; 0: derived (concurrency).
	Concurrency int `json:"concurrency,omitempty"`
}

func decodeParams(p engine.Params) (Params, error) {
	var rp Params
	if err := p.Decode(&rp); err != nil {
		return Params{}, err
	}
	if len(rp.Endpoints) == 0 {
		return Params{}, errors.New("endpoints: required (host:port, or one dns:///name:port)")
	}
	if rp.Model == "" {
		return Params{}, errors.New("model: required (the runner's name on its servers)")
	}
	if rp.TimeoutMS <= 0 {
		rp.TimeoutMS = 30_000
	}
	return rp, nil
}

func (p Params) timeout() time.Duration { return time.Duration(p.TimeoutMS) * time.Millisecond }

// key identifies what a client calls; runners (and the generations of one
// across reloads) with the same key share one.
func (p Params) key() string {
	return fmt.Sprintf("%s|%s|%d", strings.Join(p.Endpoints, ","), p.Model, p.TimeoutMS)
}

// Options configure a Pool; zero values are sensible.
type Options struct {
	Logger *slog.Logger
	// ProbeEvery is how often each endpoint's health is checked (default
	// 1s); ResolveEvery how often a dns:/// name is looked up (default 5s).
	ProbeEvery, ResolveEvery time.Duration
	// Lookup resolves a host name to addresses; nil is the system resolver.
	Lookup func(ctx context.Context, host string) ([]string, error)
}

// Pool holds the clients of a config's remote runners and registers the
// remote runnable. Close it after the engine that uses it.
type Pool struct {
	opts    Options
	clients *clientSet
}

// NewPool returns a pool with no clients yet: they are made when a runner
// is described or started, and closed with the last runner that uses them.
func NewPool(opts Options) *Pool {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ProbeEvery <= 0 {
		opts.ProbeEvery = time.Second
	}
	if opts.ResolveEvery <= 0 {
		opts.ResolveEvery = 5 * time.Second
	}
	return &Pool{opts: opts, clients: newClientSet(opts)}
}

// Close closes every client still open (none, once every runner has
// closed).
func (p *Pool) Close() { p.clients.closeAll() }

// Endpoints reports the state of each endpoint of a remote runner's
// servers, for the workbench; nil if no runner of that name is remote.
func (p *Pool) Endpoints(runner string) []EndpointState {
	if c := p.clients.forRunner(runner); c != nil {
		return c.states()
	}
	return nil
}

// Batching is how a remote runner's methods batch on its servers; nil if
// no runner of that name is remote or its servers have not said yet.
func (p *Pool) Batching(runner string) []ServerBatching {
	c := p.clients.forRunner(runner)
	if c == nil {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return append([]ServerBatching(nil), c.batching...)
}

// Register adds the remote runnable to reg.
func (p *Pool) Register(reg *engine.Registry) error {
	return reg.Register(&engine.RunnableType{
		Name: TypeName,
		Doc:  "a runner served elsewhere: runner servers called over KServe v2 gRPC (the config's remote: entry)",
		Validate: func(_ context.Context, params engine.Params) error {
			_, err := decodeParams(params)
			return err
		},
		Describe: p.describe,
		Defaults: func(params engine.Params) engine.RunnerDefaults {
			// The servers bound latency and queues and refuse with a retry
			// delay; the front end adds no bound of its own, and its
			// adaptive policy coalesces calls when they queue for a slot.
			rp, _ := decodeParams(params) // Validate reports what is wrong
			return engine.RunnerDefaults{Workers: rp.concurrency(), Batching: batcher.Config{
				Policy: batcher.Adaptive, MaxBatchSize: batcher.DefaultMaxBatchSize, BatchWait: batcher.DefaultBatchWait,
			}}
		},
		New: p.newInstance,
	})
}

// describe reads the runner's methods from its servers' metadata: every
// endpoint that answers must agree.
func (p *Pool) describe(ctx context.Context, params engine.Params) ([]engine.MethodSpec, error) {
	rp, err := decodeParams(params)
	if err != nil {
		return nil, err
	}
	c := p.clients.acquire("", rp)
	defer p.clients.release(c)
	ctx, cancel := context.WithTimeout(ctx, rp.timeout())
	defer cancel()
	return c.describe(ctx, rp.Model)
}

func (p *Pool) newInstance(ctx context.Context, env engine.Env) (engine.Instance, error) {
	rp, err := decodeParams(env.Params)
	if err != nil {
		return nil, err
	}
	c := p.clients.acquire(env.Runner, rp)
	inst := &instance{pool: p, client: c, params: rp, methods: env.Methods}
	if err := c.waitHealthy(ctx, rp.timeout()); err != nil {
		p.clients.release(c)
		return nil, err
	}
	c.learnBatching(ctx)
	return inst, nil
}

// instance is one worker's handle on the shared client: a slot for one
// call in flight.
type instance struct {
	pool    *Pool
	client  *client
	params  Params
	methods []engine.MethodSpec
}

var (
	_ engine.Closer      = (*instance)(nil)
	_ engine.CallerBound = (*instance)(nil)
)

func (in *instance) BoundByCallers() {}

func (in *instance) Close() error {
	in.pool.clients.release(in.client)
	return nil
}

// Call sends one batch as one ModelInfer with raw tensors.
func (in *instance) Call(ctx context.Context, method string, vals []tensor.Value) ([]tensor.Value, error) {
	i := slices.IndexFunc(in.methods, func(m engine.MethodSpec) bool { return m.Name == method })
	if i < 0 {
		return nil, fmt.Errorf("%w %q", engine.ErrUnknownMethod, method)
	}
	spec := in.methods[i]
	model := in.params.Model
	if i > 0 {
		model += "." + method
	}
	req, err := v2pb.RawRequest(model, spec.Inputs, vals)
	if err != nil {
		return nil, err
	}
	resp, err := in.client.infer(ctx, req)
	if err != nil {
		return nil, err
	}
	return outputValues(resp, spec.Outputs)
}

// outputValues reads a value per output of the spec from a raw answer.
func outputValues(resp *v2pb.ModelInferResponse, specs tensor.IOSpecs) ([]tensor.Value, error) {
	if len(resp.RawOutputContents) != len(resp.Outputs) {
		return nil, fmt.Errorf("runner server answered %d outputs with %d raw contents", len(resp.Outputs), len(resp.RawOutputContents))
	}
	out := make([]tensor.Value, len(specs))
	for i, spec := range specs {
		k := slices.IndexFunc(resp.Outputs, func(o *v2pb.ModelInferResponse_InferOutputTensor) bool { return o.Name == spec.Name })
		if k < 0 {
			return nil, fmt.Errorf("runner server answered without output %q: has its signature changed? (outputs now: %s)", spec.Name, outputNames(resp))
		}
		o := resp.Outputs[k]
		dt, err := tensor.ParseDType(o.Datatype)
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", spec.Name, err)
		}
		shape := make([]int, len(o.Shape))
		for j, d := range o.Shape {
			shape[j] = int(d)
		}
		t, err := v2pb.DecodeRaw(resp.RawOutputContents[k], dt, shape)
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", spec.Name, err)
		}
		if out[i], err = valueOf(t, spec); err != nil {
			return nil, fmt.Errorf("output %q: %w", spec.Name, err)
		}
	}
	return out, nil
}

// valueOf is t as the spec's kind: a text or JSON output travels as one
// BYTES element.
func valueOf(t *tensor.Tensor, spec tensor.IOSpec) (tensor.Value, error) {
	if spec.Kind != tensor.KindText && spec.Kind != tensor.KindJSON {
		return tensor.TensorValue(t), nil
	}
	strs := t.Strings()
	if len(strs) != 1 {
		return tensor.Value{}, fmt.Errorf("want one BYTES element for a %s output, got %v", spec.Kind, t)
	}
	if spec.Kind == tensor.KindText {
		return tensor.TextValue(strs[0]), nil
	}
	var v any
	if err := json.Unmarshal([]byte(strs[0]), &v); err != nil {
		return tensor.Value{}, fmt.Errorf("its element is not JSON: %w", err)
	}
	return tensor.JSONValue(v), nil
}

func outputNames(resp *v2pb.ModelInferResponse) string {
	var names []string
	for _, o := range resp.Outputs {
		names = append(names, o.Name)
	}
	return strings.Join(names, ", ")
}
