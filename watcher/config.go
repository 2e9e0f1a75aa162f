package watcher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
)

// Config is one benchtop YAML file, decoded. Optional knobs are pointers so
// that "not set" falls through to the runner's batching, then to defaults.
type Config struct {
	Server  Server
	Runners []Runner
	APIs    []API

	File string         // where it came from, for messages
	sum  string         // sha256 of the bytes
	pos  map[string]Pos // key path → position, for semantic errors
}

// ModelResolver turns a model tag from the store (`mlp:latest`) into the
// runnable and params that run it. The watcher knows nothing of stores or
// frameworks; main wires the model store in.
type ModelResolver interface {
	ResolveModel(tag string) (runnable string, params engine.Params, err error)
	// WatchDirs are watched so that a new version behind a tag reloads
	// the runners that use it.
	WatchDirs() []string
}

// Process is a runner whose workers are child processes speaking the
// worker protocol (docs/WORKER_PROTOCOL.md).
type Process struct {
	Command []string
	Env     map[string]string
	Dir     string
	// HandshakeTimeout bounds a worker's start-up, model loading included.
	HandshakeTimeout time.Duration
}

// Option adjusts how a config is validated.
type Option func(*options)

type options struct {
	models  ModelResolver
	runners []string // nil: all of the file's, with its APIs
}

// WithModels lets runners name stored models (`model: mlp:latest`).
func WithModels(m ModelResolver) Option { return func(o *options) { o.models = m } }

// Server is the HTTP front end's settings, read at start.
type Server struct {
	Host string
	Port int
	// GRPCPort is where the v2 gRPC service listens, if grpc_port was
	// given (GRPCPortSet); GRPCListenPort derives it otherwise.
	GRPCPort    int
	GRPCPortSet bool
	// BodyTimeout bounds how long one request body may take to arrive.
	BodyTimeout time.Duration
	// MaxInflightMB bounds the request bodies held at once, in MiB.
	MaxInflightMB int
	// AllowedHosts are Host names served besides localhost and loopback
	// IPs (a name, or name:port).
	AllowedHosts []string
	// AllowedOrigins are web origins (scheme://host[:port]) whose pages
	// may POST.
	AllowedOrigins []string
}

// GRPCListenPort is the gRPC port to bind: grpc_port as given (-1: gRPC
// off), else the HTTP port + 1 (3001 beside the default 3000, as Triton
// pairs 8000 and 8001), or any free port when the HTTP port is 0, so that
// `--port 0` never collides on a fixed gRPC port.
func (s Server) GRPCListenPort() int {
	switch {
	case s.GRPCPortSet:
		return s.GRPCPort
	case s.Port == 0:
		return 0
	}
	return s.Port + 1
}

// Server defaults: loopback, so nothing is exposed by accident, and bounds
// sized for a laptop.
const (
	DefaultHost          = "127.0.0.1"
	DefaultPort          = 3000
	DefaultBodyTimeout   = 30 * time.Second
	DefaultMaxInflightMB = 256
)

// Runner is one entry of runners:.
type Runner struct {
	Name      string
	Runnable  string
	Model     string   // a model store tag, instead of Runnable
	Process   *Process // a worker process, instead of Runnable
	Remote    *Remote  // runner servers elsewhere, instead of Runnable
	Replicas  *Replicas
	Init      map[string]any
	Workers   int
	Resources engine.Resources
	Batching  Batching
	Methods   map[string]Batching // methods.<name>.batching
	Timeout   time.Duration
	// WorkersPerResource: workers per GPU (or, below 1, GPUs per worker).
	WorkersPerResource float64
}

// Batching is a partial set of knobs; nil means inherit.
type Batching struct {
	Policy       *batcher.Policy
	MaxBatchSize *int
	MaxLatency   *time.Duration
	BatchWait    *time.Duration
	MaxQueueSize *int
}

// API is one entry of apis: one runner method (runner, method), a Go
// function (func, runners) or a pipeline (steps, outputs); apis.go.
type API struct {
	Name, Runner, Method string
	Input, Output        string
	Func                 string
	Runners              map[string]string
	Steps                []engine.StepSpec
	Outputs              []engine.Binding
}

