package ui

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/remote"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/server/codec"
	"github.com/benchtop/benchtop/watcher"
)

// Backend is everything the workbench asks of the engine. Every call may
// block, so the UI makes them only inside tea.Cmds.
type Backend interface {
	Snapshot() Snapshot
	SetBatching(runner, method string, cfg batcher.Config) error
	SetWorkers(runner string, n int) error
	// Save writes a tweak back to the config file, keeping its comments.
	Save(t watcher.Tweak) error
	// Targets lists what a test input or a load can be sent to.
	Targets() []Target
	Send(ctx context.Context, t Target, body string) Result
}

// Snapshot is what one frame shows.
type Snapshot struct {
	Taken   time.Time
	URL     string
	GRPC    string // host:port of the v2 gRPC service; "" when off
	Config  ConfigInfo
	Runners []engine.RunnerStats
	Events  []engine.Event
	GPU     GPUInfo
	// Remote holds each remote: runner's servers, by runner name; a runner
	// absent from it runs here.
	Remote map[string]RemoteInfo
	// APIs are the config's APIs, by name, with the runner calls each makes.
	APIs []APIInfo
}

// APIInfo is an API as the workbench lists it: its spec (form, body kinds,
// signature) and the runner methods it calls.
type APIInfo struct {
	Spec  engine.APISpec
	Calls []APICall
}

// APICall is one runner method an API calls: a pipeline's step (in the
// config's order), a Go API's role (in its type's order), or the one method
// of a method API (Name "").
type APICall struct {
	Name           string
	Runner, Method string
	Inputs         []engine.Binding // a step's: where each input comes from
}

// apiInfo lists what a calls. A Go API's roles name the method through its
// registered type; a type gone from the registry leaves the method blank.
func apiInfo(reg *engine.Registry, a engine.APISpec) APIInfo {
	info := APIInfo{Spec: a}
	switch {
	case a.IsPipeline():
		names := a.StepNames()
		for i, s := range a.Steps {
			info.Calls = append(info.Calls, APICall{Name: names[i], Runner: s.Runner, Method: s.Method, Inputs: s.Inputs})
		}
	case a.IsFunc():
		typ, err := reg.Service(a.Func)
		if err != nil {
			for _, role := range slices.Sorted(maps.Keys(a.Runners)) {
				info.Calls = append(info.Calls, APICall{Name: role, Runner: a.Runners[role]})
			}
			break
		}
		for _, role := range typ.Roles {
			info.Calls = append(info.Calls, APICall{Name: role.Name, Runner: a.Runners[role.Name], Method: role.Method.Name})
		}
	default:
		info.Calls = []APICall{{Runner: a.Runner, Method: a.Method}}
	}
	return info
}

// Form names what the API calls, as the APIs view and the targets say it.
func (a APIInfo) Form() string {
	switch {
	case a.Spec.IsPipeline():
		return "pipeline of " + plural(len(a.Spec.Steps), "step")
	case a.Spec.IsFunc():
		return "Go func " + a.Spec.Func
	}
	return a.Spec.Runner + "." + a.Spec.Method
}

// RemoteInfo is what the workbench shows of a remote runner's servers.
type RemoteInfo struct {
	Model     string // the runner's name on its servers (serve --runners NAME)
	Endpoints []remote.EndpointState
	Batching  []remote.ServerBatching // nil until a server has said
}

// Up counts the endpoints taking calls.
func (ri RemoteInfo) Up() int {
	n := 0
	for _, e := range ri.Endpoints {
		if e.Healthy {
			n++
		}
	}
	return n
}

// ServerBatching is how method batches on the servers, if they said.
func (ri RemoteInfo) ServerBatching(method string) (remote.ServerBatching, bool) {
	for _, b := range ri.Batching {
		if b.Method == method {
			return b, true
		}
	}
	return remote.ServerBatching{}, false
}

// Remotes reports remote runners' servers: remote.Pool is one.
type Remotes interface {
	Endpoints(runner string) []remote.EndpointState
	Batching(runner string) []remote.ServerBatching
}

// ConfigInfo is the live config's state for the header.
type ConfigInfo struct {
	Path       string
	Editable   bool // a file, not the embedded sample
	OK         bool
	Err        string
	LastReload time.Time
}

// GPUInfo is the GPU panel's content.
type GPUInfo struct {
	Available bool
	Message   string // why not, when not
	Devices   []GPUDevice
}

// GPUDevice is one GPU as the panel shows it.
type GPUDevice struct {
	Index             int
	Name              string
	Util, MemUtil     float64 // 0..1
	MemUsed, MemTotal uint64
	TempC, PowerW     float64 // 0 when unknown
	Processes         []string
	Runners           []string // runners with workers on it
	UtilHist, MemHist []float64
}

// Target is an API (of any form) or a runner method.
type Target struct {
	API string // set for an API: a send calls it as POST /API does
	// Form says what an API calls (APIInfo.Form).
	Form string
	// Runner and Method are the runner method a target of one method
	// calls; blank for a Go API or a pipeline.
	Runner, Method string
	// Runners are every runner the target calls.
	Runners []string
	Input   engine.IOKind // how a body is read
	// Spec's Inputs and Outputs are the signature: the method's, or the
	// API's.
	Spec engine.MethodSpec
}

