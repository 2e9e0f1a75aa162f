package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/engine/v2pb"
	"github.com/benchtop/benchtop/server/codec"
)

// The Open Inference Protocol over gRPC serves what the HTTP v2 routes
// serve, through the same rules: a model is a runner ("sim") or one of its
// methods ("sentiment.scores"), inputs are checked by v2InputValue, errors
// carry the HTTP front end's messages with the code that matches its status
// (grpcCode), and a client's deadline is the request's context, so a
// request still queued when it passes is withdrawn and never runs.

// DefaultGRPCMaxSendBytes bounds one response message. Requests are
// bounded by Options.MaxBodyBytes, the same limit as an HTTP body; grpc-go
// refuses a larger one before any handler sees it, with ResourceExhausted
// and its own words ("received message larger than max (N vs. M)"), which
// docs/GRPC.md explains.
const DefaultGRPCMaxSendBytes = math.MaxInt32

// grpcService implements inference.GRPCInferenceService over the server's
// engine.
type grpcService struct {
	v2pb.UnimplementedGRPCInferenceServiceServer
	s *Server
}

// ServeGRPC serves the v2 gRPC service, the standard health service and
// server reflection on ln until ctx ends, then stops gracefully: in-flight
// calls may finish for the drain timeout, after which they are cancelled.
func (s *Server) ServeGRPC(ctx context.Context, ln net.Listener) error {
	stopping := make(chan struct{})
	gs := s.newGRPCServer(stopping)
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve grpc: %w", err)
	case <-ctx.Done():
	}
	close(stopping) // health Watch streams end, so GracefulStop can
	drained := make(chan struct{})
	go func() { gs.GracefulStop(); close(drained) }()
	timer := time.NewTimer(s.opts.DrainTimeout)
	defer timer.Stop()
	var err error
	select {
	case <-drained:
	case <-timer.C:
		gs.Stop()
		<-drained
		err = fmt.Errorf("drain in-flight grpc calls: still running after %s, cancelled", s.opts.DrainTimeout)
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, grpc.ErrServerStopped) {
		return fmt.Errorf("serve grpc: %w", serr)
	}
	return err
}

func (s *Server) newGRPCServer(stopping <-chan struct{}) *grpc.Server {
	gs := grpc.NewServer(
		grpc.MaxRecvMsgSize(int(min(s.opts.MaxBodyBytes, math.MaxInt32))),
		grpc.MaxSendMsgSize(s.opts.GRPCMaxSendBytes),
		grpc.ChainUnaryInterceptor(s.grpcInstrument),
		// Handlers on a pool of goroutines kept for it, rather than one new
		// goroutine per call.
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
		// Fixed flow-control windows turn off grpc-go's bandwidth probing,
		// a ping answered on every read that costs a small call a round of
		// writes; 4 MiB windows keep a large tensor from waiting on them.
		grpc.InitialWindowSize(4<<20),
		grpc.InitialConnWindowSize(4<<20),
	)
	v2pb.RegisterGRPCInferenceServiceServer(gs, &grpcService{s: s})
	healthpb.RegisterHealthServer(gs, &grpcHealth{s: s, stopping: stopping})
	reflection.Register(gs)
	return gs
}

// grpcInstrument counts, times and logs every call as instrument does for
// HTTP, under the label grpc.<Method> and the gRPC code's name.
func (s *Server) grpcInstrument(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	code := status.Code(err)
	label := "grpc." + info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	d := time.Since(start)
	s.requests.WithLabelValues(label, code.String()).Inc()
	s.duration.WithLabelValues(label).Observe(d.Seconds())
	level := slog.LevelInfo
	switch {
	case code == codes.Unavailable:
		s.overloads.add(label, err)
		if !s.opts.AccessLog {
			return resp, err
		}
	case code == codes.Internal || code == codes.Unknown:
		level = slog.LevelError
	case !s.opts.AccessLog:
		return resp, err
	}
	attrs := []any{"method", info.FullMethod, "code", code.String(), "duration", d, "api", label}
	if err != nil {
		attrs = append(attrs, "error", status.Convert(err).Message())
	}
	s.opts.Logger.Log(ctx, level, "grpc call", attrs...)
	return resp, err
}

