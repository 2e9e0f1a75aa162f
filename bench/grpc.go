package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/engine/v2pb"
	"github.com/benchtop/benchtop/server/codec"
)

// GRPCOptions describe a target reached over the KServe v2 gRPC service.
type GRPCOptions struct {
	// URL is grpc://HOST:PORT/MODEL, MODEL a runner ("sim") or one of its
	// methods ("sentiment.scores").
	URL string
	// Body, when set, is read against the method's signature as the
	// in-process target reads --input (an object keyed by input name for a
	// method of several) and sent with every request.
	Body []byte
	// Gen, when set and Body is empty, makes a pool of different requests
	// (Generate) sent in turn; nil sends the method's example every time.
	Gen *GenOptions
	// Callers is the most calls in flight at once (the largest
	// concurrency, or the open loop's in-flight cap); the connections are
	// sized from it (GRPCConns).
	Callers int
	// Conns, when positive, overrides GRPCConns.
	Conns int
}

// GRPC is a target reached over gRPC: ModelInfer with every tensor in
// raw_input_contents, the layout Triton's clients use, so that neither side
// spends its time on per-element encoding. Its batching figures come from
// the service's own ModelStatistics, so it needs no HTTP port.
type GRPC struct {
	url, model     string
	runner, method string
	conns          []*grpc.ClientConn
	clients        []v2pb.GRPCInferenceServiceClient
	reqs           []*v2pb.ModelInferRequest // sent in turn
	next           atomic.Uint64
	// lastDial is the last failed dial's error, nil after one succeeds:
	// what lies behind an Unavailable that no server sent.
	lastDial atomic.Pointer[error]
}

// Callers share connections: HTTP/2 multiplexes their calls as streams.
// One connection for every caller would measure connection handling rather
// than serving, and is not how gRPC clients run; a single connection for
// hundreds of callers would measure its one reader and one writer
// goroutine on each side, which serialise every frame. A connection per
// callersPerConn callers, up to maxGRPCConns, keeps each connection's
// framing off the critical path while sharing them as real clients do.
const (
	callersPerConn = 32
	maxGRPCConns   = 8
)

// GRPCConns is how many connections a gRPC target opens for callers
// concurrent calls.
func GRPCConns(callers int) int {
	return min(max((callers+callersPerConn-1)/callersPerConn, 1), maxGRPCConns)
}

// IsGRPCURL reports whether u names a gRPC target (grpc://…).
func IsGRPCURL(u string) bool {
	scheme, _, ok := strings.Cut(u, "://")
	return ok && strings.EqualFold(scheme, "grpc")
}

// ParseGRPCURL reads grpc://HOST:PORT/MODEL.
func ParseGRPCURL(raw string) (addr, model string, err error) {
	const want = "want grpc://HOST:PORT/MODEL, MODEL a runner or runner.method (grpc://127.0.0.1:3001/sim)"
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", "", fmt.Errorf("url %q: %s", raw, want)
	case u.Scheme != "grpc":
		return "", "", fmt.Errorf("url %q: scheme %q: %s", raw, u.Scheme, want)
	case u.Host == "" || u.Port() == "":
		return "", "", fmt.Errorf("url %q: no port: %s; `benchtop serve` listens for gRPC on its HTTP port + 1 unless --grpc-port says otherwise", raw, want)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return "", "", fmt.Errorf("url %q: no user, query or fragment: %s", raw, want)
	}
	if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
		return "", "", fmt.Errorf("url %q: port %q: want 1 to 65535", raw, u.Port())
	}
	model = strings.TrimPrefix(u.Path, "/")
	switch {
	case model == "":
		return "", "", fmt.Errorf("url %q: no model: %s", raw, want)
	case strings.Contains(model, "/"):
		return "", "", fmt.Errorf("url %q: path %q: the path is the model name alone, not an HTTP route: %s", raw, u.Path, want)
	}
	return u.Host, model, nil
}