// Load reads and parses a config file (syntax and types only; see Check).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes data, reporting every syntax and type problem at once.
func Parse(file string, data []byte) (*Config, error) {
	sum := sha256.Sum256(data)
	c := &Config{File: file, sum: hex.EncodeToString(sum[:]), Server: Server{
		Host: DefaultHost, Port: DefaultPort, BodyTimeout: DefaultBodyTimeout, MaxInflightMB: DefaultMaxInflightMB,
	}}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Problems{syntaxProblem(file, err)}
	}
	d := &decoder{file: file, pos: map[string]Pos{}}
	if len(root.Content) == 0 {
		return nil, Problems{{File: file, Msg: "config is empty: it needs at least runners:"}}
	}
	d.mapping(root.Content[0], "", map[string]func(*yaml.Node, string){
		"server": func(n *yaml.Node, p string) {
			d.mapping(n, p, map[string]func(*yaml.Node, string){
				"host": func(n *yaml.Node, p string) { c.Server.Host = d.str(n, p) },
				"port": func(n *yaml.Node, p string) { c.Server.Port = d.integer(n, p) },
				"grpc_port": func(n *yaml.Node, p string) {
					c.Server.GRPCPort, c.Server.GRPCPortSet = d.integer(n, p), true
				},
				"body_timeout":    func(n *yaml.Node, p string) { c.Server.BodyTimeout = d.duration(n, p) },
				"max_inflight_mb": func(n *yaml.Node, p string) { c.Server.MaxInflightMB = d.integer(n, p) },
				"allowed_hosts": func(n *yaml.Node, p string) {
					d.sequence(n, p, func(n *yaml.Node, p string) { c.Server.AllowedHosts = append(c.Server.AllowedHosts, d.str(n, p)) })
				},
				"allowed_origins": func(n *yaml.Node, p string) {
					d.sequence(n, p, func(n *yaml.Node, p string) { c.Server.AllowedOrigins = append(c.Server.AllowedOrigins, d.str(n, p)) })
				},
			})
		},
		"runners": func(n *yaml.Node, p string) {
			d.sequence(n, p, func(n *yaml.Node, p string) { c.Runners = append(c.Runners, d.runner(n, p)) })
		},
		"apis": func(n *yaml.Node, p string) {
			d.sequence(n, p, func(n *yaml.Node, p string) { c.APIs = append(c.APIs, d.api(n, p)) })
		},
	})
	c.pos = d.pos
	if len(d.problems) > 0 {
		return nil, d.problems
	}
	return c, nil
}

func (d *decoder) runner(n *yaml.Node, p string) Runner {
	var r Runner
	d.note(n, p)
	d.mapping(n, p, map[string]func(*yaml.Node, string){
		"name":                 func(n *yaml.Node, p string) { r.Name = d.str(n, p) },
		"runnable":             func(n *yaml.Node, p string) { r.Runnable = d.str(n, p) },
		"model":                func(n *yaml.Node, p string) { r.Model = d.str(n, p) },
		"process":              func(n *yaml.Node, p string) { r.Process = d.process(n, p) },
		"remote":               func(n *yaml.Node, p string) { r.Remote = d.remote(n, p) },
		"replicas":             func(n *yaml.Node, p string) { r.Replicas = d.replicas(n, p) },
		"init":                 func(n *yaml.Node, p string) { r.Init = d.anyValue(n, p) },
		"workers":              func(n *yaml.Node, p string) { r.Workers = d.integer(n, p) },
		"timeout":              func(n *yaml.Node, p string) { r.Timeout = d.duration(n, p) },
		"workers_per_resource": func(n *yaml.Node, p string) { r.WorkersPerResource = d.number(n, p) },
		"resources": func(n *yaml.Node, p string) {
			d.mapping(n, p, map[string]func(*yaml.Node, string){
				"cpu": func(n *yaml.Node, p string) { r.Resources.CPU = d.number(n, p) },
				"nvidia.com/gpu": func(n *yaml.Node, p string) {
					// A count, or a list of device ids.
					if n.Kind == yaml.SequenceNode {
						d.sequence(n, p, func(n *yaml.Node, p string) { r.Resources.GPUIDs = append(r.Resources.GPUIDs, d.integer(n, p)) })
						return
					}
					r.Resources.GPU = d.integer(n, p)
				},
			})
		},
		"batching": func(n *yaml.Node, p string) { r.Batching = d.batching(n, p) },
		"methods": func(n *yaml.Node, p string) {
			if isNull(n) {
				return
			}
			if n.Kind != yaml.MappingNode {
				d.errorf(n, p, "want a mapping of method names, got %s", describeNode(n))
				return
			}
			r.Methods = map[string]Batching{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				mp := join(p, k.Value)
				d.note(k, mp)
				d.mapping(v, mp, map[string]func(*yaml.Node, string){
					"batching": func(n *yaml.Node, p string) { r.Methods[k.Value] = d.batching(n, p) },
				})
			}
		},
	})
	return r
}

