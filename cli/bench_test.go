package cli

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runBenchCmd runs `benchtop bench ARGS` and returns its stdout.
func runBenchCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newBenchCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

// short is one brief level: the test checks the command, not the figures.
var short = []string{"--concurrency", "2", "--warmup", "0s", "--window", "50ms", "--max-time", "200ms"}

type benchReport struct {
	Target string `json:"target"`
	Sweeps []struct {
		Label  string `json:"label"`
		Levels []struct {
			Concurrency int               `json:"concurrency"`
			Requests    uint64            `json:"requests"`
			OK          uint64            `json:"ok"`
			Errors      map[string]uint64 `json:"errors"`
			Server      *struct {
				Batches uint64 `json:"batches"`
			} `json:"server"`
		} `json:"levels"`
	} `json:"sweeps"`
}

func readReport(t *testing.T, out string) benchReport {
	t.Helper()
	var r benchReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("-o json is not JSON: %v\n%s", err, out)
	}
	return r
}

// served checks that every level of every sweep was served without error
// and the server's batching was read.
func (r benchReport) served(t *testing.T, sweeps int) {
	t.Helper()
	if len(r.Sweeps) != sweeps {
		t.Fatalf("%d sweeps, want %d: %+v", len(r.Sweeps), sweeps, r)
	}
	for _, s := range r.Sweeps {
		if len(s.Levels) != 1 {
			t.Fatalf("sweep %q: %d levels, want 1", s.Label, len(s.Levels))
		}
		l := s.Levels[0]
		if l.Concurrency != 2 || l.OK == 0 || l.OK != l.Requests || len(l.Errors) != 0 || l.Server == nil || l.Server.Batches == 0 {
			t.Fatalf("sweep %q: level %+v (server %+v): want concurrency 2, every request ok, batches counted", s.Label, l, l.Server)
		}
	}
}

