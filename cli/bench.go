package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	neturl "net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/benchtop/benchtop/bench"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/remote"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/server/codec"
	"github.com/benchtop/benchtop/ui/console"
)

type benchFlags struct {
	url, config, runner, method string
	concurrency, rate, arrivals string
	warmup, window, maxTime     time.Duration
	latencyLimit, timeout       time.Duration
	maxInFlight                 int
	input, output               string
	rows, seqLen                string
	vocab                       int
	compare                     []string
	seed                        uint64
	binary                      bool
}

func newBenchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a runner's throughput and latency at a series of load levels",
		Long: `Drive a runner method at a series of load levels and report, per level,
requests/s, latency percentiles, errors by kind, and the batching the server
did (batch sizes, time queued vs executing). See docs/BENCH.md.

Targets: --url, an API (http://127.0.0.1:3000/predict), a KServe v2 infer
route (http://127.0.0.1:3000/v2/models/sim/infer) or the v2 gRPC service
(grpc://127.0.0.1:3001/sim: ModelInfer with raw tensors, MODEL a runner or
runner.method; serve listens for gRPC on its HTTP port + 1) of a running
benchtop; or, in process, --config FILE --runner NAME --method NAME, which
starts only that runner. With neither: in process, the embedded sample
config's sim runner.

Load: --concurrency (closed loop: N callers, each sending when its last
request answers, or after a refusal (503) when the server's Retry-After has
about passed) or --rate (open loop: requests sent on schedule whatever the
answers; latency counts from each request's due time). Levels are a list
(1,8,32,128) or a range (1:128:x2, 100:1000:+100).

Bodies: --input FILE, or an example made from the method's signature; with
--rows, --seq-len or --vocab, a pool of different requests generated from it
and sent in turn (token ids below --vocab, masks of ones then zeros, each
request's sequence length drawn from --seq-len), in process and over HTTP
(an object or ndarray API, v2, or gRPC). --binary sends a v2 route's
tensors as raw bytes after a JSON header (Triton's binary data extension),
and asks for the outputs the same way; over gRPC tensors are always raw.

--compare runs the whole sweep once per batching setting, changed live on the
runner (in process only), and prints the results side by side.`,
		Example: `  benchtop bench --concurrency 1,16,64,256
  benchtop bench --compare policy=none,fixed,adaptive --latency-limit 50ms
  benchtop bench --url http://127.0.0.1:3000/predict --rate 200:1000:+200 --arrivals constant
  benchtop bench --config my.yaml --runner mlp --method run -o json > mlp.json
  benchtop bench --url http://127.0.0.1:3000/v2/models/textclf/infer --vocab 1000 --seq-len 8..64 --rows 1..4
  benchtop bench --url http://127.0.0.1:3000/v2/models/echo/infer --binary --rows 64 --seq-len 256
  benchtop bench --url grpc://127.0.0.1:3001/sim --concurrency 1,16,64`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBench(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.url, "url", "", "target server: an API URL, a v2 .../v2/models/MODEL/infer URL, or grpc://HOST:PORT/MODEL")
	fl.StringVarP(&f.config, "config", "c", "", "in process: the config holding the runner (default: the embedded sample config)")
	fl.StringVar(&f.runner, "runner", "", "in process: the runner to load (default: sim, or the config's only runner)")
	fl.StringVar(&f.method, "method", "", "in process: the method to call (default: the runner's first)")
	fl.StringVar(&f.concurrency, "concurrency", "1,8,32,128", "closed-loop levels: callers, as a list or a range FROM:TO:xF / FROM:TO:+S")
	fl.StringVar(&f.rate, "rate", "", "open-loop levels in requests/s, as a list or a range (instead of --concurrency)")
	fl.StringVar(&f.arrivals, "arrivals", "poisson", "open-loop spacing: poisson or constant")
	fl.DurationVar(&f.warmup, "warmup", 2*time.Second, "unmeasured load before each level")
	fl.DurationVar(&f.window, "window", bench.DefaultWindow, "one measurement window; a level ends when the last 3 agree within 10%")
	fl.DurationVar(&f.maxTime, "max-time", bench.DefaultMaxTime, "most measuring per level when it does not stabilise")
	fl.DurationVar(&f.latencyLimit, "latency-limit", 0, "stop the sweep after a level whose p99 exceeds this (0: never)")
	fl.DurationVar(&f.timeout, "timeout", bench.DefaultTimeout, "per-request timeout, counted as a timeout error")
	fl.IntVar(&f.maxInFlight, "max-in-flight", bench.DefaultMaxInFlight, "open loop: most requests awaiting an answer")
	fl.StringVar(&f.input, "input", "", "a request body file (default: an example made from the method's signature)")
	fl.StringVar(&f.rows, "rows", "", "generate requests of N or MIN..MAX rows each (default: the example's 2)")
	fl.StringVar(&f.seqLen, "seq-len", "", "generate requests whose open non-batch dims (sequence length) are N or MIN..MAX, drawn per request (default: the example's 4)")
	fl.IntVar(&f.vocab, "vocab", 0, "generate integer inputs (token ids) in [0, N): the model's vocabulary size; masks get 0 and 1")
	fl.StringArrayVar(&f.compare, "compare", nil, "KEY=V1,V2,… to compare, in process (keys: "+strings.Join(bench.CompareKeys, ", ")+"); repeat for every combination")
	fl.StringVarP(&f.output, "output", "o", "table", "output: table, json or csv")
	fl.Uint64Var(&f.seed, "seed", 0, "seed for Poisson arrivals (0: random)")
	fl.BoolVar(&f.binary, "binary", false, "to a v2 --url: send tensors as raw bytes after a JSON header (Triton's binary data extension), outputs too")
	return cmd
}