// NewGRPC connects to the service, reads the model's signature from
// ModelMetadata, and makes the requests to send. Close releases its
// connections.
func NewGRPC(ctx context.Context, opts GRPCOptions) (*GRPC, error) {
	addr, model, err := ParseGRPCURL(opts.URL)
	if err != nil {
		return nil, err
	}
	if len(opts.Body) > 0 && opts.Gen != nil {
		return nil, errors.New("a body (--input) and generated requests (--rows, --seq-len, --vocab) are exclusive: give one or the other")
	}
	g := &GRPC{url: opts.URL, model: model}
	n := opts.Conns
	if n <= 0 {
		n = GRPCConns(opts.Callers)
	}
	dialer := &net.Dialer{}
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			g.lastDial.Store(&err)
		} else {
			g.lastDial.Store(nil)
		}
		return c, err
	}
	for range n {
		// passthrough: the dialer resolves the host as net.Dial does, and
		// every connection goes to the one server named.
		conn, err := grpc.NewClient("passthrough:///"+addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(dial),
			// Fixed windows, as the server's: no bandwidth-probing pings.
			grpc.WithInitialWindowSize(4<<20), grpc.WithInitialConnWindowSize(4<<20),
			// The server bounds requests (server.max_body_bytes); answers
			// may be as large as it sends.
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)))
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("url %q: %w", opts.URL, err)
		}
		g.conns = append(g.conns, conn)
		g.clients = append(g.clients, v2pb.NewGRPCInferenceServiceClient(conn))
	}
	if err := g.discover(ctx, opts); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

func (g *GRPC) discover(ctx context.Context, opts GRPCOptions) error {
	mctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	md, err := g.clients[0].ModelMetadata(mctx, &v2pb.ModelMetadataRequest{Name: g.model})
	if err != nil {
		return fmt.Errorf("read model metadata (ModelMetadata %q): %w", g.model, g.callError(mctx, err))
	}
	spec, err := metadataFromGRPC(md).spec()
	if err != nil {
		return fmt.Errorf("model %q: %w", g.model, err)
	}
	g.method = spec.Name
	g.runner = g.model
	if r, ok := strings.CutSuffix(g.model, "."+g.method); ok && g.method != "" {
		g.runner = r
	}
	var pool [][]tensor.Value
	if len(opts.Body) > 0 {
		kind := codec.BodyKind(spec.Inputs)
		in, err := codec.DecodeInputs(kind, spec.Inputs, opts.Body)
		if err != nil {
			return fmt.Errorf("--input for model %q (%s, as %s): %w", g.model, spec.Inputs, kind, err)
		}
		pool = [][]tensor.Value{in}
	} else if pool, err = inputs(spec, opts.Gen); err != nil {
		return fmt.Errorf("model %q: %w", g.model, err)
	}
	for _, in := range pool {
		req, err := v2pb.RawRequest(g.model, spec.Inputs, in)
		if err != nil {
			return fmt.Errorf("model %q: %w", g.model, err)
		}
		g.reqs = append(g.reqs, req)
	}
	return nil
}

// metadataFromGRPC reads ModelMetadata as the HTTP target reads
// GET /v2/models/MODEL: the same fields, the same parameters.
func metadataFromGRPC(md *v2pb.ModelMetadataResponse) v2Metadata {
	var m v2Metadata
	p := md.GetParameters()
	m.Parameters.Method = p["method"].GetStringParam()
	m.Parameters.Batchable = p["batchable"].GetBoolParam()
	m.Parameters.BatchDim = int(p["batch_dim"].GetInt64Param())
	for _, in := range md.GetInputs() {
		s := v2Slot{Name: in.GetName(), Datatype: in.GetDatatype()}
		for _, d := range in.GetShape() {
			s.Shape = append(s.Shape, int(d))
		}
		ip := in.GetParameters()
		s.Parameters.Optional = ip["optional"].GetBoolParam()
		s.Parameters.Unbatched = ip["unbatched"].GetBoolParam()
		s.Parameters.AnyShape = ip["any_shape"].GetBoolParam()
		s.Parameters.Content = ip["content"].GetStringParam()
		m.Inputs = append(m.Inputs, s)
	}
	return m
}

// Requests are what calls send, in turn.
func (g *GRPC) Requests() []*v2pb.ModelInferRequest { return g.reqs }

// RunnerMethod is the runner method behind the model.
func (g *GRPC) RunnerMethod() (runner, method string) { return g.runner, g.method }

