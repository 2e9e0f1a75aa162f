package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/benchtop/benchtop/engine"
)

// Options configure the front end; zero values are sensible.
type Options struct {
	// MaxBodyBytes caps a request body (413 beyond); 0 means 16 MiB.
	MaxBodyBytes int64
	// DrainTimeout bounds how long shutdown waits for in-flight requests.
	DrainTimeout time.Duration
	// AccessLog logs every request at info level (errors are always logged).
	AccessLog bool
	Logger    *slog.Logger
	Version   string

	// BodyTimeout bounds how long one request body may take to arrive
	// (408 beyond); 0 means DefaultBodyTimeout.
	BodyTimeout time.Duration
	// MaxInflightBytes bounds the request bodies held at once, by their
	// Content-Length or, without one, by the bytes read (503 beyond, at
	// once); 0 means DefaultMaxInflightBytes.
	MaxInflightBytes int64
	// MaxConnections caps the connections open at once; 0 derives it from
	// the open-file limit, leaving a reserve for everything else.
	MaxConnections int
	// BindHost is the address the listener is bound to. Bound to loopback
	// (or left empty: the default is 127.0.0.1), requests must name this
	// machine in Host (localhost, a loopback IP) or one of AllowedHosts;
	// bound elsewhere, Host is checked only if AllowedHosts is set.
	BindHost     string
	AllowedHosts []string
	// AllowedOrigins are web origins (scheme://host[:port]) whose pages may
	// POST here; other cross-origin POSTs are refused (403).
	AllowedOrigins []string
	// OverloadLogInterval is how often, at most, one route's 503s are
	// summarised in the log; 0 means DefaultOverloadLogInterval.
	OverloadLogInterval time.Duration

	// Registerer gets the front end's own metrics (benchtop_api_*,
	// benchtop_http_*); nil keeps them on a registry of the server's own.
	// Gatherer is what GET /metrics serves, normally the registry that the
	// engine, the reloader and the GPU monitor register on too; nil serves
	// that own registry when Registerer is nil as well, else nothing.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer

	// GRPCMaxSendBytes bounds one gRPC response message; 0 means
	// DefaultGRPCMaxSendBytes. A gRPC request is bounded by MaxBodyBytes.
	GRPCMaxSendBytes int
	// GRPCAddr is where ServeGRPC listens (host:port), for GET / to show;
	// "" when gRPC is off.
	GRPCAddr string
}

// DefaultMaxBodyBytes is large enough for a batch of images as ndarrays.
const DefaultMaxBodyBytes = 16 << 20

// Server serves one engine over HTTP.
type Server struct {
	eng       *engine.Engine
	opts      Options
	handler   http.Handler
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	refused   *prometheus.CounterVec
	guard     hostGuard
	inflight  *inflight
	overloads *overloadLog
	conns     atomic.Int64 // open, counted by the listener Serve wraps
	connCap   atomic.Int64 // its cap, once Serve has set it
}

