package cli

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/benchtop/benchtop/watcher"
)

// TestRunnerServer runs serve --runners sim over a config of two runners
// and two APIs, on a real socket: only sim is served, over v2, with no API;
// health and metrics answer as always; a reload of the file reaches sim and
// still leaves the other runner out.
func TestRunnerServer(t *testing.T) {
	path := writeConfig(t, metricsConfig)
	f := testFlags(path)
	f.runners = []string{"sim"}
	st := runTestStack(t, &f)
	url := st.URL()

	for _, c := range []struct {
		path string
		want int
	}{
		{"/livez", http.StatusOK},
		{"/readyz", http.StatusOK},
		{"/v2/health/ready", http.StatusOK},
		{"/v2/models/sim/ready", http.StatusOK},
		{"/v2/models/sentiment", http.StatusNotFound},
		{"/metrics", http.StatusOK},
	} {
		if got := get(t, url+c.path); got != c.want {
			t.Errorf("GET %s: %d, want %d", c.path, got, c.want)
		}
	}
	post(t, url+"/v2/models/sim/infer", "application/json",
		`{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}`)
	resp, err := http.Post(url+"/predict", "application/json", strings.NewReader("[[1, 2]]"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /predict on a runner server: %d, want 404 (no APIs)", resp.StatusCode)
	}
	if left := seriesOf(scrape(t, url), "sentiment"); len(left) > 0 {
		t.Errorf("the runner not served has series: %s", strings.Join(left, ", "))
	}

	statuses := make(chan watcher.Status, 4)
	st.reloader.Subscribe(statuses)
	edited := strings.Replace(metricsConfig, "    workers: 1\n", "    workers: 1\n    batching: {max_batch_size: 7}\n", 1)
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	select {
	case s := <-statuses:
		if !s.OK {
			t.Fatalf("reload refused: %s", s.Err)
		}
	case <-ctx.Done():
		t.Fatal("no reload after the config changed")
	}
	cfg := st.reloader.Current().Plan.Config()
	if len(cfg.Runners) != 1 || cfg.Runners[0].Name != "sim" || cfg.Runners[0].Batching.MaxBatchSize != 7 {
		t.Errorf("after the reload: %+v, want sim alone with max_batch_size 7", cfg.Runners)
	}
}

// TestRunnerServerUnknownName: a name the config lacks stops serve before
// it binds, naming the config's runners.
func TestRunnerServerUnknownName(t *testing.T) {
	f := testFlags(writeConfig(t, metricsConfig))
	f.runners = []string{"sim", "simm"}
	err := runStack(t.Context(), &f, slog.New(slog.NewTextHandler(io.Discard, nil)), func(context.Context, *stack) error {
		t.Error("the front end ran")
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), `runner "simm" is not in this config: its runners are sim, sentiment`) {
		t.Fatalf("got %v", err)
	}
	if _, err := runnerNames([]string{" ", ""}); err == nil || !strings.Contains(err.Error(), "--runners: name at least one runner") {
		t.Errorf("empty --runners: %v", err)
	}
}

// runTestStack runs the stack that serve runs with f until the test ends.
func runTestStack(t *testing.T, f *engineFlags) *stack {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	up := make(chan *stack)
	done := make(chan error, 1)
	go func() {
		done <- runStack(ctx, f, logger, func(ctx context.Context, st *stack) error {
			up <- st
			<-ctx.Done()
			return nil
		})
	}()
	select {
	case st := <-up:
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
		return st
	case err := <-done:
		cancel()
		t.Fatal(err)
	}
	return nil
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