// TestBenchInProcess: --config and --runner load one runner in process;
// --compare runs a sweep per setting; --input and --method choose the body
// and the method.
func TestBenchInProcess(t *testing.T) {
	path := writeConfig(t, metricsConfig)
	inProcess := append([]string{"--config", path, "--runner", "sim"}, short...)
	out, err := runBenchCmd(t, append(inProcess, "-o", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	r := readReport(t, out)
	r.served(t, 1)
	if !strings.Contains(r.Target, "sim") {
		t.Fatalf("target %q, want the sim runner", r.Target)
	}

	out, err = runBenchCmd(t, append(inProcess, "-o", "json", "--compare", "policy=none,adaptive")...)
	if err != nil {
		t.Fatal(err)
	}
	r = readReport(t, out)
	r.served(t, 2)
	if r.Sweeps[0].Label != "policy=none" || r.Sweeps[1].Label != "policy=adaptive" {
		t.Fatalf("compare labels %q, %q", r.Sweeps[0].Label, r.Sweeps[1].Label)
	}

	input := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(input, []byte("what a lovely day"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runBenchCmd(t, append(short, "--config", path, "--runner", "sentiment", "--method", "is_positive", "--input", input, "-o", "csv")...)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "label,concurrency") {
		t.Fatalf("-o csv: want a header and one row, got:\n%s", out)
	}
}

// TestBenchOverHTTP: --url drives a running server's API and reads its
// batching from /metrics; the table is the default output.
func TestBenchOverHTTP(t *testing.T) {
	st, _ := serveConfig(t, metricsConfig)
	out, err := runBenchCmd(t, append(short, "--url", st.URL()+"/predict", "-o", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	readReport(t, out).served(t, 1)
	out, err = runBenchCmd(t, append(short, "--url", st.URL()+"/v2/models/sim/infer")...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "/v2/models/sim/infer") {
		t.Fatalf("the table does not name its target:\n%s", out)
	}

	// --binary: the same route with raw tensors, the same report.
	bin, err := runBenchCmd(t, append(short, "--url", st.URL()+"/v2/models/sim/infer", "--binary")...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(bin, "/v2/models/sim/infer (binary tensors)") {
		t.Fatalf("the table does not say its tensors are binary:\n%s", bin)
	}
	if a, b := columns(out), columns(bin); a == "" || a != b {
		t.Fatalf("--binary reports columns %q, JSON %q", b, a)
	}
	out, err = runBenchCmd(t, append(short, "--url", st.URL()+"/v2/models/sim/infer", "--binary", "--rows", "1..3", "-o", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	readReport(t, out).served(t, 1)
}

// TestBenchOverGRPC: a grpc:// URL drives the server's gRPC service and
// reports what an HTTP run reports, column for column.
func TestBenchOverGRPC(t *testing.T) {
	st, _ := serveConfig(t, metricsConfig)
	url := "grpc://" + st.GRPCAddr() + "/sim"
	out, err := runBenchCmd(t, append(short, "--url", url, "-o", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	readReport(t, out).served(t, 1)
	out, err = runBenchCmd(t, append(short, "--url", url+".predict", "--rows", "1..3", "-o", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	readReport(t, out).served(t, 1)

	table, err := runBenchCmd(t, append(short, "--url", url)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table, url+" (raw tensors, 1 connection)") {
		t.Fatalf("the table does not name its target:\n%s", table)
	}
	httpTable, err := runBenchCmd(t, append(short, "--url", st.URL()+"/v2/models/sim/infer")...)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := columns(httpTable), columns(table); a == "" || a != b {
		t.Fatalf("gRPC reports columns %q, HTTP %q", b, a)
	}
	grpcCSV, err := runBenchCmd(t, append(short, "--url", url, "-o", "csv")...)
	if err != nil {
		t.Fatal(err)
	}
	httpCSV, err := runBenchCmd(t, append(short, "--url", st.URL()+"/v2/models/sim/infer", "-o", "csv")...)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := strings.SplitN(grpcCSV, "\n", 2)[0], strings.SplitN(httpCSV, "\n", 2)[0]; a != b {
		t.Fatalf("gRPC CSV header %q, HTTP %q", a, b)
	}

	// --input is read against the signature, as in process.
	input := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(input, []byte("[[1, 2], [3, 4], [5, 6]]"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runBenchCmd(t, append(short, "--url", url, "--input", input, "-o", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	readReport(t, out).served(t, 1)

	if _, err := runBenchCmd(t, append(short, "--url", "grpc://"+st.GRPCAddr()+"/nope")...); err == nil || !strings.Contains(err.Error(), `ModelMetadata "nope"`) || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("an unknown model: %v", err)
	}
}

// columns is the header line of a bench table.
func columns(table string) string {
	for _, line := range strings.Split(table, "\n") {
		if strings.Contains(line, "req/s") && strings.Contains(line, "p99") {
			return strings.Join(strings.Fields(line), " ")
		}
	}
	return ""
}

// TestBenchFlags: what bench refuses says why.
func TestBenchFlags(t *testing.T) {
	t.Setenv("BENCHTOP_HOME", t.TempDir())
	path := writeConfig(t, metricsConfig)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-o", "xml"}, `-o "xml": want table, json or csv`},
		{[]string{"--concurrency", "0"}, "--concurrency"},
		{[]string{"--rate", "100", "--concurrency", "4"}, "exclusive"},
		{[]string{"--rate", "100", "--arrivals", "bursty"}, `--arrivals "bursty"`},
		{[]string{"--rate", "x"}, "--rate"},
		{[]string{"--url", "http://127.0.0.1:1/predict", "--runner", "sim"}, "give one or the other"},
		{[]string{"--url", "http://127.0.0.1:1/predict", "--compare", "policy=none"}, "needs an in-process target"},
		{[]string{"--compare", "nope=1"}, "nope"},
		{[]string{"--binary"}, "--binary sends tensors as raw bytes over HTTP: give --url"},
		{[]string{"--url", "http://127.0.0.1:1/predict", "--binary"}, "binary tensors are sent to a v2 route"},
		{[]string{"--url", "http://127.0.0.1:1/v2/models/sim/infer", "--binary", "--input", path}, "--binary makes raw bodies"},
		{[]string{"--url", "grpc://127.0.0.1:1/sim", "--binary"}, "gRPC always sends tensors raw"},
		{[]string{"--url", "grpc://127.0.0.1/sim"}, "no port"},
		{[]string{"--url", "grpc://127.0.0.1:1/sim", "--compare", "policy=none"}, "needs an in-process target"},
		{[]string{"--warmup", "-1s"}, "must not be negative"},
		{[]string{"--input", filepath.Join(t.TempDir(), "missing.json")}, "read --input"},
		{[]string{"--config", path}, "has 2 runners: choose one with --runner (sim, sentiment)"},
		{[]string{"--config", path, "--runner", "nope"}, `has no runner "nope"`},
		{[]string{"--config", path, "--runner", "sim", "--method", "nope"}, `runner "sim" has no method "nope" (methods: predict)`},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			_, err := runBenchCmd(t, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error saying %q", err, c.want)
			}
		})
	}
}

// TestBenchDeadPort: a URL where nothing listens is said to be so, with or
// without a body, not answered with advice about --input.
func TestBenchDeadPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the port is now one where nothing listens
	input := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(input, []byte("[[1, 2]]"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"--input", input}} {
		args := append([]string{"--url", "http://" + addr + "/predict"}, short...)
		_, err := runBenchCmd(t, append(args, extra...)...)
		if err == nil || !strings.Contains(err.Error(), "nothing is listening at "+addr) || strings.Contains(err.Error(), "pass a request body") {
			t.Errorf("bench %v against a dead port: %v", extra, err)
		}
	}
	_, err = runBenchCmd(t, append([]string{"--url", "grpc://" + addr + "/sim"}, short...)...)
	if err == nil || !strings.Contains(err.Error(), "nothing is listening at "+addr) || !strings.Contains(err.Error(), "gRPC port") {
		t.Errorf("bench against a dead gRPC port: %v", err)
	}
}