func (g *GRPC) String() string {
	conns := "1 connection"
	if len(g.conns) > 1 {
		conns = fmt.Sprintf("%d connections", len(g.conns))
	}
	return g.url + " (raw tensors, " + conns + ")"
}

// Close closes the connections.
func (g *GRPC) Close() {
	for _, c := range g.conns {
		c.Close()
	}
}

// Call sends the next request on the next connection, in turn, and waits
// for the whole answer.
func (g *GRPC) Call(ctx context.Context) error {
	i := g.next.Add(1) - 1
	_, err := g.clients[i%uint64(len(g.clients))].ModelInfer(ctx, g.reqs[i%uint64(len(g.reqs))])
	if err != nil {
		return g.callError(ctx, err)
	}
	return nil
}

// callError sorts a failed call: the caller's own deadline or cancellation
// as ctx's error (so a timeout reads as one, whichever side noticed), a
// status as a GRPCError.
func (g *GRPC) callError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("grpc: %w", ctx.Err())
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	e := &GRPCError{Code: st.Code(), Message: st.Message()}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			e.Overloaded = true
			e.RetryAfter = ri.GetRetryDelay().AsDuration()
		}
	}
	if e.Code == codes.Unavailable && !e.Overloaded {
		if dialErr := g.lastDial.Load(); dialErr != nil {
			e.cause = *dialErr
		}
	}
	return e
}

// ServerStats reads the model's cumulative counters from ModelStatistics:
// the same counters /metrics exports, per batch size exactly.
func (g *GRPC) ServerStats(ctx context.Context) (ServerStats, error) {
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	resp, err := g.clients[0].ModelStatistics(ctx, &v2pb.ModelStatisticsRequest{Name: g.model})
	if err != nil {
		return ServerStats{}, fmt.Errorf("ModelStatistics %q: %w", g.model, g.callError(ctx, err))
	}
	if len(resp.GetModelStats()) != 1 {
		return ServerStats{}, fmt.Errorf("ModelStatistics %q: %d models in the answer, want 1", g.model, len(resp.GetModelStats()))
	}
	return statsFromGRPC(resp.GetModelStats()[0]), nil
}

// statsFromGRPC reads one model's statistics as fromRunnerStats reads the
// engine's: requests and their queueing from the successes, batches and
// rows from the per-size counts.
func statsFromGRPC(ms *v2pb.ModelStatistics) ServerStats {
	is := ms.GetInferenceStats()
	s := ServerStats{
		Requests: is.GetQueue().GetCount(),
		Queue:    time.Duration(is.GetQueue().GetNs()),
		Exec:     time.Duration(is.GetComputeInfer().GetNs()),
		Sizes:    map[int]uint64{},
	}
	for _, b := range ms.GetBatchStats() {
		n := b.GetComputeInfer().GetCount()
		s.Batches += n
		s.Rows += float64(b.GetBatchSize()) * float64(n)
		s.Sizes[sizeBucket(int(b.GetBatchSize()))] += n
	}
	return s
}

// GRPCError is a call that ended with a gRPC status other than OK.
type GRPCError struct {
	Code    codes.Code
	Message string
	// Overloaded: the server refused the call to protect its latency or
	// queue (Unavailable with RetryInfo, what an HTTP 503 is), and asked
	// to be called again after RetryAfter.
	Overloaded bool
	RetryAfter time.Duration
	cause      error // the dial error behind an Unavailable no server sent
}

func (e *GRPCError) Error() string {
	msg := "grpc " + e.Code.String()
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Unwrap is the failed dial behind the status, if any, so that a refused
// connection reads as one (syscall.ECONNREFUSED).
func (e *GRPCError) Unwrap() error { return e.cause }

// kind sorts a status into the kinds the other targets use where one
// means the same: overloaded (what http_503 is over HTTP), timeout,
// invalid (a 400), connection; else grpc_ and the code's name.
func (e *GRPCError) kind() string {
	switch e.Code {
	case codes.Unavailable:
		if e.Overloaded {
			return KindOverloaded
		}
		return KindConnection
	case codes.DeadlineExceeded:
		return KindTimeout
	case codes.InvalidArgument:
		return KindInvalid
	}
	return "grpc_" + snake(e.Code.String())
}

// snake turns a code's name (ResourceExhausted) into resource_exhausted.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

var _ Target = (*GRPC)(nil)