func runBench(cmd *cobra.Command, f *benchFlags) error {
	write, err := benchWriter(f.output)
	if err != nil {
		return err
	}
	levels, err := benchLevels(cmd, f)
	if err != nil {
		return err
	}
	if f.url != "" && (f.config != "" || f.runner != "" || f.method != "") {
		return errors.New("--url targets a running server; --config, --runner and --method load a runner in process: give one or the other")
	}
	if f.binary && f.url == "" {
		return errors.New("--binary sends tensors as raw bytes over HTTP: give --url http://HOST:PORT/v2/models/MODEL/infer")
	}
	isGRPC := bench.IsGRPCURL(f.url)
	if f.binary && isGRPC {
		return errors.New("--binary is for HTTP: gRPC always sends tensors raw (raw_input_contents): leave out --binary")
	}
	var variants []bench.Variant
	if len(f.compare) > 0 {
		if f.url != "" {
			return bench.ErrCompareNeedsInProcess
		}
		if variants, err = bench.ParseCompare(f.compare); err != nil {
			return err
		}
	}
	ctx := cmd.Context()
	opts := bench.Options{
		Warmup: f.warmup, Window: f.window, MaxTime: f.maxTime, LatencyLimit: f.latencyLimit,
		Timeout: f.timeout, MaxInFlight: f.maxInFlight, Seed: f.seed,
	}
	if opts.Warmup < 0 || opts.Window < 0 || opts.MaxTime < 0 || opts.LatencyLimit < 0 || opts.Timeout < 0 {
		return errors.New("--warmup, --window, --max-time, --latency-limit and --timeout must not be negative")
	}
	var body []byte
	if f.input != "" {
		if body, err = os.ReadFile(f.input); err != nil {
			return fmt.Errorf("read --input: %w", err)
		}
	}
	gen, err := benchGen(f)
	if err != nil {
		return err
	}
	if gen != nil && body != nil {
		return errors.New("--input sends one body; --rows, --seq-len and --vocab generate bodies: give one or the other")
	}
	if f.binary && body != nil {
		return errors.New("--input sends its body as it is; --binary makes raw bodies from the model's signature: give one or the other")
	}

	var target bench.Target
	conns := f.maxInFlight // the most calls in flight at once
	if !levels[0].Open() {
		conns = slices.MaxFunc(levels, func(a, b bench.Level) int { return a.Concurrency - b.Concurrency }).Concurrency
	}
	switch {
	case isGRPC:
		g, err := bench.NewGRPC(ctx, bench.GRPCOptions{URL: f.url, Body: body, Gen: gen, Callers: conns})
		if err != nil {
			return deadPort(f.url, err)
		}
		defer g.Close()
		target = g
	case f.url != "":
		h, err := bench.NewHTTP(ctx, bench.HTTPOptions{URL: f.url, Body: body, Gen: gen, Conns: conns, Binary: f.binary})
		if err != nil {
			return deadPort(f.url, err)
		}
		defer h.Close()
		target = h
	default:
		p, closeEngine, err := benchInProcess(ctx, f, body, gen)
		if err != nil {
			return err
		}
		defer closeEngine()
		target = p
	}

	stderr := cmd.ErrOrStderr()
	if console.IsTerminal(stderr) {
		opts.Progress = benchProgress(stderr)
	}
	report := bench.Report{Target: target.String()}
	var runErr error
	if variants != nil {
		report.Sweeps, runErr = bench.Compare(ctx, target, variants, levels, opts)
	} else {
		var s bench.SweepResult
		s, runErr = bench.Sweep(ctx, target, levels, opts)
		report.Sweeps = []bench.SweepResult{s}
	}
	if opts.Progress != nil {
		fmt.Fprint(stderr, "\r\x1b[K")
	}
	// Whatever was measured before an interrupt or a failure is shown.
	if measured(report) {
		if err := write(cmd.OutOrStdout(), report); err != nil {
			return err
		}
	}
	if runErr != nil && ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", runErr)
	}
	if runErr != nil && f.url != "" {
		return deadPort(f.url, runErr)
	}
	return runErr
}