func (d *decoder) process(n *yaml.Node, p string) *Process {
	pr := &Process{}
	d.note(n, p)
	d.mapping(n, p, map[string]func(*yaml.Node, string){
		"command": func(n *yaml.Node, p string) {
			d.sequence(n, p, func(n *yaml.Node, p string) { pr.Command = append(pr.Command, d.str(n, p)) })
		},
		"env": func(n *yaml.Node, p string) {
			if isNull(n) {
				return
			}
			if n.Kind != yaml.MappingNode {
				d.errorf(n, p, "want a mapping of variable names to values, got %s", describeNode(n))
				return
			}
			pr.Env = map[string]string{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				pr.Env[n.Content[i].Value] = d.str(n.Content[i+1], join(p, n.Content[i].Value))
			}
		},
		"dir":               func(n *yaml.Node, p string) { pr.Dir = d.str(n, p) },
		"handshake_timeout": func(n *yaml.Node, p string) { pr.HandshakeTimeout = d.duration(n, p) },
	})
	return pr
}

func (d *decoder) batching(n *yaml.Node, p string) Batching {
	var b Batching
	ms := func(n *yaml.Node, p string) *time.Duration {
		v := time.Duration(d.number(n, p) * float64(time.Millisecond))
		return &v
	}
	d.mapping(n, p, map[string]func(*yaml.Node, string){
		"policy": func(n *yaml.Node, p string) {
			s := d.str(n, p)
			pol, err := batcher.ParsePolicy(s)
			if err != nil {
				d.errorf(n, p, "%q is not a policy: want adaptive, fixed or none", s)
			}
			b.Policy = &pol
		},
		"max_batch_size": func(n *yaml.Node, p string) { v := d.integer(n, p); b.MaxBatchSize = &v },
		"max_latency_ms": func(n *yaml.Node, p string) { b.MaxLatency = ms(n, p) },
		"batch_wait_ms":  func(n *yaml.Node, p string) { b.BatchWait = ms(n, p) },
		"max_queue_size": func(n *yaml.Node, p string) { v := d.integer(n, p); b.MaxQueueSize = &v },
	})
	return b
}

func (d *decoder) api(n *yaml.Node, p string) API {
	var a API
	d.note(n, p)
	d.mapping(n, p, map[string]func(*yaml.Node, string){
		"name":    func(n *yaml.Node, p string) { a.Name = d.str(n, p) },
		"runner":  func(n *yaml.Node, p string) { a.Runner = d.str(n, p) },
		"method":  func(n *yaml.Node, p string) { a.Method = d.str(n, p) },
		"input":   func(n *yaml.Node, p string) { a.Input = d.str(n, p) },
		"output":  func(n *yaml.Node, p string) { a.Output = d.str(n, p) },
		"func":    func(n *yaml.Node, p string) { a.Func = d.str(n, p) },
		"runners": func(n *yaml.Node, p string) { a.Runners = d.roles(n, p) },
		"steps":   func(n *yaml.Node, p string) { a.Steps = d.steps(n, p) },
		"outputs": func(n *yaml.Node, p string) { a.Outputs = d.bindings(n, p) },
	})
	return a
}

// over returns base with the knobs set in b.
func (b Batching) over(base batcher.Config) batcher.Config {
	if b.Policy != nil {
		base.Policy = *b.Policy
	}
	if b.MaxBatchSize != nil {
		base.MaxBatchSize = *b.MaxBatchSize
	}
	if b.MaxLatency != nil {
		base.MaxLatency = *b.MaxLatency
	}
	if b.BatchWait != nil {
		base.BatchWait = *b.BatchWait
	}
	if b.MaxQueueSize != nil {
		base.MaxQueueSize = *b.MaxQueueSize
	}
	return base
}