// Label names the target as the user knows it.
func (t Target) Label() string {
	if t.API != "" {
		return fmt.Sprintf("POST /%s (%s)", t.API, t.Form)
	}
	return t.Runner + "." + t.Method
}

// calls reports whether the target calls runner.
func (t Target) calls(runner string) bool { return slices.Contains(t.Runners, runner) }

// Example is a valid body for the target, to pre-fill the test input: the
// HTTP front end's example, with an example for every input (optional
// ones too). JSON documents are indented for editing; an object gets one
// input a line, each kept compact, so that a tensor of a few rows does
// not run one number a line past the bottom of an 80×24 screen.
func (t Target) Example() string {
	_, body := codec.ExampleInputs(t.Input, t.Spec.Inputs)
	switch t.Input {
	case engine.IOObject:
		if b, ok := memberPerLine([]byte(body)); ok {
			return b
		}
	case engine.IOJSON:
		var b bytes.Buffer
		if json.Indent(&b, []byte(body), "", "  ") == nil {
			return b.String()
		}
	}
	return body
}

// memberPerLine writes a JSON object one member a line, in its own order.
func memberPerLine(body []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", false
	}
	var b strings.Builder
	b.WriteString("{")
	for i := 0; dec.More(); i++ {
		key, err := dec.Token()
		var val json.RawMessage
		if err != nil || dec.Decode(&val) != nil {
			return "", false
		}
		name, _ := json.Marshal(key)
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n  %s: %s", name, val)
	}
	b.WriteString("\n}")
	return b.String(), true
}

// Result is the outcome of one Send.
type Result struct {
	Output  string
	Err     error
	Latency time.Duration
	// Info is the batch that served a call of one method.
	Info engine.CallInfo
	// Steps are the runner calls of a pipeline or a Go API, in the order
	// they finished (a failed call's too, the failing one among them).
	Steps []engine.StepInfo
}

// EngineBackend is the Backend of a live engine.
type EngineBackend struct {
	Engine   *engine.Engine
	Reloader *watcher.Reloader
	URL      string
	GRPC     string
	// GPU, if set, reports the GPU panel (it must not block).
	GPU func() GPUInfo
	// Remotes, if set, reports the servers of remote: runners (it must not
	// block).
	Remotes Remotes
}

const eventsShown = 200

// Snapshot reads the engine's stats; it costs microseconds per runner.
func (b *EngineBackend) Snapshot() Snapshot {
	s := Snapshot{Taken: time.Now(), URL: b.URL, GRPC: b.GRPC}
	for _, r := range b.Engine.Runners() {
		s.Runners = append(s.Runners, r.Stats(engine.StatsOptions{Window: 5 * time.Second, History: 60}))
		if b.Remotes != nil && r.Runnable().Name == remote.TypeName {
			if s.Remote == nil {
				s.Remote = map[string]RemoteInfo{}
			}
			model, _ := r.Config().Params["model"].(string)
			s.Remote[r.Name()] = RemoteInfo{Model: cmp.Or(model, r.Name()),
				Endpoints: b.Remotes.Endpoints(r.Name()), Batching: b.Remotes.Batching(r.Name())}
		}
	}
	evs := b.Engine.Events().Since(0)
	if len(evs) > eventsShown {
		evs = evs[len(evs)-eventsShown:]
	}
	s.Events = evs
	if b.Reloader != nil {
		st := b.Reloader.Status()
		s.Config = ConfigInfo{Path: st.Path, Editable: b.Reloader.Path() != "", OK: st.OK, Err: st.Err, LastReload: st.LastReload}
	}
	if b.GPU != nil {
		s.GPU = b.GPU()
	}
	reg := b.Engine.Registry()
	for _, a := range b.Engine.APIs() {
		s.APIs = append(s.APIs, apiInfo(reg, a))
	}
	return s
}

// ErrRemoteKnobs refuses a tweak of a remote: runner: its batching and
// workers are its servers'.
var ErrRemoteKnobs = errors.New("a remote runner's batching and workers are its runner servers': change them in the servers' config")

func (b *EngineBackend) SetBatching(runner, method string, cfg batcher.Config) error {
	r, err := b.remoteGuard(runner)
	if err != nil {
		return err
	}
	return r.SetBatching(method, cfg)
}

func (b *EngineBackend) SetWorkers(runner string, n int) error {
	r, err := b.remoteGuard(runner)
	if err != nil {
		return err
	}
	return r.SetWorkers(n)
}

// remoteGuard is the runner, unless it is remote: the panel is read-only
// there, and this keeps any other caller from tuning the front end's side
// in the servers' place.
func (b *EngineBackend) remoteGuard(runner string) (*engine.Runner, error) {
	r, err := b.Engine.Runner(runner)
	if err != nil {
		return nil, err
	}
	if r.Runnable().Name == remote.TypeName {
		return nil, fmt.Errorf("runner %q: %w", runner, ErrRemoteKnobs)
	}
	return r, nil
}