// benchGen reads the generation flags; nil when none is given.
func benchGen(f *benchFlags) (*bench.GenOptions, error) {
	if f.rows == "" && f.seqLen == "" && f.vocab == 0 {
		return nil, nil
	}
	g := &bench.GenOptions{Vocab: f.vocab, Seed: f.seed}
	if f.vocab < 0 {
		return nil, fmt.Errorf("--vocab %d: want the vocabulary size, 1 or more", f.vocab)
	}
	var err error
	if f.rows != "" {
		if g.Rows, err = bench.ParseSpan(f.rows); err != nil {
			return nil, fmt.Errorf("--rows %w", err)
		}
	}
	if f.seqLen != "" {
		if g.SeqLen, err = bench.ParseSpan(f.seqLen); err != nil {
			return nil, fmt.Errorf("--seq-len %w", err)
		}
	}
	return g, nil
}

func measured(r bench.Report) bool {
	for _, s := range r.Sweeps {
		if len(s.Levels) > 0 {
			return true
		}
	}
	return false
}

func benchWriter(output string) (func(io.Writer, bench.Report) error, error) {
	switch output {
	case "table":
		return bench.WriteTable, nil
	case "json":
		return bench.WriteJSON, nil
	case "csv":
		return bench.WriteCSV, nil
	}
	return nil, fmt.Errorf("-o %q: want table, json or csv", output)
}

func benchLevels(cmd *cobra.Command, f *benchFlags) ([]bench.Level, error) {
	if f.rate == "" {
		levels, err := bench.ConcurrencyLevels(f.concurrency)
		if err != nil {
			return nil, fmt.Errorf("--concurrency: %w", err)
		}
		return levels, nil
	}
	if cmd.Flags().Changed("concurrency") {
		return nil, errors.New("--concurrency (closed loop) and --rate (open loop) are exclusive: give one")
	}
	var poisson bool
	switch f.arrivals {
	case "poisson":
		poisson = true
	case "constant":
	default:
		return nil, fmt.Errorf("--arrivals %q: want poisson or constant", f.arrivals)
	}
	levels, err := bench.RateLevels(f.rate, poisson)
	if err != nil {
		return nil, fmt.Errorf("--rate: %w", err)
	}
	return levels, nil
}

