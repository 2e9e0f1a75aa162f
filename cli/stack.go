package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/remote"
	"github.com/benchtop/benchtop/gpu"
	"github.com/benchtop/benchtop/gpu/placement"
	"github.com/benchtop/benchtop/samples"
	"github.com/benchtop/benchtop/server"
	"github.com/benchtop/benchtop/watcher"
)

// engineFlags are shared by the workbench and serve: the same engine, with
// or without a screen.
type engineFlags struct {
	config       string
	host         string
	port         int
	grpcPort     int
	maxBodyMB    int
	drainTimeout time.Duration
	accessLog    bool
	logFormat    string
	// runners, if not nil, serves only these runners of the config and
	// none of its APIs: a runner server (serve --runners).
	runners []string

	version string // not a flag: the binary's, for /v2 and the log
	// sampleModels imports the sample models into the store before the
	// config loads, as the embedded config needs (and the workbench's copy
	// of it); not a flag.
	sampleModels bool
}

func (f *engineFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVarP(&f.config, "config", "c", "", "config file, watched and live-reloaded (default: the embedded sample config)")
	fl.StringVar(&f.host, "host", "", "address to bind (default: server.host from the config, 127.0.0.1)")
	f.port = -1
	fl.Var((*portFlag)(&f.port), "port", "port to bind, 0 for any free port (default: server.port from the config, 3000)")
	f.grpcPort = -2
	fl.Var((*grpcPortFlag)(&f.grpcPort), "grpc-port", "port of the KServe v2 gRPC service, 0 for any free port, -1 to turn it off (default: server.grpc_port from the config, else the HTTP port + 1)")
	fl.IntVar(&f.maxBodyMB, "max-body-mb", 16, "largest request body (HTTP) or message (gRPC) accepted, in MiB (413 or ResourceExhausted beyond)")
	fl.DurationVar(&f.drainTimeout, "drain-timeout", 30*time.Second, "on shutdown, how long in-flight requests may finish")
	fl.BoolVar(&f.accessLog, "access-log", false, "log every request (errors are always logged)")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
}

// portFlag is --port: -1 (not given) reads as nothing, so that --help shows
// the usage's own default and not "(default -1)" after it.
type portFlag int

func (p *portFlag) String() string {
	if *p < 0 {
		return ""
	}
	return strconv.Itoa(int(*p))
}

// grpcPortFlag is --grpc-port: as portFlag, with -1 for "off" and -2 for
// not given.
type grpcPortFlag int

func (p *grpcPortFlag) String() string {
	if *p < -1 {
		return ""
	}
	return strconv.Itoa(int(*p))
}

func (p *grpcPortFlag) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil || v < -1 || v > 65535 {
		return fmt.Errorf("%q: want a port, 0 (any free port) to 65535, or -1 to turn gRPC off", s)
	}
	*p = grpcPortFlag(v)
	return nil
}

func (p *grpcPortFlag) Type() string { return "int" }

func (p *portFlag) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v > 65535 {
		return fmt.Errorf("%q: want a port, 0 (any free port) to 65535", s)
	}
	*p = portFlag(v)
	return nil
}

func (p *portFlag) Type() string { return "int" }

// stack is a running engine with its GPU monitor, config reloader and HTTP
// and gRPC front ends.
type stack struct {
	gpus     *gpu.Monitor
	eng      *engine.Engine
	reloader *watcher.Reloader
	srv      *server.Server
	ln       net.Listener
	grpcLn   net.Listener // nil when gRPC is off
	remotes  *remote.Pool // the clients of remote: runners
}

// newMetricsRegistry is the one Prometheus registry of the process: the GPU
// monitor, the engine, the reloader and the server register on it, /metrics
// gathers it.
func newMetricsRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("register go collector: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("register process collector: %w", err)
	}
	return reg, nil
}