// grpcError is err as a gRPC status: the HTTP front end's message, with the
// code that matches the status it would answer, and on overload the delay
// before a retry (RetryInfo), as Retry-After says over HTTP.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	switch httpStatus := statusFor(err); {
	case httpStatus == http.StatusBadRequest:
		code = codes.InvalidArgument
	case httpStatus == http.StatusNotFound:
		code = codes.NotFound
	case httpStatus == http.StatusRequestEntityTooLarge:
		code = codes.ResourceExhausted
	case httpStatus == http.StatusServiceUnavailable:
		st := status.New(codes.Unavailable, err.Error())
		if with, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retryAfter(err))}); derr == nil {
			st = with
		}
		return st.Err()
	case httpStatus == http.StatusGatewayTimeout:
		code = codes.DeadlineExceeded
	case httpStatus == statusClientClosed:
		code = codes.Canceled
	case httpStatus < 500:
		code = codes.FailedPrecondition
	}
	return status.Error(code, err.Error())
}

func (g *grpcService) ServerLive(context.Context, *v2pb.ServerLiveRequest) (*v2pb.ServerLiveResponse, error) {
	return &v2pb.ServerLiveResponse{Live: true}, nil
}

func (g *grpcService) ServerReady(context.Context, *v2pb.ServerReadyRequest) (*v2pb.ServerReadyResponse, error) {
	ready, _ := g.s.readiness()
	return &v2pb.ServerReadyResponse{Ready: ready}, nil
}

func (g *grpcService) ServerMetadata(context.Context, *v2pb.ServerMetadataRequest) (*v2pb.ServerMetadataResponse, error) {
	return &v2pb.ServerMetadataResponse{Name: "benchtop", Version: g.s.opts.Version, Extensions: v2Extensions}, nil
}

// grpcModel resolves a model and version as the HTTP routes do; benchtop
// serves one version of each model, "1".
func (g *grpcService) grpcModel(name, version string) (v2Model, error) {
	m, err := g.s.resolveModel(name)
	if err != nil {
		return v2Model{}, grpcError(err)
	}
	if version != "" && version != "1" {
		return v2Model{}, status.Errorf(codes.NotFound, "model %q has no version %q: benchtop serves version 1 (or leave version empty)", name, version)
	}
	return m, nil
}

func (g *grpcService) ModelReady(_ context.Context, req *v2pb.ModelReadyRequest) (*v2pb.ModelReadyResponse, error) {
	m, err := g.grpcModel(req.Name, req.Version)
	if err != nil {
		return nil, err
	}
	return &v2pb.ModelReadyResponse{Ready: g.s.modelReady(m)}, nil
}

func (g *grpcService) ModelMetadata(_ context.Context, req *v2pb.ModelMetadataRequest) (*v2pb.ModelMetadataResponse, error) {
	m, err := g.grpcModel(req.Name, req.Version)
	if err != nil {
		return nil, err
	}
	if m.pipeline != nil {
		return &v2pb.ModelMetadataResponse{
			Name: m.name, Versions: []string{"1"}, Platform: "benchtop_pipeline",
			Inputs: grpcMetas(m.spec.Inputs), Outputs: grpcMetas(m.spec.Outputs),
			// gRPC parameters are scalars: steps as name=model, comma-separated.
			Parameters: grpcParams(map[string]any{"steps": stepList(pipelineSteps(m))}),
		}, nil
	}
	st := m.runner.Stats(engine.StatsOptions{})
	return &v2pb.ModelMetadataResponse{
		Name:       m.name,
		Versions:   []string{"1"},
		Platform:   "benchtop_" + m.runner.Runnable().Name,
		Inputs:     grpcMetas(m.spec.Inputs),
		Outputs:    grpcMetas(m.spec.Outputs),
		Parameters: grpcParams(v2ModelParams(m, st)),
	}, nil
}