// New builds the handler and registers the API metrics on opts.Registerer.
func New(eng *engine.Engine, opts Options) (*Server, error) {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = DefaultBodyTimeout
	}
	if opts.MaxInflightBytes <= 0 {
		opts.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if opts.GRPCMaxSendBytes <= 0 {
		opts.GRPCMaxSendBytes = DefaultGRPCMaxSendBytes
	}
	if opts.OverloadLogInterval <= 0 {
		opts.OverloadLogInterval = DefaultOverloadLogInterval
	}
	if opts.Registerer == nil {
		reg := prometheus.NewRegistry()
		opts.Registerer = reg
		if opts.Gatherer == nil {
			opts.Gatherer = reg
		}
	}
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.Gatherers{}
	}
	s := &Server{
		eng:       eng,
		opts:      opts,
		guard:     newHostGuard(opts.BindHost, opts.AllowedHosts, opts.AllowedOrigins),
		inflight:  &inflight{limit: opts.MaxInflightBytes},
		overloads: newOverloadLog(opts.Logger, opts.OverloadLogInterval, time.Now),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "benchtop_api_requests_total",
			Help: "Requests by API or route (grpc.<Method> for gRPC calls) and status: an HTTP status code, or a gRPC code name.",
		}, []string{"api", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "benchtop_api_request_duration_seconds",
			Help:    "Request duration by API or route (grpc.<Method> for gRPC calls), body transfer included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 20),
		}, []string{"api"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "benchtop_http_refused_total",
			Help: "Requests the front end refused before they reached a runner, by reason: host (403, Host not allowed), origin (403, cross-origin POST), inflight_bytes (503 or 413, server.max_inflight_mb), body_timeout (408, server.body_timeout).",
		}, []string{"reason"}),
	}
	for _, reason := range []string{"host", "origin", "inflight_bytes", "body_timeout"} {
		s.refused.WithLabelValues(reason)
	}
	gauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "benchtop_http_inflight_body_bytes",
			Help: "Bytes of request bodies held by requests in flight (declared Content-Length, or bytes read).",
		}, func() float64 { return float64(s.inflight.used.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "benchtop_http_inflight_body_limit_bytes",
			Help: "server.max_inflight_mb, in bytes: beyond it requests are refused (503).",
		}, func() float64 { return float64(s.inflight.limit) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "benchtop_http_connections",
			Help: "HTTP connections open.",
		}, func() float64 { return float64(s.conns.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "benchtop_http_connections_limit",
			Help: "Most HTTP connections open at once (below the open-file limit); beyond it new ones wait in the kernel's backlog.",
		}, func() float64 { return float64(s.connCap.Load()) }),
	}
	for _, c := range append([]prometheus.Collector{s.requests, s.duration, s.refused}, gauges...) {
		if err := opts.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("register api metrics: %w", err)
		}
	}
	mux := http.NewServeMux()
	route := func(pattern, label string, h http.HandlerFunc) {
		mux.Handle(pattern, s.instrument(func(*http.Request) string { return label }, h))
	}
	route("GET /{$}", "index", s.handleIndex)
	route("GET /livez", "livez", s.handleLive)
	route("GET /readyz", "readyz", s.handleReady)
	route("GET /docs.json", "docs", s.handleOpenAPI)
	mux.Handle("GET /metrics", s.instrument(func(*http.Request) string { return "metrics" },
		promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{ErrorLog: slogPrinter{opts.Logger}})))
	route("GET /v2", "v2", s.handleV2Server)
	route("GET /v2/health/live", "v2.live", s.handleLive)
	route("GET /v2/health/ready", "v2.ready", s.handleReady)
	mux.Handle("/v2/models/{model}", s.instrument(v2Label("metadata"), http.HandlerFunc(s.handleV2Metadata)))
	mux.Handle("/v2/models/{model}/ready", s.instrument(v2Label("ready"), http.HandlerFunc(s.handleV2ModelReady)))
	mux.Handle("/v2/models/{model}/infer", s.instrument(v2Label("infer"), http.HandlerFunc(s.handleV2Infer)))
	mux.Handle("/v2/models/{model}/stats", s.instrument(v2Label("stats"), http.HandlerFunc(s.handleV2Stats)))
	mux.Handle("/v2/", s.instrument(func(*http.Request) string { return "unknown" }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusNotFound, "no route %s %s: the v2 routes are /v2, /v2/health/{live,ready}, /v2/models/{model}[/ready|/infer|/stats]", r.Method, r.URL.Path))
	})))
	mux.Handle("/{api}", s.instrument(s.apiLabel, http.HandlerFunc(s.handleAPI)))
	mux.Handle("/", s.instrument(func(*http.Request) string { return "unknown" }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusNotFound, "no route %s %s: GET / lists the APIs", r.Method, r.URL.Path))
	})))
	s.handler = s.withRequestID(mux)
	return s, nil
}

// Handler is the whole front end, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers on ln until ctx ends, then stops accepting, lets in-flight
// requests finish (up to DrainTimeout) and returns nil. It caps the
// connections open at once (MaxConnections) and summarises 503s in the log.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	maxConns := s.opts.MaxConnections
	if maxConns <= 0 {
		maxConns = s.connectionsFromFileLimit()
	}
	s.connCap.Store(int64(maxConns))
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelWarn),
	}
	logCtx, stopLog := context.WithCancel(context.Background())
	logDone := make(chan struct{})
	go func() { defer close(logDone); s.overloads.run(logCtx) }()
	defer func() { stopLog(); <-logDone }()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(newLimitListener(ln, maxConns, &s.conns)) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.opts.DrainTimeout)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serr)
	}
	if err != nil {
		return fmt.Errorf("drain in-flight requests: %w", err)
	}
	return nil
}

// connectionsFromFileLimit caps connections below RLIMIT_NOFILE, which Go
// has already raised to the hard limit, and says so in the log.
func (s *Server) connectionsFromFileLimit() int {
	soft, hard, err := fileLimit()
	if err != nil {
		n := connectionCap(4096)
		s.opts.Logger.Warn("open-file limit unknown: capping connections at a guess", "max_connections", n, "err", err)
		return n
	}
	n := connectionCap(soft)
	s.opts.Logger.Info("open-file limit", "soft", soft, "hard", hard, "max_connections", n)
	return n
}

type ctxKey int

const requestIDKey ctxKey = 0

// RequestID is the id of the request being served (X-Request-ID).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// withRequestID takes the caller's X-Request-ID or makes one, and echoes it,
// so that a client's logs and ours name the same request.
func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if id == "" || len(id) > 128 {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-ID", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	err    error // what writeError answered, for the log
}