// benchInProcess starts the one runner under test from the config, in an
// engine of its own, and returns the target with a function that drains it.
func benchInProcess(ctx context.Context, f *benchFlags, body []byte, gen *bench.GenOptions) (*bench.InProcess, func(), error) {
	remotes := remote.NewPool(remote.Options{})
	reg, err := registry(remotes)
	if err != nil {
		remotes.Close()
		return nil, nil, err
	}
	// Only warnings: the table is the output.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	eng, err := engine.New(engine.Options{Registry: reg, Logger: logger})
	if err != nil {
		remotes.Close()
		return nil, nil, err
	}
	closeEngine := func() {
		ctx, cancel := context.WithTimeout(context.Background(), engine.DefaultDrainTimeout)
		defer cancel()
		eng.Close(ctx)
		remotes.Close()
	}
	fail := func(err error) (*bench.InProcess, func(), error) {
		closeEngine()
		return nil, nil, err
	}
	cfg, err := loadConfig(ctx, f.config, eng)
	if err != nil {
		return fail(err)
	}
	runners := cfg.Plan.Config().Runners
	names := make([]string, len(runners))
	for i, rc := range runners {
		names[i] = rc.Name
	}
	name := f.runner
	switch {
	case name != "":
	case f.config == "":
		name = "sim"
	case len(runners) == 1:
		name = runners[0].Name
	default:
		return fail(fmt.Errorf("%s has %d runners: choose one with --runner (%s)", cfg.File, len(runners), strings.Join(names, ", ")))
	}
	i := slices.IndexFunc(runners, func(rc engine.RunnerConfig) bool { return rc.Name == name })
	if i < 0 {
		return fail(fmt.Errorf("%s has no runner %q (runners: %s)", cfg.File, name, strings.Join(names, ", ")))
	}
	r, err := eng.StartRunner(ctx, runners[i])
	if err != nil {
		return fail(err)
	}
	readyCtx, cancel := context.WithTimeout(ctx, engine.DefaultReadyTimeout)
	defer cancel()
	if err := r.WaitReady(readyCtx); err != nil {
		return fail(err)
	}
	methods := r.Methods()
	method := f.method
	if method == "" {
		method = methods[0].Name
	}
	spec, ok := r.Method(method)
	if !ok {
		ms := make([]string, len(methods))
		for i, m := range methods {
			ms[i] = m.Name
		}
		return fail(fmt.Errorf("runner %q has no method %q (methods: %s)", name, method, strings.Join(ms, ", ")))
	}
	var pool [][]tensor.Value // none: the method's example
	switch {
	case body != nil:
		// Read as the workbench reads a method's test input, and as the
		// HTTP front end reads an API's body: an object keyed by input
		// name for a method of several.
		kind := codec.BodyKind(spec.Inputs)
		in, err := codec.DecodeInputs(kind, spec.Inputs, body)
		if err != nil {
			return fail(fmt.Errorf("--input for %s.%s (%s, as %s): %w", name, method, spec.Inputs, kind, err))
		}
		pool = [][]tensor.Value{in}
	case gen != nil:
		if pool, err = bench.Generate(spec, *gen, bench.PoolSize); err != nil {
			return fail(fmt.Errorf("%s.%s: %w", name, method, err))
		}
	}
	p, err := bench.NewInProcess(eng, name, method, pool...)
	if err != nil {
		return fail(err)
	}
	return p, closeEngine, nil
}

// benchProgress rewrites one status line on a terminal.
func benchProgress(w io.Writer) func(bench.Progress) {
	return func(p bench.Progress) {
		label := ""
		if p.Sweep != "" {
			label = p.Sweep + " "
		}
		level := "concurrency " + p.Level.String()
		if p.Level.Open() {
			level = "rate " + p.Level.String()
		}
		line := fmt.Sprintf("%slevel %d/%d (%s): %s", label, p.Index, p.Count, level, p.Phase)
		if p.Phase == "measure" {
			line += fmt.Sprintf(", window %d, %.0f req/s", p.Window, p.Throughput)
		}
		fmt.Fprint(w, "\r\x1b[K"+line)
	}
}

// deadPort says that nothing listens at url when err is a refused
// connection: a body given with --input would not help, starting the
// server would.
func deadPort(url string, err error) error {
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return err
	}
	host := url
	u, perr := neturl.Parse(url)
	if perr == nil && u.Host != "" {
		host = u.Host
	}
	if bench.IsGRPCURL(url) {
		return fmt.Errorf("nothing is listening at %s (connection refused): start `./bin/benchtop serve` there (its gRPC port is the HTTP port + 1, or --grpc-port), or check --url", host)
	}
	return fmt.Errorf("nothing is listening at %s (connection refused): start `./bin/benchtop serve` or the workbench there, or check --url", host)
}
