package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/engine/v2pb"
	"github.com/benchtop/benchtop/server/codec"
)

// benchGRPC serves benchConfig over HTTP and gRPC; it returns the HTTP URL
// and clients on conns gRPC connections (HTTP/2 multiplexes streams, so a
// few connections carry many concurrent calls).
func benchGRPC(b *testing.B, conns int) (string, []v2pb.GRPCInferenceServiceClient) {
	url, _, clients := benchGRPCEngine(b, conns)
	return url, clients
}

func benchGRPCEngine(b *testing.B, conns int) (string, *engine.Engine, []v2pb.GRPCInferenceServiceClient) {
	b.Helper()
	url, eng, srv := benchStack(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeGRPC(ctx, ln) }()
	b.Cleanup(func() { cancel(); <-done })
	var clients []v2pb.GRPCInferenceServiceClient
	for range conns {
		conn, err := grpc.NewClient("passthrough:///"+ln.Addr().String(),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(4<<20), grpc.WithInitialConnWindowSize(4<<20),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		clients = append(clients, v2pb.NewGRPCInferenceServiceClient(conn))
	}
	return url, eng, clients
}

// grpcLoad is load over gRPC: streams callers spread over the clients, each
// sending req when its last answer arrives.
func grpcLoad(clients []v2pb.GRPCInferenceServiceClient, req *v2pb.ModelInferRequest, streams, n int, dur time.Duration) (float64, []time.Duration, int64) {
	next := 0
	return drive(streams, n, dur, func() (func() (bool, bool), func()) {
		c := clients[next%len(clients)]
		next++
		return func() (bool, bool) {
			_, err := c.ModelInfer(context.Background(), req)
			return err == nil, false
		}, func() {}
	})
}

func simRow() *v2pb.ModelInferRequest {
	raw, _ := v2pb.RawBytes(must(tensor.NewTensor([]int{1, 4}, []float32{0.1, 0.2, 0.3, 0.4})))
	return &v2pb.ModelInferRequest{ModelName: "sim",
		Inputs:           []*v2pb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 4}}},
		RawInputContents: [][]byte{raw}}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// BenchmarkGRPCSim128Streams: 128 concurrent calls over 4 connections, one
// row a call, raw tensors, against sim's ideal (of_ideal: 1 is the
// ceiling), as BenchmarkHTTPSim128Connections does over HTTP.
func BenchmarkGRPCSim128Streams(b *testing.B) {
	_, clients := benchGRPC(b, 4)
	req := simRow()
	grpcLoad(clients, req, 128, 2000, 5*time.Second) // warm up: connections and the cost model
	b.ResetTimer()
	rate, lat, errs := grpcLoad(clients, req, 128, b.N, time.Minute)
	b.ReportMetric(rate, "req/s")
	b.ReportMetric(rate/simIdeal, "of_ideal")
	b.ReportMetric(float64(errs), "errors")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99_ms")
}

// BenchmarkGRPCSimOneStream: one caller, one row a call. over_exec_ms is
// the median latency less the model's own cost as the runner measured it
// over the same calls (sim's 2.1 ms and its sleep's overshoot): what the
// gRPC hop, the front end and the engine add.
func BenchmarkGRPCSimOneStream(b *testing.B) {
	_, eng, clients := benchGRPCEngine(b, 1)
	req := simRow()
	grpcLoad(clients, req, 1, 100, 5*time.Second)
	sim, err := eng.Runner("sim")
	if err != nil {
		b.Fatal(err)
	}
	cum := func() engine.Cumulative { return sim.Stats(engine.StatsOptions{}).Methods[0].Cumulative }
	before := cum()
	b.ResetTimer()
	_, lat, errs := grpcLoad(clients, req, 1, b.N, time.Minute)
	after := cum()
	p50 := float64(lat[len(lat)/2]) / 1e6
	exec := float64(after.Exec-before.Exec) / float64(after.Executions-before.Executions) / 1e6
	b.ReportMetric(p50, "p50_ms")
	b.ReportMetric(exec, "exec_ms")
	b.ReportMetric(p50-exec, "over_exec_ms")
	b.ReportMetric(float64(errs), "errors")
}

// BenchmarkEchoTensorGRPCVsJSON echoes a float32 [64, 256] tensor (64 KiB)
// through the echo runner over gRPC with raw contents and over HTTP as a
// v2 JSON body, with 4 callers each, interleaved JSON, gRPC, gRPC, JSON so
// that drift on a shared machine favours neither. grpc/json is the ratio of
// their rates; of_memcpy is gRPC's tensor bytes per second (the tensor
// counted once a request, as BenchmarkV2Binary counts it) against one core
// copying the same bytes in memory, the physical limit.
func BenchmarkEchoTensorGRPCVsJSON(b *testing.B) {
	url, clients := benchGRPC(b, 4)
	data := make([]float32, 64*256)
	for i := range data {
		data[i] = float32(i%1000) / 7
	}
	t := must(tensor.NewTensor([]int{64, 256}, data))
	raw := must(v2pb.RawBytes(t))
	req := &v2pb.ModelInferRequest{ModelName: "echo",
		Inputs:           []*v2pb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{64, 256}}},
		RawInputContents: [][]byte{raw}}
	var body bytes.Buffer
	fmt.Fprintf(&body, `{"inputs":[{"name":"input","datatype":"FP32","shape":[64,256],"data":`)
	body.Write(codec.AppendFlat(nil, t))
	body.WriteString(`}]}`)
	jsonURL := url + "/v2/models/echo/infer"
	hc := client(4)
	jsonLoad := func(dur time.Duration) float64 {
		rate, _, _ := drive(4, 1<<30, dur, func() (func() (bool, bool), func()) {
			return func() (bool, bool) {
				resp, err := hc.Post(jsonURL, "application/json", bytes.NewReader(body.Bytes()))
				if err != nil {
					return false, false
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK, false
			}, func() {}
		})
		return rate
	}
	grpcRate := func(dur time.Duration) float64 {
		rate, _, _ := grpcLoad(clients, req, 4, 1<<30, dur)
		return rate
	}
	jsonLoad(time.Second)
	grpcRate(time.Second)
	b.ResetTimer()
	var js, gs float64
	for range b.N {
		js += jsonLoad(2 * time.Second)
		gs += grpcRate(2 * time.Second)
		gs += grpcRate(2 * time.Second)
		js += jsonLoad(2 * time.Second)
	}
	js, gs = js/float64(2*b.N), gs/float64(2*b.N)
	b.StopTimer()
	copyRate := memcpyRate(raw, 200*time.Millisecond)
	b.ReportMetric(js, "json_req/s")
	b.ReportMetric(gs, "grpc_req/s")
	b.ReportMetric(gs/js, "grpc/json")
	b.ReportMetric(gs*float64(len(raw))/1e6, "grpc_MB/s")
	b.ReportMetric(gs*float64(len(raw))/copyRate, "of_memcpy")
	b.ReportMetric(0, "ns/op")
}