// ApplyEnv overrides keys from the environment: BENCHTOP_HOST,
// BENCHTOP_PORT and BENCHTOP_GRPC_PORT (handy in containers and CI, where
// editing the file is not).
func (c *Config) ApplyEnv(getenv func(string) string) error {
	if h := getenv("BENCHTOP_HOST"); h != "" {
		c.Server.Host = h
	}
	if p := getenv("BENCHTOP_PORT"); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("BENCHTOP_PORT=%q: want a port number", p)
		}
		c.Server.Port = port
	}
	if p := getenv("BENCHTOP_GRPC_PORT"); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("BENCHTOP_GRPC_PORT=%q: want a port number, or -1 to turn gRPC off", p)
		}
		c.Server.GRPCPort, c.Server.GRPCPortSet = port, true
	}
	return nil
}

// Resolved is a config whose runners say what they run: the runnable and
// init params behind each model: and process: entry, and the file's partial
// batching knobs layered (a method's over its runner's over the defaults).
// It is what the engine plans.
type Resolved struct {
	Engine engine.Config
	// Hash is the sha256 of the bytes and of the models resolved: a reload
	// whose hash is the one served has nothing to do.
	Hash string
}

// Resolve decides what each runner runs: a registered runnable, a stored
// model (through models) or a worker process. It changes nothing in c. A
// runner it cannot resolve is left without a runnable, and the error lists
// why, at file:line:column.
func (c *Config) Resolve(models ModelResolver) (*Resolved, error) {
	res, ps := c.resolve(models)
	if len(ps) > 0 {
		return res, ps
	}
	return res, nil
}

func (c *Config) resolve(models ModelResolver) (*Resolved, Problems) {
	res := &Resolved{Hash: c.sum}
	var ps Problems
	for i, r := range c.Runners {
		if r.Remote != nil {
			r = r.withoutServerKnobs()
		}
		runnable, params, err := r.resolve(models)
		if err != nil {
			ps = append(ps, c.problem(fmt.Sprintf("runners[%d]", i), err))
		} else if r.Model != "" {
			// A new version behind the same tag must not look like an
			// unchanged config.
			sum := sha256.Sum256([]byte(res.Hash + r.Model + fmt.Sprint(params)))
			res.Hash = hex.EncodeToString(sum[:])
		}
		res.Engine.Runners = append(res.Engine.Runners, r.engineConfig(runnable, params))
	}
	for _, a := range c.APIs {
		res.Engine.APIs = append(res.Engine.APIs, a.engineSpec())
	}
	return res, ps
}

// engineConfig is the runner for the engine, running runnable with params.
func (r Runner) engineConfig(runnable string, params engine.Params) engine.RunnerConfig {
	base := r.Batching.over(batcher.DefaultConfig())
	rc := engine.RunnerConfig{
		Name: r.Name, Runnable: runnable, Params: params,
		Workers: r.Workers, Resources: r.Resources, Batching: base, Timeout: r.Timeout,
		WorkersPerResource: r.WorkersPerResource,
	}
	if len(r.Methods) > 0 {
		rc.Methods = map[string]batcher.Config{}
		for m, b := range r.Methods {
			rc.Methods[m] = b.over(base)
		}
	}
	return rc
}

// Checked is a config that passed Check: the file as written, the hash of
// what it resolved to, and the engine's plan for it.
type Checked struct {
	*Config
	Hash string
	Plan *engine.Plan
}

// Check resolves c and plans it on eng (engine.Engine.Plan): the plan that
// Apply takes, or every problem at once, at file:line:column. It changes
// neither c nor eng; ctx bounds what resolving the runners' methods asks of
// workers. The engine does every runner and API check; the file adds its
// own: the server section, at least one runner, and a workers key written
// as 0.
func (c *Config) Check(ctx context.Context, eng *engine.Engine, opts ...Option) (*Checked, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.runners != nil {
		sub, err := c.only(o.runners)
		if err != nil {
			return nil, err
		}
		c = sub
	}
	ps := c.checkFile()
	res, rps := c.resolve(o.models)
	ps = append(ps, rps...)
	plan, err := eng.Plan(ctx, res.Engine)
	ps = append(ps, c.positioned(err, rps)...)
	if len(ps) > 0 {
		sort.SliceStable(ps, func(i, j int) bool {
			if ps[i].Pos.Line != ps[j].Pos.Line {
				return ps[i].Pos.Line < ps[j].Pos.Line
			}
			return ps[i].Pos.Column < ps[j].Pos.Column
		})
		return nil, ps
	}
	return &Checked{Config: c, Hash: res.Hash, Plan: plan}, nil
}