func stepList(steps []map[string]any) []string {
	out := make([]string, len(steps))
	for i, st := range steps {
		out[i] = fmt.Sprintf("%s=%s", st["name"], st["model"])
	}
	return out
}

// grpcParams converts metadata parameters to the protocol's parameter
// values; a list becomes a comma-separated string.
func grpcParams(params map[string]any) map[string]*v2pb.InferParameter {
	out := make(map[string]*v2pb.InferParameter, len(params))
	for k, v := range params {
		switch v := v.(type) {
		case bool:
			out[k] = boolParam(v)
		case string:
			out[k] = stringParam(v)
		case int:
			out[k] = int64Param(int64(v))
		case float64:
			out[k] = &v2pb.InferParameter{ParameterChoice: &v2pb.InferParameter_DoubleParam{DoubleParam: v}}
		case []string:
			out[k] = stringParam(strings.Join(v, ","))
		}
	}
	return out
}

func grpcMetas(specs tensor.IOSpecs) []*v2pb.ModelMetadataResponse_TensorMetadata {
	out := make([]*v2pb.ModelMetadataResponse_TensorMetadata, len(specs))
	for i, spec := range specs {
		m := v2Meta(spec)
		t := &v2pb.ModelMetadataResponse_TensorMetadata{Name: m.Name, Datatype: m.Datatype, Shape: v2pb.WireShape(m.Shape)}
		if len(m.Parameters) > 0 {
			t.Parameters = grpcParams(m.Parameters)
		}
		out[i] = t
	}
	return out
}

func stringParam(s string) *v2pb.InferParameter {
	return &v2pb.InferParameter{ParameterChoice: &v2pb.InferParameter_StringParam{StringParam: s}}
}

func boolParam(b bool) *v2pb.InferParameter {
	return &v2pb.InferParameter{ParameterChoice: &v2pb.InferParameter_BoolParam{BoolParam: b}}
}

func int64Param(n int64) *v2pb.InferParameter {
	return &v2pb.InferParameter{ParameterChoice: &v2pb.InferParameter_Int64Param{Int64Param: n}}
}

func (g *grpcService) ModelStatistics(_ context.Context, req *v2pb.ModelStatisticsRequest) (*v2pb.ModelStatisticsResponse, error) {
	var models []v2Model
	if req.Name == "" { // Triton: every model
		for _, rn := range g.s.eng.Runners() {
			models = append(models, v2Model{name: rn.Name(), runner: rn, spec: rn.Methods()[0]})
		}
	} else {
		m, err := g.grpcModel(req.Name, req.Version)
		if err != nil {
			return nil, err
		}
		if m.pipeline != nil {
			return nil, grpcError(pipelineStatsError(m))
		}
		models = append(models, m)
	}
	resp := &v2pb.ModelStatisticsResponse{}
	for _, m := range models {
		st := v2StatsOf(m)
		dur := func(k string) *v2pb.StatisticDuration {
			d := st.InferenceStats[k]
			return &v2pb.StatisticDuration{Count: d.Count, Ns: d.Ns}
		}
		ms := &v2pb.ModelStatistics{
			Name: st.Name, Version: st.Version, LastInference: uint64(st.LastInference),
			InferenceCount: st.InferenceCount, ExecutionCount: st.ExecutionCount,
			InferenceStats: &v2pb.InferStatistics{
				Success: dur("success"), Fail: dur("fail"), Queue: dur("queue"), ComputeInfer: dur("compute_infer"),
			},
		}
		for _, b := range st.BatchStats {
			ms.BatchStats = append(ms.BatchStats, &v2pb.InferBatchStatistics{
				BatchSize:    uint64(b.BatchSize),
				ComputeInfer: &v2pb.StatisticDuration{Count: b.ComputeInfer.Count, Ns: b.ComputeInfer.Ns},
			})
		}
		resp.ModelStats = append(resp.ModelStats, ms)
	}
	return resp, nil
}

