package server_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/engine/v2pb"
	"github.com/benchtop/benchtop/server"
)

// grpcFixture serves f's server over gRPC on a real loopback socket, with a
// client connected to it. stop ends ServeGRPC as shutdown does and returns
// what it returned; cleanup calls it if the test did not.
type grpcFixture struct {
	*fixture
	addr   string
	conn   *grpc.ClientConn
	client v2pb.GRPCInferenceServiceClient
	stop   func() error
}

func newGRPCFixture(t *testing.T, config string, opts server.Options, types ...*engine.RunnableType) *grpcFixture {
	t.Helper()
	f := newFixtureConfig(t, config, opts, types...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.ServeGRPC(ctx, ln) }()
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() { cancel(); serveErr = <-done })
		return serveErr
	}
	conn, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		if err := stop(); err != nil {
			t.Errorf("ServeGRPC: %v", err)
		}
	})
	return &grpcFixture{f, ln.Addr().String(), conn, v2pb.NewGRPCInferenceServiceClient(conn), stop}
}

func grpcCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func fp32Input(name string, shape []int64, data ...float32) *v2pb.ModelInferRequest_InferInputTensor {
	return &v2pb.ModelInferRequest_InferInputTensor{Name: name, Datatype: "FP32", Shape: shape,
		Contents: &v2pb.InferTensorContents{Fp32Contents: data}}
}

func TestGRPCHealthAndMetadata(t *testing.T) {
	g := newGRPCFixture(t, testConfig, server.Options{Version: "9.9"})
	ctx := grpcCtx(t)
	if r, err := g.client.ServerLive(ctx, &v2pb.ServerLiveRequest{}); err != nil || !r.Live {
		t.Fatalf("ServerLive = %v, %v", r, err)
	}
	if r, err := g.client.ServerReady(ctx, &v2pb.ServerReadyRequest{}); err != nil || !r.Ready {
		t.Fatalf("ServerReady = %v, %v", r, err)
	}
	md, err := g.client.ServerMetadata(ctx, &v2pb.ServerMetadataRequest{})
	if err != nil || md.Name != "benchtop" || md.Version != "9.9" || !strings.Contains(strings.Join(md.Extensions, ","), "statistics") {
		t.Fatalf("ServerMetadata = %v, %v", md, err)
	}
	if r, err := g.client.ModelReady(ctx, &v2pb.ModelReadyRequest{Name: "sentiment.scores"}); err != nil || !r.Ready {
		t.Fatalf("ModelReady(sentiment.scores) = %v, %v", r, err)
	}

	meta, err := g.client.ModelMetadata(ctx, &v2pb.ModelMetadataRequest{Name: "sentiment.classify"})
	if err != nil {
		t.Fatal(err)
	}
	var ins []string
	for _, in := range meta.Inputs {
		ins = append(ins, in.Name+":"+in.Datatype)
	}
	if got := strings.Join(ins, " "); got != "texts:BYTES threshold:FP32" {
		t.Errorf("classify inputs = %s, want texts:BYTES threshold:FP32", got)
	}
	if p := meta.Inputs[1].Parameters["optional"]; p.GetBoolParam() != true {
		t.Errorf("threshold's parameters = %v, want optional: true", meta.Inputs[1].Parameters)
	}
	if meta.Parameters["method"].GetStringParam() != "classify" {
		t.Errorf("parameters = %v, want method classify", meta.Parameters)
	}

	health := healthpb.NewHealthClient(g.conn)
	for _, svc := range []string{"", "inference.GRPCInferenceService", "sim", "sentiment.scores"} {
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q = %v, %v; want SERVING", svc, r, err)
		}
	}
	if _, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("health of an unknown service: %v, want NotFound", err)
	}
}

