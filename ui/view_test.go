package ui

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/muesli/termenv"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/watcher"
)

func TestMain(m *testing.M) {
	// Golden files hold plain text: pin the colour profile.
	lipgloss.SetColorProfile(termenv.Ascii)
	os.Exit(m.Run())
}

var at = time.Date(2026, 11, 25, 12, 3, 41, 0, time.UTC)

// fixedSnapshot is a busy sim runner beside idle ones.
func fixedSnapshot() Snapshot {
	predict := engine.MethodSpec{Name: "predict", Batchable: true,
		Inputs:  []tensor.IOSpec{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, -1}}},
		Outputs: []tensor.IOSpec{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, -1}}}}
	isPositive := engine.MethodSpec{Name: "is_positive",
		Inputs: []tensor.IOSpec{{Kind: tensor.KindText}}, Outputs: []tensor.IOSpec{{Kind: tensor.KindJSON}}}
	hist := make([]engine.SecondStats, 60)
	for i := range hist {
		hist[i] = engine.SecondStats{Requests: uint64(100 * (i % 12)), MaxQueue: i % 7}
	}
	var sizes [14]uint64
	sizes[3], sizes[4], sizes[5] = 10, 20, 970
	sim := engine.RunnerStats{Name: "sim", Runnable: "sim", Workers: 1, Ready: 1, Threads: 1,
		WorkerList: []engine.WorkerInfo{{ID: 0, Ready: true, GPUs: []int{0, 1}, PID: 4242}, {ID: 1}},
		Methods: []engine.MethodStats{{
			Spec:     predict,
			Batching: batcher.Config{Policy: batcher.Adaptive, MaxBatchSize: 64, MaxLatency: 100 * time.Millisecond},
			Queue:    batcher.Stats{Depth: 41},
			Totals:   map[string]uint64{"ok": 90000, "overloaded": 3},
			Window: engine.WindowStats{
				RequestsPerS: 7512, ErrorsPerS: 0.6, MeanBatchRows: 58.3, MeanBatchRequests: 58.3, BatchSizes: sizes,
				E2E:     engine.Percentiles{P50: 8100 * time.Microsecond, P90: 10200 * time.Microsecond, P99: 12400 * time.Microsecond},
				Queue:   engine.Percentiles{P50: 4 * time.Millisecond, P90: 5900 * time.Microsecond, P99: 7700 * time.Microsecond},
				Exec:    engine.Percentiles{P50: 8400 * time.Microsecond, P90: 8500 * time.Microsecond, P99: 8700 * time.Microsecond},
				History: hist,
			},
		}}}
	sentiment := engine.RunnerStats{Name: "sentiment", Runnable: "sentiment", Workers: 2, Ready: 2, Threads: 1, Methods: []engine.MethodStats{{
		Spec: isPositive, Batching: batcher.Config{Policy: batcher.None, MaxBatchSize: 1},
		Totals: map[string]uint64{"ok": 120}, Window: engine.WindowStats{RequestsPerS: 120, E2E: engine.Percentiles{P50: 200 * time.Microsecond, P99: 900 * time.Microsecond}},
	}}}
	broken := engine.RunnerStats{Name: "mlp", Runnable: "onnx", Workers: 1, Ready: 0, StartError: "onnx runtime library not found: run scripts/install-onnxruntime.sh",
		Methods: []engine.MethodStats{{Spec: predict, Batching: batcher.Config{Policy: batcher.Adaptive, MaxBatchSize: 128, MaxLatency: 20 * time.Millisecond}, Totals: map[string]uint64{}}}}
	return Snapshot{
		Taken: at, URL: "http://127.0.0.1:3000",
		Config:  ConfigInfo{Path: "samples/benchtop.yaml", Editable: true, OK: true, LastReload: at},
		Runners: []engine.RunnerStats{sim, sentiment, broken},
		Events: []engine.Event{
			{Seq: 1, Time: at.Add(-29 * time.Second), Level: slog.LevelWarn, Runner: "py-sentiment", Message: "worker 1 crashed; restarting it"},
			{Seq: 2, Time: at, Level: slog.LevelInfo, Message: "config reloaded: sim: predict batching max_batch_size 32 → 64"},
		},
		GPU: GPUInfo{Message: "No NVIDIA GPU found (NVML: library not found)"},
	}
}

// fakeBackend serves a fixed snapshot; views are what is under test.
type fakeBackend struct {
	snap    Snapshot
	applied []string
}