// ModelInfer runs one inference. The answer is raw (raw_output_contents)
// when the request came raw, in typed contents otherwise. Which batch
// served it is in the response headers x-batch-rows, x-batch-requests and
// x-queue-ms, as over HTTP.
func (g *grpcService) ModelInfer(ctx context.Context, req *v2pb.ModelInferRequest) (*v2pb.ModelInferResponse, error) {
	m, err := g.grpcModel(req.ModelName, req.ModelVersion)
	if err != nil {
		return nil, err
	}
	call, err := decodeGRPCInfer(req, m.spec)
	if err != nil {
		return nil, grpcError(err)
	}
	outs, setHeaders, err := g.s.runV2(ctx, m, call.in)
	if err != nil {
		return nil, grpcError(err)
	}
	resp, err := encodeGRPCInfer(m.name, req.Id, m.spec.Outputs, outs, call.outputs, len(req.RawInputContents) > 0)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "model %q: %v", m.name, err)
	}
	// The same headers as over HTTP, in gRPC's lower case.
	md := metadata.MD{}
	setHeaders(func(k, v string) { md[strings.ToLower(k)] = []string{v} })
	grpc.SetHeader(ctx, md)
	return resp, nil
}

// decodeGRPCInfer reads a gRPC inference request for a method by the rules
// of decodeV2Request: every input by name, each checked against its spec,
// and the outputs asked for.
func decodeGRPCInfer(req *v2pb.ModelInferRequest, spec engine.MethodSpec) (v2Call, error) {
	raw := req.RawInputContents
	if len(raw) > 0 && len(raw) != len(req.Inputs) {
		return v2Call{}, errorf(http.StatusBadRequest, "raw_input_contents has %d entries for %d inputs: send one per input, in the order of inputs", len(raw), len(req.Inputs))
	}
	call := v2Call{id: req.Id}
	set := codec.NewNamedValues(spec.Inputs)
	for k, t := range req.Inputs {
		i, err := set.Index(t.Name)
		if err != nil {
			return v2Call{}, err
		}
		dt, err := tensor.ParseDType(t.Datatype)
		if err != nil {
			return v2Call{}, errorf(http.StatusBadRequest, "input %q: %v", t.Name, err)
		}
		shape, err := shapeFromWire(t.Shape)
		if err != nil {
			return v2Call{}, errorf(http.StatusBadRequest, "input %q: %v", t.Name, err)
		}
		var decode func(tensor.DType) (*tensor.Tensor, error)
		switch {
		case len(raw) > 0 && t.Contents != nil:
			return v2Call{}, errorf(http.StatusBadRequest, "input %q has contents, but the request sends its tensors in raw_input_contents: use one or the other", t.Name)
		case len(raw) > 0:
			decode = func(dt tensor.DType) (*tensor.Tensor, error) { return v2pb.DecodeRaw(raw[k], dt, shape) }
		case t.Contents != nil:
			decode = func(dt tensor.DType) (*tensor.Tensor, error) { return decodeContents(t.Contents, dt, shape) }
		default:
			return v2Call{}, errorf(http.StatusBadRequest, "input %q has no data: set its contents.%s, or send every input in raw_input_contents", t.Name, contentsField(dt))
		}
		v, err := v2InputValue(t.Name, dt, spec.Inputs[i], decode)
		if err != nil {
			return v2Call{}, err
		}
		if err := set.Set(i, v); err != nil {
			return v2Call{}, err
		}
	}
	in, err := set.Values()
	if err != nil {
		return v2Call{}, err
	}
	call.in = in
	if len(req.Outputs) > 0 {
		call.outputs = make([]bool, len(spec.Outputs))
	}
	for _, o := range req.Outputs {
		if _, err := pickOutput(call.outputs, spec.Outputs, o.Name); err != nil {
			return v2Call{}, err
		}
	}
	return call, nil
}