// Contents in, contents out; raw in, raw out; every caller its own rows.
func TestGRPCInfer(t *testing.T) {
	g := newGRPCFixture(t, testConfig, server.Options{})
	ctx := grpcCtx(t)

	var header metadata.MD
	resp, err := g.client.ModelInfer(ctx, &v2pb.ModelInferRequest{ModelName: "sim", Id: "r1",
		Inputs: []*v2pb.ModelInferRequest_InferInputTensor{fp32Input("input", []int64{2, 2}, 1, 2, 3, 4)}}, grpc.Header(&header))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Id != "r1" || len(resp.Outputs) != 1 || resp.Outputs[0].Name != "output" || len(resp.RawOutputContents) != 0 {
		t.Fatalf("response = %v", resp)
	}
	if got := resp.Outputs[0].Contents.Fp32Contents; len(got) != 4 || got[0] != 2 || got[3] != 8 {
		t.Errorf("sim doubles: got %v, want [2 4 6 8]", got)
	}
	if header.Get("x-batch-rows") == nil {
		t.Errorf("no x-batch-rows header: %v", header)
	}

	// Raw: the classify method of several named inputs, BYTES and FP32.
	texts, _ := tensor.NewStringTensor([]int{2}, []string{"I love this!", "awful, terrible"})
	rawTexts, _ := v2pb.RawBytes(texts)
	threshold, _ := tensor.NewTensor([]int{}, []float32{0.2})
	rawThreshold, _ := v2pb.RawBytes(threshold)
	resp, err = g.client.ModelInfer(ctx, &v2pb.ModelInferRequest{ModelName: "sentiment.classify",
		Inputs: []*v2pb.ModelInferRequest_InferInputTensor{
			{Name: "threshold", Datatype: "FP32", Shape: []int64{}},
			{Name: "texts", Datatype: "BYTES", Shape: []int64{2}},
		},
		RawInputContents: [][]byte{rawThreshold, rawTexts},
		Outputs:          []*v2pb.ModelInferRequest_InferRequestedOutputTensor{{Name: "positive"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Outputs) != 1 || resp.Outputs[0].Name != "positive" || len(resp.RawOutputContents) != 1 {
		t.Fatalf("asked for positive only, raw: got %v", resp)
	}
	pos, err := v2pb.DecodeRaw(resp.RawOutputContents[0], tensor.Bool, []int{2})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := tensor.TensorData[bool](pos); !b[0] || b[1] {
		t.Errorf("positive = %v, want [true false]", b)
	}

	// 64 concurrent callers, each with its own value, through one batcher.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := float32(i)
			raw, _ := v2pb.RawBytes(mustTensor(t, []int{1, 3}, []float32{v, v + 0.25, v + 0.5}))
			resp, err := g.client.ModelInfer(ctx, &v2pb.ModelInferRequest{ModelName: "echo",
				Inputs:           []*v2pb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 3}}},
				RawInputContents: [][]byte{raw}})
			if err != nil {
				errs <- err
				return
			}
			got, err := v2pb.DecodeRaw(resp.RawOutputContents[0], tensor.Float32, []int{1, 3})
			if err != nil || got.Float32s()[0] != v || got.Float32s()[2] != v+0.5 {
				errs <- errors.New("caller " + got.String() + " got another caller's rows")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func mustTensor(t *testing.T, shape []int, data []float32) *tensor.Tensor {
	v, err := tensor.NewTensor(shape, data)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Errors carry the HTTP front end's words with the matching code.
func TestGRPCErrors(t *testing.T) {
	g := newGRPCFixture(t, testConfig, server.Options{MaxBodyBytes: 1 << 10})
	ctx := grpcCtx(t)
	for _, tc := range []struct {
		name string
		req  *v2pb.ModelInferRequest
		code codes.Code
		want string
	}{
		{"unknown model", &v2pb.ModelInferRequest{ModelName: "nope"}, codes.NotFound, `unknown model "nope"`},
		{"unknown version", &v2pb.ModelInferRequest{ModelName: "sim", ModelVersion: "7"}, codes.NotFound, "serves version 1"},
		{"wrong datatype", &v2pb.ModelInferRequest{ModelName: "sim", Inputs: []*v2pb.ModelInferRequest_InferInputTensor{
			{Name: "input", Datatype: "INT64", Shape: []int64{1, 1}, Contents: &v2pb.InferTensorContents{Int64Contents: []int64{1}}}}},
			codes.InvalidArgument, `input "input" has datatype INT64, the model takes FP32`},
		{"unknown input", &v2pb.ModelInferRequest{ModelName: "sim", Inputs: []*v2pb.ModelInferRequest_InferInputTensor{fp32Input("x", []int64{1, 1}, 1)}},
			codes.InvalidArgument, `"x"`},
		{"contents in the wrong field", &v2pb.ModelInferRequest{ModelName: "sim", Inputs: []*v2pb.ModelInferRequest_InferInputTensor{
			{Name: "input", Datatype: "FP32", Shape: []int64{1, 1}, Contents: &v2pb.InferTensorContents{Fp64Contents: []float64{1}}}}},
			codes.InvalidArgument, "FP32 travels in contents.fp32_contents, but the request sets contents.fp64_contents"},
		{"count that does not match the shape", &v2pb.ModelInferRequest{ModelName: "sim", Inputs: []*v2pb.ModelInferRequest_InferInputTensor{
			fp32Input("input", []int64{2, 2}, 1, 2, 3)}}, codes.InvalidArgument, "contents.fp32_contents has 3 elements, shape [2 2] takes 4"},
		{"no data", &v2pb.ModelInferRequest{ModelName: "sim", Inputs: []*v2pb.ModelInferRequest_InferInputTensor{
			{Name: "input", Datatype: "FP32", Shape: []int64{1, 1}}}}, codes.InvalidArgument, "has no data: set its contents.fp32_contents"},
		{"raw that lies", &v2pb.ModelInferRequest{ModelName: "sim", Inputs: []*v2pb.ModelInferRequest_InferInputTensor{
			{Name: "input", Datatype: "FP32", Shape: []int64{1, 2}}}, RawInputContents: [][]byte{make([]byte, 7)}},
			codes.InvalidArgument, `input "input": raw data is 7 bytes, but FP32 [1, 2] takes 8 bytes`},
		{"raw and contents both", &v2pb.ModelInferRequest{ModelName: "sim", Inputs: []*v2pb.ModelInferRequest_InferInputTensor{
			fp32Input("input", []int64{1, 1}, 1)}, RawInputContents: [][]byte{make([]byte, 4)}},
			codes.InvalidArgument, "use one or the other"},
		{"raw entries short of the inputs", &v2pb.ModelInferRequest{ModelName: "sim", Inputs: []*v2pb.ModelInferRequest_InferInputTensor{
			{Name: "input", Datatype: "FP32", Shape: []int64{1, 1}}, {Name: "b", Datatype: "FP32", Shape: []int64{1, 1}}},
			RawInputContents: [][]byte{make([]byte, 4)}}, codes.InvalidArgument, "raw_input_contents has 1 entries for 2 inputs"},
		{"negative dim", &v2pb.ModelInferRequest{ModelName: "sim", Inputs: []*v2pb.ModelInferRequest_InferInputTensor{
			{Name: "input", Datatype: "FP32", Shape: []int64{-1, 1}}}, RawInputContents: [][]byte{{}}}, codes.InvalidArgument, "want 0 or more"},
		{"unknown output", &v2pb.ModelInferRequest{ModelName: "sim", Inputs: []*v2pb.ModelInferRequest_InferInputTensor{fp32Input("input", []int64{1, 1}, 1)},
			Outputs: []*v2pb.ModelInferRequest_InferRequestedOutputTensor{{Name: "probs"}}}, codes.InvalidArgument, `unknown output "probs" (outputs: output)`},
		{"oversized", &v2pb.ModelInferRequest{ModelName: "sim", Inputs: []*v2pb.ModelInferRequest_InferInputTensor{
			{Name: "input", Datatype: "FP32", Shape: []int64{1, 512}}}, RawInputContents: [][]byte{make([]byte, 2048)}},
			codes.ResourceExhausted, "larger than max (2076 vs. 1024)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := g.client.ModelInfer(ctx, tc.req)
			st := status.Convert(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.want) {
				t.Fatalf("got %v: %q; want %v saying %q", st.Code(), st.Message(), tc.code, tc.want)
			}
		})
	}
}

// A request whose deadline passes while it waits in the queue is withdrawn
// and never runs; overload is Unavailable with a retry delay.
func TestGRPCDeadlineAndOverload(t *testing.T) {
	gt := newGate()
	g := newGRPCFixture(t, gateConfig, server.Options{}, gt.typ())
	ctx := grpcCtx(t)
	run := func(ctx context.Context, v float32) error {
		_, err := g.client.ModelInfer(ctx, &v2pb.ModelInferRequest{ModelName: "gate",
			Inputs: []*v2pb.ModelInferRequest_InferInputTensor{fp32Input("input", []int64{1, 1}, v)}})
		return err
	}
	held := make(chan error, 1)
	go func() { held <- run(ctx, -1) }()
	<-gt.started // the worker is busy until release

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := run(short, 7); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("queued past its deadline: %v, want DeadlineExceeded", err)
	}

	// max_queue_size 2: two wait, the third is refused at once.
	queued := make(chan error, 2)
	for range 2 {
		go func() { queued <- run(ctx, 8) }()
	}
	waitUntil(t, "two requests queued", func() bool { return g.methodStats("gate").Queue.Depth == 2 })
	err := run(ctx, 9)
	st := status.Convert(err)
	if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "overloaded") {
		t.Fatalf("third request: %v, want Unavailable (overloaded)", err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if retry == nil || retry.RetryDelay.AsDuration() < time.Second {
		t.Errorf("details %v: want a RetryInfo of at least 1s", st.Details())
	}

	close(gt.release)
	for _, ch := range []chan error{held, queued, queued} {
		if err := <-ch; err != nil {
			t.Errorf("held or queued request: %v", err)
		}
	}
	if n := gt.count(7); n != 0 {
		t.Errorf("the request whose deadline passed in the queue ran %d times, want never", n)
	}
	if n := gt.count(9); n != 0 {
		t.Errorf("the refused request ran %d times", n)
	}
}

// Shutdown lets a call in flight finish, ends health watches, and then
// refuses new calls.
func TestGRPCShutdownDrains(t *testing.T) {
	gt := newGate()
	g := newGRPCFixture(t, gateConfig, server.Options{DrainTimeout: 10 * time.Second}, gt.typ())
	ctx := grpcCtx(t)
	watch, err := healthpb.NewHealthClient(g.conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := watch.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch: %v, %v", r, err)
	}
	inflight := make(chan *v2pb.ModelInferResponse, 1)
	go func() {
		resp, err := g.client.ModelInfer(ctx, &v2pb.ModelInferRequest{ModelName: "gate",
			Inputs: []*v2pb.ModelInferRequest_InferInputTensor{fp32Input("input", []int64{1, 1}, -1)}})
		if err != nil {
			t.Errorf("in-flight call: %v", err)
		}
		inflight <- resp
	}()
	<-gt.started
	stopped := make(chan error, 1)
	go func() { stopped <- g.stop() }()
	if _, err := watch.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("watch on shutdown: %v, want Unavailable", err)
	}
	select {
	case err := <-stopped:
		t.Fatalf("ServeGRPC returned (%v) with a call in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(gt.release)
	if resp := <-inflight; resp == nil || resp.Outputs[0].Contents.Fp32Contents[0] != -1 {
		t.Errorf("in-flight call answered %v", resp)
	}
	if err := <-stopped; err != nil {
		t.Errorf("ServeGRPC: %v", err)
	}
}

// A pipeline is a model over gRPC as over HTTP: ready when its steps'
// runners are, described with its steps, inferred through them; it has no
// statistics of its own.
func TestGRPCPipelineModel(t *testing.T) {
	g := newGRPCFixture(t, testConfig+`
  - name: twice
    steps:
      - {name: first, runner: echo, method: echo, inputs: {input: $input.x}}
      - {name: second, runner: sim, method: predict, inputs: {input: first.output}}
    outputs: {y: second.output}
`, server.Options{})
	ctx := grpcCtx(t)
	if r, err := g.client.ModelReady(ctx, &v2pb.ModelReadyRequest{Name: "twice"}); err != nil || !r.Ready {
		t.Fatalf("ModelReady(twice) = %v, %v", r, err)
	}
	meta, err := g.client.ModelMetadata(ctx, &v2pb.ModelMetadataRequest{Name: "twice"})
	if err != nil || meta.Platform != "benchtop_pipeline" || meta.Parameters["steps"].GetStringParam() != "first=echo.echo,second=sim.predict" {
		t.Fatalf("ModelMetadata(twice) = %v, %v", meta, err)
	}
	resp, err := g.client.ModelInfer(ctx, &v2pb.ModelInferRequest{ModelName: "twice",
		Inputs: []*v2pb.ModelInferRequest_InferInputTensor{fp32Input("x", []int64{1, 2}, 1, 2)}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Outputs[0].Contents.Fp32Contents; resp.Outputs[0].Name != "y" || len(got) != 2 || got[1] != 4 {
		t.Errorf("twice(x) = %v, want y = [2 4]", resp.Outputs)
	}
	if _, err := g.client.ModelStatistics(ctx, &v2pb.ModelStatisticsRequest{Name: "twice"}); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "is a pipeline") {
		t.Errorf("ModelStatistics(twice): %v, want NotFound saying it is a pipeline", err)
	}
	r, err := healthpb.NewHealthClient(g.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "twice"})
	if err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health of the pipeline = %v, %v", r, err)
	}
}