// Validate is Check for its verdict alone: it reports every problem at once
// and changes nothing.
func (c *Config) Validate(ctx context.Context, eng *engine.Engine, opts ...Option) error {
	_, err := c.Check(ctx, eng, opts...)
	return err
}

// positioned turns the engine's problems into the file's. A runner that did
// not resolve reaches the engine without a runnable: resolving said why
// already (unresolved), so the engine's "required" is left out.
func (c *Config) positioned(err error, unresolved Problems) Problems {
	if err == nil {
		return nil
	}
	var eps engine.Problems
	if !errors.As(err, &eps) {
		return Problems{{File: c.File, Msg: err.Error()}}
	}
	skip := map[string]bool{}
	for _, p := range unresolved {
		skip[p.Path+".runnable"] = true
	}
	var ps Problems
	for _, p := range eps {
		if !skip[p.Path] {
			ps = append(ps, c.problem(p.Path, p.Err))
		}
	}
	return ps
}

func (c *Config) problem(path string, err error) Problem {
	return Problem{File: c.File, Pos: c.at(path), Path: path, Msg: err.Error()}
}

// checkFile reports what only the file can get wrong: the server section,
// which the engine has no say in; a file without runners; and a workers key
// written as 0, which the engine would hear as left out.
func (c *Config) checkFile() Problems {
	var ps Problems
	add := func(path, format string, args ...any) {
		ps = append(ps, c.problem(path, fmt.Errorf(format, args...)))
	}
	if c.Server.Port < 0 || c.Server.Port > 65535 {
		add("server.port", "%d is not a port: want 0 (any free port) to 65535", c.Server.Port)
	}
	switch gp := c.Server.GRPCListenPort(); {
	case c.Server.GRPCPortSet && (gp < -1 || gp > 65535):
		add("server.grpc_port", "%d is not a port: want 0 (any free port) to 65535, or -1 to turn gRPC off", gp)
	case !c.Server.GRPCPortSet && gp > 65535:
		add("server.port", "%d leaves no port above it for gRPC (the HTTP port + 1): set server.grpc_port", c.Server.Port)
	case gp > 0 && gp == c.Server.Port:
		add("server.grpc_port", "%d is the HTTP port too: give gRPC a port of its own, or -1 to turn it off", gp)
	}
	if c.Server.Host == "" {
		add("server.host", "empty: want an address such as 127.0.0.1")
	}
	checkServerBounds(c.Server, add)
	if len(c.Runners) == 0 {
		add("runners", "no runners: add at least one")
	}
	for i, r := range c.Runners {
		p := fmt.Sprintf("runners[%d].workers", i)
		if _, given := c.pos[p]; given && r.Workers == 0 {
			add(p, "0: want 1 to %d, or leave it out to size the pool from resources", engine.MaxWorkers)
		}
	}
	c.checkScaleOut(add)
	return ps
}

// checkServerBounds reports server keys that would refuse everything or
// could never match.
func checkServerBounds(s Server, add func(path, format string, args ...any)) {
	if s.BodyTimeout <= 0 {
		add("server.body_timeout", "%s: want a duration above 0, such as 30s", s.BodyTimeout)
	}
	if s.MaxInflightMB < 1 {
		add("server.max_inflight_mb", "%d: want at least 1 (MiB)", s.MaxInflightMB)
	}
	for i, h := range s.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/ \t") {
			add(fmt.Sprintf("server.allowed_hosts[%d]", i), "%q: want a host name or address, optionally with :port (bench.lan, bench.lan:3000, [fd00::1])", h)
		}
	}
	for i, o := range s.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
			add(fmt.Sprintf("server.allowed_origins[%d]", i), "%q: want an origin, scheme://host[:port] (https://app.example, http://localhost:8080)", o)
		}
	}
}

