// Command benchstat summarises repeated runs of Go benchmarks: it reads the
// output of `go test -bench … -count=N` and writes, for each benchmark and
// each metric it reported, the median and the range [min–max] over the
// runs, as Markdown tables. scripts/bench.sh uses it so that the
// performance report quotes medians with their spread instead of one run.
// (A small, stdlib-only cousin of golang.org/x/perf's benchstat.)
//
// Usage: go run ./scripts/benchstat [FILE...]   (stdin when no file)
//
// A benchmark line is the name, the iteration count, then value-unit
// pairs; other lines are ignored. A name printed alone (a benchmark that
// logged before its result) is joined to the result line that follows.
// It exits 1 when the input holds no benchmark result.
package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

func main() {
	var in io.Reader = os.Stdin
	if len(os.Args) > 1 {
		var rs []io.Reader
		for _, name := range os.Args[1:] {
			f, err := os.Open(name)
			if err != nil {
				fmt.Fprintln(os.Stderr, "benchstat:", err)
				os.Exit(2)
			}
			defer f.Close()
			rs = append(rs, f)
		}
		in = io.MultiReader(rs...)
	}
	benches, err := parse(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchstat:", err)
		os.Exit(2)
	}
	if len(benches) == 0 {
		fmt.Fprintln(os.Stderr, "benchstat: no benchmark results in the input")
		os.Exit(1)
	}
	write(os.Stdout, benches)
}

// bench is one benchmark's results over its runs.
type bench struct {
	name  string
	runs  int
	units []string             // in the order first reported
	vals  map[string][]float64 // unit → one value per run that reported it
}

// parse reads go test output and returns the benchmarks in the order they
// first appear.
func parse(r io.Reader) ([]*bench, error) {
	var out []*bench
	byName := map[string]*bench{}
	pending := "" // a name printed without its result yet
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case strings.HasPrefix(f[0], "Benchmark"):
			pending = ""
			if !add(&out, byName, f[0], f[1:]) {
				pending = f[0] // its result comes on a later line
			}
		case pending != "" && add(&out, byName, pending, f):
			pending = ""
		}
	}
	return out, sc.Err()
}

// add records one result line (iterations, then value-unit pairs) for
// name; it reports whether fields were such a line.
func add(out *[]*bench, byName map[string]*bench, name string, fields []string) bool {
	if len(fields) < 3 || len(fields)%2 != 1 {
		return false
	}
	if _, err := strconv.ParseInt(fields[0], 10, 64); err != nil {
		return false
	}
	vals := map[string]float64{}
	var units []string
	for i := 1; i+1 < len(fields); i += 2 {
		v, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			return false
		}
		units = append(units, fields[i+1])
		vals[fields[i+1]] = v
	}
	b := byName[name]
	if b == nil {
		b = &bench{name: name, vals: map[string][]float64{}}
		byName[name] = b
		*out = append(*out, b)
	}
	b.runs++
	for _, u := range units {
		if _, ok := b.vals[u]; !ok {
			b.units = append(b.units, u)
		}
		b.vals[u] = append(b.vals[u], vals[u])
	}
	return true
}

// stats are the median and range of values.
func stats(vals []float64) (median, lo, hi float64) {
	s := slices.Clone(vals)
	slices.Sort(s)
	n := len(s)
	median = s[n/2]
	if n%2 == 0 {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return median, s[0], s[n-1]
}

// write prints one Markdown table per run of consecutive benchmarks that
// report the same metrics: a row per benchmark, a column per metric, each
// cell the median with the range, "0.7722 [0.7076–0.8090]".
func write(w io.Writer, benches []*bench) {
	for i, b := range benches {
		if i == 0 || !slices.Equal(b.units, benches[i-1].units) {
			if i > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "| benchmark | runs | %s |\n", strings.Join(b.units, " | "))
			fmt.Fprintf(w, "|---|--:|%s\n", strings.Repeat("--:|", len(b.units)))
		}
		fmt.Fprintf(w, "| `%s` | %d |", strings.TrimPrefix(b.name, "Benchmark"), b.runs)
		for _, u := range b.units {
			v := b.vals[u]
			med, lo, hi := stats(v)
			cell := fmt.Sprintf("%s [%s–%s]", num(med), num(lo), num(hi))
			if len(v) != b.runs {
				cell += fmt.Sprintf(" (%d of %d runs)", len(v), b.runs) // some runs did not report it
			}
			fmt.Fprintf(w, " %s |", cell)
		}
		fmt.Fprintln(w)
	}
}

// num formats as go test does: about four significant digits, whole
// numbers from 1000 up.
func num(x float64) string {
	var prec int
	switch y := math.Abs(x); {
	case y == 0 || y >= 999.95:
		prec = 0
	case y >= 99.995:
		prec = 1
	case y >= 9.9995:
		prec = 2
	case y >= 0.99995:
		prec = 3
	case y >= 0.099995:
		prec = 4
	case y >= 0.0099995:
		prec = 5
	case y >= 0.00099995:
		prec = 6
	default:
		prec = 7
	}
	return strconv.FormatFloat(x, 'f', prec, 64)
}
