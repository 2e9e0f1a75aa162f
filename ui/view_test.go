package ui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/muesli/termenv"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/remote"
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
	sizes[4], sizes[5], sizes[6] = 10, 20, 970 // 9-16, 17-32, 33-64
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
		GPU:  GPUInfo{Message: "No NVIDIA GPU found (NVML: library not found)"},
		APIs: fixedAPIs(predict, isPositive),
	}
}

// fixedAPIs are an API of each form: a method, a Go function, a pipeline of
// two steps at once, and a chain whose second step's runner (mlp) has no
// worker ready.
func fixedAPIs(predict, isPositive engine.MethodSpec) []APIInfo {
	texts := tensor.IOSpecs{{Name: "texts", Kind: tensor.KindTensor, DType: tensor.String, Shape: []int{-1}}}
	fromTexts := []engine.Binding{{Name: "texts", From: "$input.texts"}}
	specs := []engine.APISpec{
		{Name: "analysis", Func: "sentiment-analysis", Runners: map[string]string{"model": "sentiment"},
			Input: engine.IOText, Output: engine.IOJSON, Inputs: isPositive.Inputs, Outputs: isPositive.Outputs},
		{Name: "compare", Func: "sentiment-compare", Runners: map[string]string{"lenient": "sentiment", "strict": "sentiment"},
			Input: engine.IOText, Output: engine.IOObject, Inputs: tensor.IOSpecs{{Name: "text", Kind: tensor.KindText}},
			Outputs: tensor.IOSpecs{{Name: "lenient", Kind: tensor.KindJSON}, {Name: "strict", Kind: tensor.KindJSON}}},
		{Name: "judge", Input: engine.IOObject, Output: engine.IOObject, Inputs: texts,
			Steps: []engine.StepSpec{
				{Name: "lenient", Runner: "sentiment", Method: "classify", Inputs: fromTexts},
				{Name: "strict", Runner: "sentiment", Method: "classify", Inputs: fromTexts},
			},
			Returns: []engine.Binding{{Name: "lenient", From: "lenient.positive"}, {Name: "strict", From: "strict.positive"}, {Name: "scores", From: "lenient.scores"}},
			Outputs: tensor.IOSpecs{
				{Name: "lenient", Kind: tensor.KindTensor, DType: tensor.Bool, Shape: []int{-1}},
				{Name: "strict", Kind: tensor.KindTensor, DType: tensor.Bool, Shape: []int{-1}},
				{Name: "scores", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1}},
			}},
		{Name: "predict", Runner: "sim", Method: "predict", Input: engine.IONDArray, Output: engine.IONDArray, Inputs: predict.Inputs, Outputs: predict.Outputs},
		{Name: "rerank", Input: engine.IONDArray, Output: engine.IONDArray,
			Inputs: tensor.IOSpecs{{Name: "x", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, -1}}},
			Steps: []engine.StepSpec{
				{Name: "embed", Runner: "sim", Method: "predict", Inputs: []engine.Binding{{Name: "input", From: "$input.x"}}},
				{Name: "score", Runner: "mlp", Method: "predict", Inputs: []engine.Binding{{Name: "input", From: "embed.output"}}},
			},
			Returns: []engine.Binding{{Name: "y", From: "score.output"}},
			Outputs: tensor.IOSpecs{{Name: "y", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, -1}}}},
	}
	roles := map[string][]APICall{
		"analysis": {{Name: "model", Runner: "sentiment", Method: "is_positive"}},
		"compare":  {{Name: "lenient", Runner: "sentiment", Method: "is_positive"}, {Name: "strict", Runner: "sentiment", Method: "is_positive"}},
	}
	out := make([]APIInfo, len(specs))
	for i, a := range specs {
		out[i] = APIInfo{Spec: a, Calls: roles[a.Name]}
		if out[i].Calls == nil {
			out[i].Calls = apiInfo(nil, a).Calls
		}
	}
	return out
}

