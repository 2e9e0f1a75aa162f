package main

import (
	"bytes"
	"strings"
	"testing"
)

// Output of `go test -bench . -count=3` as go prints it, with the lines it
// must skip: headers, a benchmark's log, PASS, ok, a result on the line
// after its name.
const sample = `goos: linux
goarch: amd64
pkg: github.com/benchtop/benchtop/server
cpu: AMD EPYC
BenchmarkEchoAPIVsBareHandler-2   	       1	6032270828 ns/op	         0.7878 api/bare	     49761 api_req/s
BenchmarkEchoAPIVsBareHandler-2   	       1	6000000000 ns/op	         0.6400 api/bare	     40000 api_req/s
BenchmarkEchoAPIVsBareHandler-2   	       1	6100000000 ns/op	         0.7100 api/bare	     45000 api_req/s
--- BENCH: BenchmarkEchoAPIVsBareHandler-2
    bench_test.go:1: a log line with 3 numbers 4 in it
BenchmarkProtocolOverhead/64x256-2         	this benchmark printed something
    2000	     78283 ns/op	1674.34 MB/s	      5.1 x_copy
BenchmarkProtocolOverhead/64x256-2         	    2000	     70000 ns/op	1800 MB/s	      4.9 x_copy
BenchmarkProtocolOverhead/1x4-2            	    2000	     37618 ns/op	   0.85 MB/s	      2465 x_copy
BenchmarkOdd-2   	 10	 100 ns/op	 2 extra
BenchmarkOdd-2   	 10	 300 ns/op
--- FAIL: BenchmarkBroken-2
PASS
ok  	github.com/benchtop/benchtop/server	18.3s
`

func TestParse(t *testing.T) {
	benches, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range benches {
		names = append(names, b.name)
	}
	want := []string{"BenchmarkEchoAPIVsBareHandler-2", "BenchmarkProtocolOverhead/64x256-2", "BenchmarkProtocolOverhead/1x4-2", "BenchmarkOdd-2"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("benchmarks %q, want %q", names, want)
	}
	echo := benches[0]
	if echo.runs != 3 || strings.Join(echo.units, ",") != "ns/op,api/bare,api_req/s" {
		t.Errorf("echo: %d runs of %q, want 3 runs of ns/op, api/bare, api_req/s", echo.runs, echo.units)
	}
	if got := echo.vals["api/bare"]; len(got) != 3 || got[1] != 0.64 {
		t.Errorf("api/bare values %v", got)
	}
	if p := benches[1]; p.runs != 2 || p.vals["x_copy"][0] != 5.1 {
		t.Errorf("a result on the line after its name: %d runs, x_copy %v", p.runs, p.vals["x_copy"])
	}
	if o := benches[3]; o.runs != 2 || len(o.vals["extra"]) != 1 {
		t.Errorf("a metric one run lacks: %d runs, extra %v", o.runs, o.vals["extra"])
	}
}

func TestStats(t *testing.T) {
	tests := []struct {
		vals          []float64
		med, min, max float64
	}{
		{[]float64{3}, 3, 3, 3},
		{[]float64{0.79, 0.64, 0.71}, 0.71, 0.64, 0.79},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
		{[]float64{5, 5, 1, 5, 9}, 5, 1, 9},
	}
	for _, tc := range tests {
		med, lo, hi := stats(tc.vals)
		if med != tc.med || lo != tc.min || hi != tc.max {
			t.Errorf("stats(%v) = %v [%v–%v], want %v [%v–%v]", tc.vals, med, lo, hi, tc.med, tc.min, tc.max)
		}
	}
	v := []float64{3, 1, 2}
	stats(v)
	if v[0] != 3 {
		t.Errorf("stats sorted its argument: %v", v)
	}
}

func TestWrite(t *testing.T) {
	benches, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	write(&buf, benches)
	got := buf.String()
	for _, want := range []string{
		"| benchmark | runs | ns/op | api/bare | api_req/s |\n|---|--:|--:|--:|--:|\n" +
			"| `EchoAPIVsBareHandler-2` | 3 | 6032270828 [6000000000–6100000000] | 0.7100 [0.6400–0.7878] | 45000 [40000–49761] |\n\n",
		"| benchmark | runs | ns/op | MB/s | x_copy |\n|---|--:|--:|--:|--:|\n" +
			"| `ProtocolOverhead/64x256-2` | 2 | 74142 [70000–78283] | 1737 [1674–1800] | 5.000 [4.900–5.100] |\n" +
			"| `ProtocolOverhead/1x4-2` | 1 | 37618 [37618–37618] | 0.8500 [0.8500–0.8500] | 2465 [2465–2465] |\n\n",
		"| benchmark | runs | ns/op | extra |\n|---|--:|--:|--:|\n" +
			"| `Odd-2` | 2 | 200.0 [100.0–300.0] | 2.000 [2.000–2.000] (1 of 2 runs) |\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks\n%s\ngot:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Broken") {
		t.Errorf("a failed benchmark has no result, yet is in the table:\n%s", got)
	}
}

func TestNum(t *testing.T) {
	for x, want := range map[float64]string{
		0: "0", 116697: "116697", 999.96: "1000", 133.3: "133.3", 22.23: "22.23",
		1.006: "1.006", 0.7878: "0.7878", 0.03257: "0.03257", 0.00736: "0.007360", -2.5: "-2.500",
	} {
		if got := num(x); got != want {
			t.Errorf("num(%v) = %q, want %q", x, got, want)
		}
	}
}