func (b *EngineBackend) Save(t watcher.Tweak) error {
	if b.Reloader == nil || b.Reloader.Path() == "" {
		return errors.New("the embedded sample (--sample) is read-only: run without --sample, or with --config FILE, to save")
	}
	// An unknown runner is SaveTweak's to report, with the file's words.
	if _, err := b.remoteGuard(t.Runner); errors.Is(err, ErrRemoteKnobs) {
		return err
	}
	return watcher.SaveTweak(b.Reloader.Path(), t)
}

// Targets lists every API (each of its three forms), then every runner
// method.
func (b *EngineBackend) Targets() []Target {
	var out []Target
	reg := b.Engine.Registry()
	for _, a := range b.Engine.APIs() {
		out = append(out, apiTarget(apiInfo(reg, a)))
	}
	for _, r := range b.Engine.Runners() {
		for _, m := range r.Methods() {
			// The test input is one body, read as an API would read it: a
			// method of several inputs takes an object keyed by name.
			out = append(out, Target{Runner: r.Name(), Method: m.Name, Runners: []string{r.Name()}, Input: codec.BodyKind(m.Inputs), Spec: m})
		}
	}
	return out
}

// apiTarget is the target that calls a as POST /{api} does.
func apiTarget(a APIInfo) Target {
	t := Target{API: a.Spec.Name, Form: a.Form(), Input: a.Spec.Input,
		Spec: engine.MethodSpec{Name: a.Spec.Name, Inputs: a.Spec.Inputs, Outputs: a.Spec.Outputs}}
	if !a.Spec.IsPipeline() && !a.Spec.IsFunc() {
		t.Runner, t.Method = a.Spec.Runner, a.Spec.Method
	}
	for _, c := range a.Calls {
		if !slices.Contains(t.Runners, c.Runner) {
			t.Runners = append(t.Runners, c.Runner)
		}
	}
	return t
}

// Send decodes body as the HTTP front end does (codec.DecodeInputs) and
// runs it: an API through engine.CallAPI, against the API as it serves now
// (a reload may have changed it since the target was listed), as POST
// /{api} does; a runner method through the runner.
func (b *EngineBackend) Send(ctx context.Context, t Target, body string) Result {
	if t.API != "" {
		return b.sendAPI(ctx, t.API, body)
	}
	in, err := codec.DecodeInputs(t.Input, t.Spec.Inputs, []byte(body))
	if err != nil {
		return Result{Err: err}
	}
	start := time.Now()
	outs, info, err := b.Engine.RunInfo(ctx, t.Runner, t.Method, in)
	res := Result{Err: err, Latency: time.Since(start), Info: info}
	if err == nil {
		res.Output = formatValues(t.Spec.Outputs, outs)
	}
	return res
}

func (b *EngineBackend) sendAPI(ctx context.Context, name, body string) Result {
	a, ok := b.Engine.API(name)
	if !ok {
		return Result{Err: fmt.Errorf("%w %q: the config no longer has it (press t again for the current APIs)", engine.ErrUnknownAPI, name)}
	}
	in, err := codec.DecodeInputs(a.Input, a.Inputs, []byte(body))
	if err != nil {
		return Result{Err: err}
	}
	start := time.Now()
	outs, info, err := b.Engine.CallAPI(ctx, name, in)
	res := Result{Err: err, Latency: time.Since(start), Info: info.CallInfo, Steps: info.Steps}
	if err == nil {
		res.Output = formatValues(a.Outputs, outs)
	}
	return res
}

// formatValues renders a method's outputs for the panel, each under its
// name; a lone one the runnable left unnamed ("output") as formatValue
// does.
func formatValues(specs tensor.IOSpecs, outs []tensor.Value) string {
	if len(outs) == 1 && (len(specs) != 1 || specs[0].Name == engine.DefaultOutputName) {
		return formatValue(outs[0])
	}
	var b strings.Builder
	for i, v := range outs {
		if i > 0 {
			b.WriteString("\n")
		}
		name := fmt.Sprintf("output %d", i)
		if i < len(specs) {
			name = specs[i].Name
		}
		fmt.Fprintf(&b, "%s:\n%s", name, formatValue(v))
	}
	return b.String()
}

// formatValue renders an output for the panel: pretty JSON, the text, or a
// tensor's summary and its first values.
func formatValue(v tensor.Value) string {
	switch v.Kind() {
	case tensor.KindText:
		return v.Text()
	case tensor.KindTensor:
		t := v.Tensor()
		body := string(codec.AppendNDArray(nil, t))
		if len(body) > 600 {
			body = body[:600] + "…"
		}
		return t.String() + "\n" + body
	}
	b, err := json.MarshalIndent(v.JSON(), "", "  ")
	if err != nil {
		return fmt.Sprint(v.JSON())
	}
	return strings.TrimSpace(string(b))
}