// remoteSnapshot adds a remote runner, ranker, second by name, with one
// endpoint up and one down.
func remoteSnapshot() Snapshot {
	s := fixedSnapshot()
	predict := s.Runners[0].Methods[0].Spec
	var sizes [14]uint64
	sizes[0], sizes[1] = 300, 20
	ranker := engine.RunnerStats{Name: "ranker", Runnable: remote.TypeName, Workers: 64, Ready: 64, Threads: 64,
		Methods: []engine.MethodStats{{
			Spec:     predict,
			Batching: batcher.Config{Policy: batcher.Adaptive, MaxBatchSize: 32, BatchWait: time.Millisecond},
			Totals:   map[string]uint64{"ok": 51234, "error": 7},
			Window: engine.WindowStats{
				RequestsPerS: 640, MeanBatchRows: 1.1, MeanBatchRequests: 1.1, BatchSizes: sizes,
				E2E:     engine.Percentiles{P50: 4600 * time.Microsecond, P90: 6 * time.Millisecond, P99: 9800 * time.Microsecond},
				Queue:   engine.Percentiles{P50: 20 * time.Microsecond, P90: 40 * time.Microsecond, P99: 90 * time.Microsecond},
				Exec:    engine.Percentiles{P50: 4500 * time.Microsecond, P90: 5900 * time.Microsecond, P99: 9700 * time.Microsecond},
				History: s.Runners[0].Methods[0].Window.History,
			},
		}}}
	s.Runners = append(s.Runners, ranker)
	s.Remote = map[string]RemoteInfo{"ranker": {
		Model: "ranker",
		Endpoints: []remote.EndpointState{
			{Addr: "10.0.0.7:3001", Healthy: true, Outstanding: 3, Calls: 51234, Latency: 4200 * time.Microsecond},
			{Addr: "10.0.0.8:3001", LastError: `health check: connection error: desc = "transport: Error while dialing: dial tcp 10.0.0.8:3001: connect: connection refused"`,
				Calls: 812, Errors: 7, Latency: 5100 * time.Microsecond},
		},
		Batching: []remote.ServerBatching{{Method: "predict", Policy: "adaptive", MaxBatchSize: 64, MaxLatency: 100 * time.Millisecond, Workers: 2}},
	}}
	return s
}

// fakeBackend serves a fixed snapshot; views are what is under test.
type fakeBackend struct {
	snap    Snapshot
	applied []string
	saved   []watcher.Tweak
}

func (f *fakeBackend) Snapshot() Snapshot { return f.snap }
func (f *fakeBackend) SetBatching(r, m string, c batcher.Config) error {
	f.applied = append(f.applied, r+"."+m)
	return nil
}
func (f *fakeBackend) SetWorkers(r string, n int) error {
	f.applied = append(f.applied, fmt.Sprintf("%s workers %d", r, n))
	return nil
}
func (f *fakeBackend) Save(t watcher.Tweak) error {
	f.saved = append(f.saved, t)
	return errors.New("running the embedded sample config: start with --config FILE to save tweaks")
}
func (f *fakeBackend) Targets() []Target {
	var out []Target
	for _, a := range f.snap.APIs {
		out = append(out, apiTarget(a))
	}
	return out
}

// Send answers a pipeline with the breakdown of its two steps, anything
// else with a tensor out of one batch.
func (f *fakeBackend) Send(_ context.Context, t Target, _ string) Result {
	if t.API == "rerank" {
		err := fmt.Errorf(`api "rerank": step "score" (mlp.predict): %w: queue full`, engine.ErrOverloaded)
		return Result{Err: err, Latency: 9 * time.Millisecond, Steps: []engine.StepInfo{
			{Name: "embed", Runner: "sim", Method: "predict", Duration: 8900 * time.Microsecond,
				Info: engine.CallInfo{BatchRows: 64, BatchRequests: 60, Queued: 4 * time.Millisecond}},
			{Name: "score", Runner: "mlp", Method: "predict", Duration: 30 * time.Microsecond, Err: err},
		}}
	}
	if t.API == "judge" {
		return Result{Output: "lenient:\n[true]\nstrict:\n[false]\nscores:\n[0.6369]", Latency: 3600 * time.Microsecond,
			Steps: []engine.StepInfo{
				{Name: "lenient", Runner: "sentiment", Method: "classify", Duration: 1204 * time.Microsecond,
					Info: engine.CallInfo{BatchRows: 1, BatchRequests: 1, Queued: 40 * time.Microsecond}},
				{Name: "strict", Runner: "sentiment", Method: "classify", Duration: 3380 * time.Microsecond,
					Info: engine.CallInfo{BatchRows: 3, BatchRequests: 2, Queued: 2100 * time.Microsecond}},
			}}
	}
	vals := make([]float32, 64)
	for i := range vals {
		vals[i] = float32(i) / 4
	}
	out, _ := tensor.NewTensor([]int{8, 8}, vals)
	return Result{Output: formatValue(tensor.TensorValue(out)), Latency: 8300 * time.Microsecond,
		Info: engine.CallInfo{BatchRows: 37, BatchRequests: 1, Queued: 3100 * time.Microsecond, Exec: 5200 * time.Microsecond}}
}