// resolve decides what r runs: a registered runnable, a stored model
// (through the resolver) or a worker process.
func (r Runner) resolve(models ModelResolver) (runnable string, params engine.Params, err error) {
	set := 0
	for _, b := range []bool{r.Runnable != "", r.Model != "", r.Process != nil, r.Remote != nil} {
		if b {
			set++
		}
	}
	switch {
	case set == 0:
		return "", nil, fmt.Errorf("say what it runs: runnable: (a registered runnable), model: (a stored model such as mlp:latest), process: (a worker command) or remote: (runner servers elsewhere)")
	case set > 1:
		return "", nil, fmt.Errorf("runnable, model, process and remote are alternatives: keep one")
	case r.Runnable != "":
		return r.Runnable, engine.Params(r.Init), nil
	case r.Process != nil:
		return r.Process.params(r.Init)
	case r.Remote != nil:
		return r.Remote.params(r.Name)
	}
	return r.model(models)
}

// params are the process runnable's init params for p.
func (p *Process) params(init map[string]any) (string, engine.Params, error) {
	if len(p.Command) == 0 {
		return "", nil, fmt.Errorf("process.command: required, e.g. [python3, samples/python/sentiment_worker.py]")
	}
	params := engine.Params{"command": p.Command}
	if len(p.Env) > 0 {
		env := map[string]any{}
		for k, v := range p.Env {
			env[k] = v
		}
		params["env"] = env
	}
	if p.Dir != "" {
		params["dir"] = p.Dir
	}
	if p.HandshakeTimeout > 0 {
		params["handshake_timeout_ms"] = p.HandshakeTimeout.Milliseconds()
	}
	if len(init) > 0 {
		params["init"] = init
	}
	return "process", params, nil
}

// model asks the model store what runs r's model.
func (r Runner) model(models ModelResolver) (string, engine.Params, error) {
	if models == nil {
		return "", nil, fmt.Errorf("model %q: no model store is available here", r.Model)
	}
	runnable, params, err := models.ResolveModel(r.Model)
	if err != nil {
		return "", nil, fmt.Errorf("model: %w", err)
	}
	// init tunes how the model runs (which output, batch dim…); where it
	// lives is the store's business.
	for k, v := range r.Init {
		if k == "path" {
			return "", nil, fmt.Errorf("init.path: a stored model's file comes from the store (model %q): remove it", r.Model)
		}
		params[k] = v
	}
	return runnable, params, nil
}