// runStack builds the stack in its natural order — metrics registry, GPU
// monitor, engine, config reloader, HTTP server — and runs it in one
// errgroup: the monitor from the start (runners are placed on the GPUs it
// finds), then, once the config is applied and the port bound, the server,
// the reloader and front, which is handed the running stack. When ctx ends,
// front returns or any of them fails, all stop; then the runners drain (up
// to --drain-timeout). The first failure is the error.
func runStack(ctx context.Context, f *engineFlags, logger *slog.Logger, front func(context.Context, *stack) error) (err error) {
	prom, err := newMetricsRegistry()
	if err != nil {
		return err
	}
	pool := remote.NewPool(remote.Options{Logger: logger})
	defer pool.Close() // after the engine has closed its remote runners
	reg, err := registry(pool)
	if err != nil {
		return err
	}
	// Without a driver the monitor says so once and reports no GPU.
	mon, err := gpu.New(gpu.Options{Registerer: prom, Logger: logger})
	if err != nil {
		return err
	}
	eng, err := engine.New(engine.Options{Registry: reg, Logger: logger, Registerer: prom,
		GPUs: func() placement.Visible { return mon.Snapshot().Visible(os.LookupEnv) }})
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), f.drainTimeout)
		defer cancel()
		if cerr := eng.Close(ctx); err == nil {
			err = cerr
		}
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return mon.Run(ctx) })
	st, err := startStack(ctx, f, logger, prom, mon, eng)
	if st != nil {
		st.remotes = pool
	}
	if err != nil {
		cancel()
		g.Wait()
		return err
	}
	g.Go(func() error { return st.srv.Serve(ctx, st.ln) })
	if st.grpcLn != nil {
		g.Go(func() error { return st.srv.ServeGRPC(ctx, st.grpcLn) })
	}
	g.Go(func() error { return st.reloader.Run(ctx) })
	g.Go(func() error {
		defer cancel()
		return front(ctx, st)
	})
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// startStack waits for the first GPU reading, loads the config, starts its
// runners, binds the port and builds the server.
func startStack(ctx context.Context, f *engineFlags, logger *slog.Logger, prom *prometheus.Registry, mon *gpu.Monitor, eng *engine.Engine) (*stack, error) {
	st := &stack{gpus: mon, eng: eng}
	if _, err := mon.Ready(ctx); err != nil {
		return nil, fmt.Errorf("gpu monitor: %w", err)
	}
	getenv := func(k string) string {
		// Flags beat the environment, which beats the file.
		switch {
		case k == "BENCHTOP_HOST" && f.host != "":
			return f.host
		case k == "BENCHTOP_PORT" && f.port >= 0:
			return strconv.Itoa(f.port)
		case k == "BENCHTOP_GRPC_PORT" && f.grpcPort >= -1:
			return strconv.Itoa(f.grpcPort)
		}
		return os.Getenv(k)
	}
	models, err := openModels(ctx, f.config == "" || f.sampleModels)
	if err != nil {
		return nil, err
	}
	st.reloader, err = watcher.NewReloader(eng, f.config, samples.Config, samples.ConfigName,
		watcher.Options{Getenv: getenv, Models: models, Registerer: prom, Runners: f.runners})
	if err != nil {
		return nil, err
	}
	if err := st.reloader.Reload(ctx); err != nil {
		return nil, fmt.Errorf("load config:\n%w", err)
	}
	// The server section is read once, here: changing it takes a restart.
	cfg := st.reloader.Current()
	addr := net.JoinHostPort(cfg.Server.Host, strconv.Itoa(cfg.Server.Port))
	st.ln, err = net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (another benchtop? try --port 0)", addr, err)
	}
	if gp := cfg.Server.GRPCListenPort(); gp >= 0 {
		gaddr := net.JoinHostPort(cfg.Server.Host, strconv.Itoa(gp))
		if st.grpcLn, err = net.Listen("tcp", gaddr); err != nil {
			st.ln.Close()
			return nil, fmt.Errorf("listen for grpc on %s: %w (another benchtop? try --grpc-port 0, or -1 to turn gRPC off)", gaddr, err)
		}
	}
	st.srv, err = server.New(eng, server.Options{
		MaxBodyBytes: int64(f.maxBodyMB) << 20, DrainTimeout: f.drainTimeout,
		AccessLog: f.accessLog, Logger: logger, Version: f.version,
		BodyTimeout: cfg.Server.BodyTimeout, MaxInflightBytes: int64(cfg.Server.MaxInflightMB) << 20,
		// What was bound, not what was asked: a name that resolves to
		// 127.0.0.1 is loopback too.
		BindHost:     boundHost(st.ln),
		AllowedHosts: cfg.Server.AllowedHosts, AllowedOrigins: cfg.Server.AllowedOrigins,
		Registerer: prom, Gatherer: prom, GRPCAddr: st.GRPCAddr(),
	})
	if err != nil {
		st.ln.Close()
		if st.grpcLn != nil {
			st.grpcLn.Close()
		}
		return nil, err
	}
	return st, nil
}

// boundHost is the IP a listener is bound to.
func boundHost(ln net.Listener) string {
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	return host
}

// URL is where the stack serves HTTP.
func (st *stack) URL() string { return "http://" + st.ln.Addr().String() }

// GRPCAddr is where the stack serves gRPC (host:port), "" when it does not.
func (st *stack) GRPCAddr() string {
	if st.grpcLn == nil {
		return ""
	}
	return st.grpcLn.Addr().String()
}