// drive applies messages to a model synchronously. After keys it runs the
// commands that answer at once (a send, an apply, a note, a close) and
// feeds their messages back; timers and cursor blinks are not run.
func drive(m tea.Model, msgs ...tea.Msg) tea.Model {
	for _, msg := range msgs {
		var cmd tea.Cmd
		m, cmd = m.Update(msg)
		if _, isKey := msg.(tea.KeyMsg); isKey {
			m = runCmd(m, cmd, keyRunsCmd(msg.(tea.KeyMsg)))
		} else {
			switch msg := msg.(type) {
			case noteMsg, batchingDoneMsg, sendResultMsg:
				m = runCmd(m, cmd, true)
			case loadMsg:
				m = runCmd(m, cmd, !msg.ok) // while ok it waits on the load's channel
			}
		}
	}
	return m
}

// keyRunsCmd: keys whose command answers at once, without a timer.
func keyRunsCmd(k tea.KeyMsg) bool {
	switch k.String() {
	case "enter", "w", "ctrl+s", "esc":
		return true
	}
	return false
}

func runCmd(m tea.Model, cmd tea.Cmd, run bool) tea.Model {
	if cmd == nil || !run {
		return m
	}
	switch r := cmd().(type) {
	case tea.BatchMsg:
		for _, c := range r {
			m = runCmd(m, c, true)
		}
	case sendResultMsg, batchingDoneMsg, noteMsg:
		m = drive(m, r)
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
	case "up":
		return tea.KeyMsg{Type: tea.KeyUp}
	case "right":
		return tea.KeyMsg{Type: tea.KeyRight}
	case "pgdown":
		return tea.KeyMsg{Type: tea.KeyPgDown}
	case "ctrl+s":
		return tea.KeyMsg{Type: tea.KeyCtrlS}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}

// newTestModel is a workbench over a fake backend whose own events are
// stamped at a fixed time, so views can be pinned.
func newTestModel(b Backend) Model {
	m := New(b)
	m.clock = func() time.Time { return at }
	return m
}

// refusedLoad is the progress of a load the engine mostly refused.
func refusedLoad() []tea.Msg {
	p := loadProgress{Done: 2000, Refused: 1996, Total: 2000, Elapsed: 1200 * time.Millisecond,
		P50: 8100 * time.Microsecond, P99: 12 * time.Millisecond, Finished: true}
	return []tea.Msg{loadMsg{p: p, ok: true}, loadMsg{ok: false}}
}

// apiLoad is the progress of a load the engine served in full.
func apiLoad() []tea.Msg {
	p := loadProgress{Done: 2000, Total: 2000, Elapsed: 800 * time.Millisecond,
		P50: 3600 * time.Microsecond, P99: 9 * time.Millisecond, Finished: true}
	return []tea.Msg{loadMsg{p: p, ok: true}, loadMsg{ok: false}}
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
	embedded := fixedSnapshot()
	embedded.Config.Path, embedded.Config.Editable = "<embedded samples/benchtop.yaml>", false
	sim := []string{"down", "down"} // the busy runner, third by name
	cases := []struct {
		name string
		snap Snapshot
		keys []string
		msgs []tea.Msg // after the keys
	}{
		{"main", fixedSnapshot(), nil, nil},
		{"busy runner selected", fixedSnapshot(), sim, nil},
		{"filtered and sorted", fixedSnapshot(), []string{"s", "/", "i", "m", "enter"}, nil},
		{"reload refused", refused, nil, nil},
		{"embedded config", embedded, nil, nil},
		{"batching panel", fixedSnapshot(), append(sim, "b", "down", "right"), nil},
		{"batching applied", fixedSnapshot(), append(sim, "b", "down", "1", "2", "8", "enter"), nil},
		{"batching not saved", fixedSnapshot(), append(sim, "b", "w"), nil},
		{"test input", fixedSnapshot(), append(sim, "t"), nil},
		{"test input with result", fixedSnapshot(), append(sim, "t", "ctrl+s"), nil},
		{"test result scrolled", fixedSnapshot(), append(sim, "t", "ctrl+s", "pgdown"), nil},
		{"load panel", fixedSnapshot(), append(sim, "l", "down", "right", "down", "5", "0", "0"), nil},
		{"load mostly refused", fixedSnapshot(), append(sim, "l"), refusedLoad()},
		{"events", fixedSnapshot(), []string{"e", "down"}, nil},
		{"event opened", fixedSnapshot(), []string{"e", "down", "enter"}, nil},
		{"gpu none", fixedSnapshot(), []string{"g"}, nil},
		{"gpu present", gpus, []string{"g"}, nil},
		{"help", fixedSnapshot(), []string{"?"}, nil},
		{"help scrolled", fixedSnapshot(), []string{"?", "pgdown"}, nil},
		{"remote runner selected", remoteSnapshot(), []string{"down"}, nil},
		{"remote batching read-only", remoteSnapshot(), []string{"down", "b"}, nil},
		{"remote batching refuses a tweak", remoteSnapshot(), []string{"down", "b", "right", "w"}, nil},
		{"apis", fixedSnapshot(), []string{"a"}, nil},
		{"apis scrolled to the last", fixedSnapshot(), []string{"a", "down", "down", "down", "down"}, nil},
		{"apis paged down", fixedSnapshot(), []string{"a", "pgdown"}, nil},
		{"pipeline test input", fixedSnapshot(), []string{"a", "down", "down", "t", "ctrl+s"}, nil},
		{"pipeline step failed", fixedSnapshot(), []string{"a", "down", "down", "down", "down", "t", "ctrl+s"}, nil},
		{"load on a pipeline", fixedSnapshot(), []string{"a", "down", "down", "l"}, apiLoad()},
	}
	for _, c := range cases {
		for _, size := range []struct{ w, h int }{{80, 24}, {160, 48}} {
			t.Run(fmt.Sprintf("%s %dx%d", c.name, size.w, size.h), func(t *testing.T) {
				var m tea.Model = newTestModel(&fakeBackend{snap: c.snap})
				msgs := []tea.Msg{tea.WindowSizeMsg{Width: size.w, Height: size.h}, snapshotMsg(c.snap)}
				for _, k := range c.keys {
					msgs = append(msgs, keyMsg(k))
				}
				m = drive(m, append(msgs, c.msgs...)...)
				view := m.View()
				if got := lipgloss.Height(view); got != size.h {
					t.Errorf("view is %d lines, want the terminal's %d", got, size.h)
				}
				for i, l := range strings.Split(view, "\n") {
					if got := lipgloss.Width(l); got > size.w {
						t.Errorf("line %d is %d columns, wider than the terminal's %d: %q", i+1, got, size.w, l)
					}
				}
				golden.RequireEqual(t, []byte(view))
			})
		}
	}
}

// TestKeysInOneWrite: keys typed faster than the screen reads them reach
// bubbletea as one message of several runes ("jj", "s s"); each is
// handled, and a text field still takes them as text.
func TestKeysInOneWrite(t *testing.T) {
	runes := func(s string) tea.KeyMsg { return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)} }
	start := []tea.Msg{tea.WindowSizeMsg{Width: 80, Height: 24}, snapshotMsg(fixedSnapshot())}
	tests := []struct {
		name  string
		msgs  []tea.Msg
		check func(m Model) string
	}{
		{"jj moves down twice", []tea.Msg{runes("jj")}, func(m Model) string {
			return wantEq("selected", m.table.selected, "sim")
		}},
		{"s s sorts twice", []tea.Msg{runes("s s")}, func(m Model) string {
			return wantEq("sort", sortKeys[m.table.sortKey].name, "p99")
		}},
		{"digits typed at once in the load panel", []tea.Msg{runes("l"), keyMsg("down"), keyMsg("down"), runes("500"), keyMsg("up")}, func(m Model) string {
			return wantEq("requests", fmt.Sprint(m.load.count), "500")
		}},
		{"the filter takes them as text", []tea.Msg{runes("/"), runes("sim")}, func(m Model) string {
			return wantEq("filter", m.table.filter.Value(), "sim")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := drive(newTestModel(&fakeBackend{snap: fixedSnapshot()}), append(start, tc.msgs...)...).(Model)
			if msg := tc.check(m); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func wantEq(what, got, want string) string {
	if got != want {
		return fmt.Sprintf("%s is %q, want %q", what, got, want)
	}
	return ""
}

// TestResizeRelaysEverything: a workbench resized while running draws
// what one started at the new size draws.
func TestResizeRelaysEverything(t *testing.T) {
	for _, keys := range [][]string{nil, {"down", "down", "l"}, {"down", "down", "t", "ctrl+s"}, {"?"}} {
		t.Run(strings.Join(keys, " "), func(t *testing.T) {
			snap := fixedSnapshot()
			msgs := func(w, h int) []tea.Msg {
				out := []tea.Msg{tea.WindowSizeMsg{Width: w, Height: h}, snapshotMsg(snap)}
				for _, k := range keys {
					out = append(out, keyMsg(k))
				}
				return out
			}
			resized := drive(drive(newTestModel(&fakeBackend{snap: snap}), msgs(160, 48)...), tea.WindowSizeMsg{Width: 80, Height: 24})
			fresh := drive(newTestModel(&fakeBackend{snap: snap}), msgs(80, 24)...)
			if got, want := resized.View(), fresh.View(); got != want {
				t.Errorf("resized to 80×24:\n%s\nstarted at 80×24:\n%s", got, want)
			}
		})
	}
}

// TestHistogramKeepsBusyBucket: however few lines it has, the histogram
// shows the bucket where batches land, merging the empty ranges.
func TestHistogramKeepsBusyBucket(t *testing.T) {
	var sizes [14]uint64
	sizes[0], sizes[6] = 3, 970 // 1 and 33-64 of max 1024
	for n := 3; n <= 12; n++ {  // 1, 33-64 and the empty ranges between and above
		rows := histRows(sizes[:], 1024, n)
		if len(rows) > n {
			t.Fatalf("%d lines for %d", len(rows), n)
		}
		var total uint64
		busy := false
		for _, r := range rows {
			total += r.batches
			busy = busy || (r.label() == "33-64" && r.batches == 970)
		}
		if total != 973 || !busy {
			t.Errorf("%d lines: %+v: want every batch counted and 33-64 alone", n, rows)
		}
	}
}

// TestRemoteBatchingIsReadOnly: on a remote runner the batching panel's
// keys reach neither the engine nor the config file, and the panel says so.
func TestRemoteBatchingIsReadOnly(t *testing.T) {
	for _, keys := range [][]string{{"right"}, {"1", "6", "enter"}, {"a", "enter"}, {"down", "left", "w"}, {"w"}} {
		t.Run(strings.Join(keys, " "), func(t *testing.T) {
			fb := &fakeBackend{snap: remoteSnapshot()}
			msgs := []tea.Msg{tea.WindowSizeMsg{Width: 80, Height: 24}, snapshotMsg(fb.snap), keyMsg("down"), keyMsg("b")}
			for _, k := range keys {
				msgs = append(msgs, keyMsg(k))
			}
			m := drive(newTestModel(fb), msgs...).(Model)
			if m.batching.runner != "ranker" || m.panel != panelBatching {
				t.Fatalf("batching panel is on %q (open: %v), want ranker's", m.batching.runner, m.panel == panelBatching)
			}
			if len(fb.applied) > 0 || len(fb.saved) > 0 {
				t.Fatalf("a remote runner's knobs reached the backend: applied %q, saved %+v", fb.applied, fb.saved)
			}
			view := m.View()
			for _, want := range []string{"read-only", "nothing applied, nothing saved", "benchtop serve --runners ranker"} {
				if !strings.Contains(view, want) {
					t.Errorf("the panel does not say %q:\n%s", want, view)
				}
			}
			// The same keys on a local runner do reach it: the test can fail.
			local := &fakeBackend{snap: remoteSnapshot()}
			msgs[2] = keyMsg("up") // mlp
			drive(newTestModel(local), append(msgs, keyMsg("enter"))...)
			if len(local.applied) == 0 {
				t.Errorf("the keys %q applied nothing to a local runner either", keys)
			}
		})
	}
}

// TestEndpointChangesAreEvents: an endpoint that goes down between two
// snapshots is an event with its reason, and one that comes back another.
func TestEndpointChangesAreEvents(t *testing.T) {
	up := remoteSnapshot()
	down := remoteSnapshot()
	ri := down.Remote["ranker"]
	ri.Endpoints = append([]remote.EndpointState(nil), ri.Endpoints...)
	ri.Endpoints[0].Healthy, ri.Endpoints[0].LastError = false, "health check: NOT_SERVING"
	down.Remote = map[string]RemoteInfo{"ranker": ri}
	m := newTestModel(&fakeBackend{snap: up})
	clock := at
	m.clock = func() time.Time { clock = clock.Add(time.Second); return clock }
	m = drive(m, tea.WindowSizeMsg{Width: 160, Height: 48},
		snapshotMsg(up), snapshotMsg(up), snapshotMsg(down), snapshotMsg(down), snapshotMsg(up)).(Model)
	var got []string
	for _, ev := range m.events.merged() {
		if ev.Runner == "ranker" {
			got = append(got, ev.Level.String()+" "+ev.Message)
		}
	}
	want := []string{"INFO endpoint 10.0.0.7:3001 back up", "WARN endpoint 10.0.0.7:3001 down: NOT_SERVING (health check: NOT_SERVING)"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events of ranker:\n%s\nwant (newest first):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