func (w *statusWriter) noteError(err error) { w.err = err }

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument admits (see admit), records metrics and logs for one route.
// The label keeps the metric's cardinality bounded: configured names only,
// never raw paths. A 503 is expected under overload: it is counted and
// summarised (overloadLog), not logged one by one; other 5xx are errors.
func (s *Server) instrument(label func(*http.Request) string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		s.serveAdmitted(sw, r, h)
		if r.Context().Err() != nil && sw.status == 0 {
			sw.status = statusClientClosed
		}
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		api := label(r)
		d := time.Since(start)
		s.requests.WithLabelValues(api, fmt.Sprint(sw.status)).Inc()
		s.duration.WithLabelValues(api).Observe(d.Seconds())
		level := slog.LevelInfo
		switch {
		case sw.status == http.StatusServiceUnavailable:
			if sw.err != nil { // not /readyz saying "not yet"
				s.overloads.add(api, sw.err)
			}
			if !s.opts.AccessLog {
				return
			}
		case sw.status >= 500:
			level = slog.LevelError
		case !s.opts.AccessLog:
			return
		}
		attrs := []any{"request_id", RequestID(r.Context()),
			"method", r.Method, "path", r.URL.Path, "status", sw.status, "duration", d, "api", api}
		if sw.err != nil {
			attrs = append(attrs, "error", sw.err.Error())
		}
		s.opts.Logger.Log(r.Context(), level, "request", attrs...)
	})
}

// serveAdmitted runs h if admit lets the request in, and answers admit's
// refusal otherwise.
func (s *Server) serveAdmitted(w *statusWriter, r *http.Request, h http.Handler) {
	release, err := s.admit(w, r)
	defer release()
	if err != nil {
		writeError(w, err)
		return
	}
	h.ServeHTTP(w, r)
}

func v2Label(route string) func(*http.Request) string {
	return func(r *http.Request) string { return "v2." + route }
}

// apiLabel names a service API only if it exists, so that scanners probing
// random paths cannot grow the metric without bound.
func (s *Server) apiLabel(r *http.Request) string {
	if _, ok := s.eng.API(r.PathValue("api")); ok {
		return r.PathValue("api")
	}
	return "unknown"
}

func (s *Server) handleLive(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"live": true})
}

// handleReady is 200 only once every runner has a worker ready, and says
// which are not.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ready, runners := s.readiness()
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ready": ready, "runners": runners})
}

// readiness is whether every runner has a worker ready, and each runner's
// state in words: what /readyz, gRPC's ServerReady and its health service
// all answer.
func (s *Server) readiness() (bool, map[string]string) {
	runners := map[string]string{}
	ready := true
	for _, rn := range s.eng.Runners() {
		st := rn.Stats(engine.StatsOptions{})
		switch {
		case st.Ready > 0 && st.CrashLoop != "":
			runners[st.Name] = "ready, degraded: " + st.CrashLoop
		case st.Ready > 0:
			runners[st.Name] = "ready"
		case st.CrashLoop != "":
			runners[st.Name] = "not ready: crash loop: " + st.CrashLoop
			ready = false
		case st.StartError != "":
			runners[st.Name] = "not ready: " + st.StartError
			ready = false
		default:
			runners[st.Name] = "starting"
			ready = false
		}
	}
	return ready, runners
}

// readBody reads at most MaxBodyBytes and checks the content type.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, want ...string) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := strings.Cut(ct, ";")
		mt = strings.TrimSpace(strings.ToLower(mt))
		ok := false
		for _, w := range want {
			ok = ok || mt == w || (w == "application/json" && strings.HasSuffix(mt, "+json"))
		}
		if !ok {
			return nil, errorf(http.StatusUnsupportedMediaType, "content type %q: send %s (curl: -H 'Content-Type: %s')", mt, strings.Join(want, " or "), want[0])
		}
	}
	if r.ContentLength > s.opts.MaxBodyBytes {
		// Refused unread: no point receiving what will not be used.
		return nil, &http.MaxBytesError{Limit: s.opts.MaxBodyBytes}
	}
	body, err := readAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes), r.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		var he *httpError
		if errors.As(err, &mbe) || errors.As(err, &he) {
			return nil, err
		}
		return nil, errorf(http.StatusBadRequest, "read request body: %v", err)
	}
	return body, nil
}

// readAll is io.ReadAll into a buffer of the declared length, so that a
// large body (a raw tensor) is not copied through a series of doublings.
// admit has already bounded that length by MaxBodyBytes and counted it
// against the in-flight bytes.
func readAll(r io.Reader, declared int64) ([]byte, error) {
	if declared <= 0 {
		return io.ReadAll(r)
	}
	// One byte more, so that a body longer than declared reads on to the
	// limit's error instead of being cut short unseen.
	buf := make([]byte, 0, declared+1)
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow as io.ReadAll would
		}
	}
}

type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.l.Error(fmt.Sprint(v...)) }
