package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/golden"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/benchtop/benchtop/watcher"
)

const metricsConfig = `
runners:
  - name: sim
    runnable: sim
    init: {fixed_ms: 0, per_row_ms: 0}
    workers: 1
  - name: sentiment
    runnable: sentiment
    workers: 1
apis:
  - {name: predict, runner: sim, method: predict, input: ndarray, output: ndarray}
  - {name: analysis, runner: sentiment, method: is_positive, input: text, output: json}
`

// TestMetricsOverHTTP runs the stack that serve runs (GPU monitor, engine,
// reloader, HTTP server on one registry), scrapes /metrics over a real
// socket and compares every benchtop family — name, type, label names and
// help — with the golden file, so the exposition cannot drift unnoticed. A
// runner removed by a reload leaves no series behind.
func TestMetricsOverHTTP(t *testing.T) {
	st, path := serveConfig(t, metricsConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := st.URL()

	post(t, url+"/predict", "application/json", "[[1, 2]]")
	post(t, url+"/analysis", "text/plain", "it is good")
	mfs := scrape(t, url)
	var b strings.Builder
	for _, name := range sortedKeys(mfs) {
		// The GPU gauges appear only where NVML finds devices; package gpu
		// tests them against a fake NVML.
		if !strings.HasPrefix(name, "benchtop_") && !strings.HasPrefix(name, "sentiment_") || strings.HasPrefix(name, "benchtop_gpu_") {
			continue
		}
		mf := mfs[name]
		fmt.Fprintf(&b, "%s %s {%s} %s\n", name, mf.GetType(), strings.Join(labelNames(mf), ","), mf.GetHelp())
	}
	golden.RequireEqual(t, []byte(b.String()))
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if mfs[name] == nil {
			t.Errorf("metric %s missing", name)
		}
	}

	// Remove the sentiment runner and its API; wait for the reload.
	statuses := make(chan watcher.Status, 4)
	st.reloader.Subscribe(statuses)
	cut := metricsConfig[:strings.Index(metricsConfig, "  - name: sentiment")] + metricsConfig[strings.Index(metricsConfig, "apis:"):]
	cut = strings.ReplaceAll(cut, "  - {name: analysis, runner: sentiment, method: is_positive, input: text, output: json}\n", "")
	if err := os.WriteFile(path, []byte(cut), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-statuses:
		if !s.OK {
			t.Fatalf("reload refused: %s", s.Err)
		}
	case <-ctx.Done():
		t.Fatal("no reload after the config changed")
	}
	// A removed runner drains in the background and then drops its series:
	// scrape until they are gone.
	for {
		left := seriesOf(scrape(t, url), "sentiment")
		if len(left) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the removed runner still has series in %s", strings.Join(left, ", "))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// writeConfig writes config to a file of its own and points BENCHTOP_HOME
// (the model store) at a folder of the test's.
func writeConfig(t *testing.T, config string) string {
	t.Helper()
	t.Setenv("BENCHTOP_HOME", t.TempDir())
	path := filepath.Join(t.TempDir(), "benchtop.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// testFlags are serve's flags for config at path, on a free port.
func testFlags(path string) engineFlags {
	return engineFlags{config: path, host: "127.0.0.1", port: 0, maxBodyMB: 16, drainTimeout: 10 * time.Second, logFormat: "text"}
}

// serveConfig runs the stack that serve runs on config until the test ends,
// and returns it with the config file's path.
func serveConfig(t *testing.T, config string) (*stack, string) {
	t.Helper()
	path := writeConfig(t, config)
	f := testFlags(path)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	up := make(chan *stack)
	done := make(chan error, 1)
	go func() {
		done <- runStack(ctx, &f, logger, func(ctx context.Context, st *stack) error {
			up <- st
			<-ctx.Done()
			return nil
		})
	}()
	var st *stack
	select {
	case st = <-up:
	case err := <-done:
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return st, path
}

// TestStackRefusesToStart: a config that does not load, or a port already
// taken, stops the stack before it serves, with an error that says which.
func TestStackRefusesToStart(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	front := func(context.Context, *stack) error {
		t.Error("the front end ran")
		return nil
	}
	t.Run("broken config", func(t *testing.T) {
		f := testFlags(writeConfig(t, "runners:\n  - name: sim\n    runnable: nope\n"))
		err := runStack(t.Context(), &f, logger, front)
		if err == nil || !strings.Contains(err.Error(), "load config") || !strings.Contains(err.Error(), `unknown runnable "nope"`) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("port taken", func(t *testing.T) {
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		f := testFlags(writeConfig(t, metricsConfig))
		f.port = taken.Addr().(*net.TCPAddr).Port
		err = runStack(t.Context(), &f, logger, front)
		if err == nil || !strings.Contains(err.Error(), "listen on") || !strings.Contains(err.Error(), "try --port 0") {
			t.Fatalf("got %v", err)
		}
	})
}

// seriesOf lists the families with a series labelled runner=name.
func seriesOf(mfs map[string]*dto.MetricFamily, runner string) []string {
	var names []string
	for _, name := range sortedKeys(mfs) {
		for _, m := range mfs[name].GetMetric() {
			if slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == "runner" && l.GetValue() == runner }) {
				names = append(names, name)
				break
			}
		}
	}
	return names
}

func post(t *testing.T, url, contentType, body string) {
	t.Helper()
	resp, err := http.Post(url, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, b)
	}
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("metrics exposition does not parse: %v", err)
	}
	return mfs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// labelNames is the union of the label names of a family's series.
func labelNames(mf *dto.MetricFamily) []string {
	seen := map[string]bool{}
	var names []string
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if !seen[l.GetName()] {
				seen[l.GetName()] = true
				names = append(names, l.GetName())
			}
		}
	}
	slices.Sort(names)
	return names
}