// at finds the position of path or of its nearest ancestor.
func (c *Config) at(path string) Pos {
	for p := path; p != ""; {
		if pos, ok := c.pos[p]; ok {
			return pos
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return Pos{}
}

// LoadAndValidate is Load, ApplyEnv and Check in one step.
func LoadAndValidate(ctx context.Context, path string, eng *engine.Engine, getenv func(string) string, opts ...Option) (*Checked, error) {
	c, err := Load(path)
	if err != nil {
		return nil, err
	}
	return c.finish(ctx, eng, getenv, opts)
}

// ParseAndValidate is Parse, ApplyEnv and Check in one step.
func ParseAndValidate(ctx context.Context, file string, data []byte, eng *engine.Engine, getenv func(string) string, opts ...Option) (*Checked, error) {
	c, err := Parse(file, data)
	if err != nil {
		return nil, err
	}
	return c.finish(ctx, eng, getenv, opts)
}

func (c *Config) finish(ctx context.Context, eng *engine.Engine, getenv func(string) string, opts []Option) (*Checked, error) {
	if getenv != nil {
		if err := c.ApplyEnv(getenv); err != nil {
			return nil, err
		}
	}
	return c.Check(ctx, eng, opts...)
}

// Effective renders the config with every default filled in, as YAML that
// `config check` accepts and that plans the same: each runner says what it
// runs as the file does (runnable:, model: or process:), and a knob the
// file leaves to be derived (workers from resources, resources themselves)
// stays left out.
func (c *Checked) Effective() ([]byte, error) {
	var out effectiveConfig
	out.Server = effectiveServer{
		Host: c.Server.Host, Port: c.Server.Port, GRPCPort: c.Server.GRPCListenPort(), BodyTimeout: c.Server.BodyTimeout.String(),
		MaxInflightMB: c.Server.MaxInflightMB, AllowedHosts: c.Server.AllowedHosts, AllowedOrigins: c.Server.AllowedOrigins,
	}
	for i, rc := range c.Plan.Config().Runners {
		out.Runners = append(out.Runners, effectiveRunnerOf(c.Runners[i], rc))
	}
	for _, a := range c.Plan.Config().APIs {
		out.APIs = append(out.APIs, effectiveAPI(a))
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("render the effective config: %w", err)
	}
	return buf.Bytes(), nil
}

type effectiveConfig struct {
	Server  effectiveServer   `yaml:"server"`
	Runners []effectiveRunner `yaml:"runners"`
	APIs    []apiOut          `yaml:"apis,omitempty"`
}

type effectiveServer struct {
	Host           string   `yaml:"host"`
	Port           int      `yaml:"port"`
	GRPCPort       int      `yaml:"grpc_port"`
	BodyTimeout    string   `yaml:"body_timeout"`
	MaxInflightMB  int      `yaml:"max_inflight_mb"`
	AllowedHosts   []string `yaml:"allowed_hosts,omitempty"`
	AllowedOrigins []string `yaml:"allowed_origins,omitempty"`
}

type effectiveRunner struct {
	Name               string                     `yaml:"name"`
	Runnable           string                     `yaml:"runnable,omitempty"`
	Model              string                     `yaml:"model,omitempty"`
	Process            *effectiveProcess          `yaml:"process,omitempty"`
	Init               map[string]any             `yaml:"init,omitempty"`
	Workers            int                        `yaml:"workers,omitempty"`
	WorkersPerResource float64                    `yaml:"workers_per_resource,omitempty"`
	Resources          map[string]any             `yaml:"resources,omitempty"`
	Batching           effectiveBatching          `yaml:"batching"`
	Methods            map[string]effectiveMethod `yaml:"methods,omitempty"`
	Timeout            string                     `yaml:"timeout"`
}

type effectiveProcess struct {
	Command          []string          `yaml:"command,flow"`
	Env              map[string]string `yaml:"env,omitempty"`
	Dir              string            `yaml:"dir,omitempty"`
	HandshakeTimeout string            `yaml:"handshake_timeout,omitempty"`
}

type effectiveBatching struct {
	Policy       string  `yaml:"policy"`
	MaxBatchSize int     `yaml:"max_batch_size"`
	MaxLatencyMS float64 `yaml:"max_latency_ms"`
	BatchWaitMS  float64 `yaml:"batch_wait_ms"`
	MaxQueueSize int     `yaml:"max_queue_size"`
}

type effectiveMethod struct {
	Batching effectiveBatching `yaml:"batching"`
}

func effectiveBatchingOf(b batcher.Config) effectiveBatching {
	return effectiveBatching{b.Policy.String(), b.MaxBatchSize, float64(b.MaxLatency) / 1e6, float64(b.BatchWait) / 1e6, b.MaxQueueSize}
}

// effectiveRunnerOf is r as the file writes it, with the knobs the plan
// rc settled.
func effectiveRunnerOf(r Runner, rc engine.RunnerConfig) effectiveRunner {
	ro := effectiveRunner{
		Name: r.Name, Runnable: r.Runnable, Model: r.Model, Init: r.Init,
		Workers: rc.Workers, WorkersPerResource: rc.WorkersPerResource,
		Batching: effectiveBatchingOf(rc.Batching), Timeout: rc.Timeout.String(),
	}
	if p := r.Process; p != nil {
		ro.Process = &effectiveProcess{Command: p.Command, Env: p.Env, Dir: p.Dir}
		if p.HandshakeTimeout > 0 {
			ro.Process.HandshakeTimeout = p.HandshakeTimeout.String()
		}
	}
	res := map[string]any{}
	if rc.Resources.CPU > 0 {
		res["cpu"] = rc.Resources.CPU
	}
	switch {
	case len(rc.Resources.GPUIDs) > 0:
		res["nvidia.com/gpu"] = rc.Resources.GPUIDs
	case rc.Resources.GPU > 0:
		res["nvidia.com/gpu"] = rc.Resources.GPU
	}
	if len(res) > 0 {
		ro.Resources = res
	}
	if len(rc.Methods) > 0 {
		ro.Methods = map[string]effectiveMethod{}
		for m, b := range rc.Methods {
			ro.Methods[m] = effectiveMethod{effectiveBatchingOf(b)}
		}
	}
	return ro
}