// encodeGRPCInfer answers with the outputs picked (nil: all), in the spec's
// order, raw or in typed contents.
func encodeGRPCInfer(model, id string, specs tensor.IOSpecs, outs []tensor.Value, pick []bool, raw bool) (*v2pb.ModelInferResponse, error) {
	if len(outs) != len(specs) {
		// A reload changed the method under this request.
		return nil, fmt.Errorf("returned %d outputs, want %d (%s)", len(outs), len(specs), specs.Names())
	}
	resp := &v2pb.ModelInferResponse{ModelName: model, ModelVersion: "1", Id: id}
	for i, out := range outs {
		if pick != nil && !pick[i] {
			continue
		}
		t, err := v2pb.V2Tensor(out)
		if err != nil {
			return nil, fmt.Errorf("encode output %q: %w", specs[i].Name, err)
		}
		o := &v2pb.ModelInferResponse_InferOutputTensor{Name: specs[i].Name, Datatype: t.DType().V2(), Shape: v2pb.WireShape(t.Shape())}
		if raw {
			b, err := v2pb.RawBytes(t)
			if err != nil {
				return nil, fmt.Errorf("encode output %q: %w", specs[i].Name, err)
			}
			resp.RawOutputContents = append(resp.RawOutputContents, b)
		} else if o.Contents, err = encodeContents(t); err != nil {
			return nil, fmt.Errorf("encode output %q: %w", specs[i].Name, err)
		}
		resp.Outputs = append(resp.Outputs, o)
	}
	return resp, nil
}

// grpcHealth is the standard health service (grpc.health.v1). The server
// ("" or inference.GRPCInferenceService) is SERVING when /readyz would say
// ready; a model name (a runner, or runner.method) when that runner has a
// worker ready, which is what a client balancing over runner servers
// probes.
type grpcHealth struct {
	healthpb.UnimplementedHealthServer
	s        *Server
	stopping <-chan struct{}
}

// healthWatchEvery is how often Watch looks for a change to send.
const healthWatchEvery = 250 * time.Millisecond

func (h *grpcHealth) status(service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	serving := func(ok bool) healthpb.HealthCheckResponse_ServingStatus {
		if ok {
			return healthpb.HealthCheckResponse_SERVING
		}
		return healthpb.HealthCheckResponse_NOT_SERVING
	}
	if service == "" || service == v2pb.GRPCInferenceService_ServiceDesc.ServiceName {
		ready, _ := h.s.readiness()
		return serving(ready), nil
	}
	m, err := h.s.resolveModel(service)
	if err != nil {
		return healthpb.HealthCheckResponse_SERVICE_UNKNOWN, status.Errorf(codes.NotFound, "unknown service %q: ask for \"\", %q or a model name (%v)",
			service, v2pb.GRPCInferenceService_ServiceDesc.ServiceName, err)
	}
	return serving(h.s.modelReady(m)), nil
}

func (h *grpcHealth) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	st, err := h.status(req.Service)
	if err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: st}, nil
}

// Watch sends the status now and on every change, until the client leaves
// or the server stops.
func (h *grpcHealth) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ticker := time.NewTicker(healthWatchEvery)
	defer ticker.Stop()
	last := healthpb.HealthCheckResponse_ServingStatus(-1)
	for {
		st, _ := h.status(req.Service) // unknown is a status here, per the protocol
		if st != last {
			if err := stream.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
				return err
			}
			last = st
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-h.stopping:
			return status.Error(codes.Unavailable, "server is shutting down")
		case <-ticker.C:
		}
	}
}