func (f *fakeBackend) Snapshot() Snapshot { return f.snap }
func (f *fakeBackend) SetBatching(r, m string, c batcher.Config) error {
	f.applied = append(f.applied, r+"."+m)
	return nil
}
func (f *fakeBackend) SetWorkers(string, int) error { return nil }
func (f *fakeBackend) Save(watcher.Tweak) error     { return errors.New("embedded config") }
func (f *fakeBackend) Targets() []Target {
	return []Target{{API: "predict", Runner: "sim", Method: "predict", Input: engine.IONDArray, Spec: f.snap.Runners[0].Methods[0].Spec}}
}
func (f *fakeBackend) Send(context.Context, Target, string) Result {
	t, _ := tensor.NewTensor([]int{1, 2}, []float32{2, 4})
	return Result{Output: formatValue(tensor.TensorValue(t)), Latency: 8300 * time.Microsecond,
		Info: engine.CallInfo{BatchRows: 37, BatchRequests: 37, Queued: 3100 * time.Microsecond, Exec: 5200 * time.Microsecond}}
}

// drive applies messages to a model synchronously, running the commands
// that answer at once (sends, flashes), so a view can be pinned.
func drive(m tea.Model, msgs ...tea.Msg) tea.Model {
	for _, msg := range msgs {
		var cmd tea.Cmd
		m, cmd = m.Update(msg)
		if cmd != nil {
			switch r := cmd().(type) {
			case sendResultMsg, flashMsg:
				m, _ = m.Update(r)
			}
		}
	}
	return m
}

func keyMsg(s string) tea.KeyMsg {
	switch s {
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	case "down":
		return tea.KeyMsg{Type: tea.KeyDown}
	case "right":
		return tea.KeyMsg{Type: tea.KeyRight}
	case "ctrl+s":
		return tea.KeyMsg{Type: tea.KeyCtrlS}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}

func TestViews(t *testing.T) {
	refused := fixedSnapshot()
	refused.Config.OK = false
	refused.Config.Err = "samples/benchtop.yaml:7:20: runners[0].batching.max_batch_size: want an integer, got \"big\"\nmore"
	gpus := fixedSnapshot()
	gpus.GPU = GPUInfo{Available: true, Devices: []GPUDevice{
		{Index: 0, Name: "NVIDIA H100 80GB HBM3", Util: 0.87, MemUsed: 40 << 30, MemTotal: 80 << 30, TempC: 61, PowerW: 412,
			Runners: []string{"mlp"}, Processes: []string{"benchtop (pid 4242) 38.2 GiB"}, UtilHist: []float64{0.2, 0.5, 0.8, 0.9, 0.87}},
	}}
	cases := []struct {
		name string
		snap Snapshot
		w, h int
		keys []string
	}{
		{"main 120x40 (broken runner first)", fixedSnapshot(), 120, 40, nil},
		{"main 80x24", fixedSnapshot(), 80, 24, nil},
		{"second runner selected", fixedSnapshot(), 120, 40, []string{"down"}},
		{"busy runner selected", fixedSnapshot(), 120, 40, []string{"down", "down"}},
		{"reload refused", refused, 120, 40, nil},
		{"sorted by rate", fixedSnapshot(), 120, 30, []string{"s"}},
		{"batching panel", fixedSnapshot(), 120, 40, []string{"b", "down", "right"}},
		{"batching applied", fixedSnapshot(), 120, 40, []string{"b", "down", "1", "2", "8", "enter"}},
		{"test input with result", fixedSnapshot(), 120, 40, []string{"t", "ctrl+s"}},
		{"load panel", fixedSnapshot(), 120, 40, []string{"l", "down", "right"}},
		{"gpu none", fixedSnapshot(), 120, 40, []string{"g"}},
		{"gpu present", gpus, 120, 40, []string{"g"}},
		{"help", fixedSnapshot(), 120, 40, []string{"?"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var m tea.Model = New(&fakeBackend{snap: c.snap})
			msgs := []tea.Msg{tea.WindowSizeMsg{Width: c.w, Height: c.h}, snapshotMsg(c.snap)}
			for _, k := range c.keys {
				msgs = append(msgs, keyMsg(k))
			}
			m = drive(m, msgs...)
			view := m.View()
			if got := lipgloss.Height(view); got != c.h {
				t.Errorf("view is %d lines, want the terminal's %d", got, c.h)
			}
			if got := lipgloss.Width(view); got > c.w {
				t.Errorf("view is %d columns, wider than the terminal's %d", got, c.w)
			}
			golden.RequireEqual(t, []byte(view))
		})
	}
}
