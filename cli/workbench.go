package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/spf13/cobra"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/gpu"
	"github.com/benchtop/benchtop/ui"
	"github.com/benchtop/benchtop/ui/console"
)

// runWorkbench starts the engine and its HTTP port, and opens the terminal
// UI over them. Logs go to a file: the screen is the UI's.
// Given no --config, it runs the user's copy of the sample config (made on
// first run, userConfig), so that `w` has a file to save tweaks into;
// sample runs the embedded one, read-only.
func runWorkbench(cmd *cobra.Command, f *engineFlags, logPath string, sample bool) error {
	if sample && f.config != "" {
		return errors.New("--sample and --config are alternatives: keep one")
	}
	if !console.IsTerminal(os.Stdout) {
		return errors.New("the workbench needs a terminal; to run headless use `benchtop serve`")
	}
	var note string
	if f.config == "" && !sample {
		path, made, err := userConfig()
		if err != nil {
			return err
		}
		f.config, note = path, userConfigNote(path, made)
		// The copy runs the sample models, imported on first use as for
		// the embedded config.
		f.sampleModels = true
		if made {
			// Also on the terminal, after the workbench's screen is gone.
			defer fmt.Fprintln(cmd.ErrOrStderr(), "benchtop: your config is "+path+" (a copy of the sample, made on first run)")
		}
	}
	logFile, err := openLog(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	logger := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return runStack(cmd.Context(), f, logger, func(ctx context.Context, st *stack) error {
		if note != "" {
			// The events pane is where the workbench says what happened.
			st.eng.Events().Add(slog.LevelInfo, "", note)
			logger.Info(note)
		}
		backend := &ui.EngineBackend{Engine: st.eng, Reloader: st.reloader, URL: st.URL(), GRPC: st.GRPCAddr(),
			GPU: func() ui.GPUInfo { return gpuInfo(st.gpus, st.eng) }, Remotes: st.remotes}
		_, err := tea.NewProgram(ui.New(backend), tea.WithAltScreen(), tea.WithContext(ctx)).Run()
		// Killed: the stack is stopping (ctx ended), and says why.
		if err != nil && !errors.Is(err, tea.ErrProgramKilled) && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("workbench: %w", err)
		}
		return nil
	})
}

func openLog(path string) (*os.File, error) {
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		path = filepath.Join(home, ".benchtop", "workbench.log")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}

// gpuInfo turns the monitor's latest readings into the workbench's GPU
// panel, with the runners whose workers sit on each device.
func gpuInfo(mon *gpu.Monitor, eng *engine.Engine) ui.GPUInfo {
	s := mon.Snapshot()
	if !s.Available() {
		msg := s.Message
		if msg == "" {
			msg = "GPU monitor: " + s.State.String()
		}
		return ui.GPUInfo{Message: msg}
	}
	workers := map[string][]gpu.Worker{}
	for _, r := range eng.Runners() {
		for _, w := range r.Stats(engine.StatsOptions{}).WorkerList {
			if len(w.GPUs) > 0 {
				workers[r.Name()] = append(workers[r.Name()], gpu.Worker{ID: w.ID, GPUs: w.GPUs, PID: w.PID})
			}
		}
	}
	on := gpu.RunnersOn(gpu.Join(s, s.Visible(os.LookupEnv), workers))
	hist := mon.History()
	info := ui.GPUInfo{Available: true}
	for _, d := range s.Devices {
		gd := ui.GPUDevice{
			Index: d.Index, Name: d.Name, Util: d.Utilization, MemUtil: d.MemoryUtilization,
			MemUsed: d.MemoryUsed, MemTotal: d.MemoryTotal, Runners: on[d.Index],
		}
		if d.HasTemperature {
			gd.TempC = d.TemperatureC
		}
		if d.HasPower {
			gd.PowerW = d.PowerW
		}
		for _, p := range d.Processes {
			name := p.Name
			if name == "" {
				name = "?"
			}
			entry := fmt.Sprintf("%s (pid %d)", name, p.PID)
			if p.HasMemory {
				entry += fmt.Sprintf(" %.1f GiB", float64(p.MemoryUsed)/(1<<30))
			}
			gd.Processes = append(gd.Processes, entry)
		}
		for _, h := range hist {
			if hd, ok := h.Device(d.Index); ok {
				gd.UtilHist = append(gd.UtilHist, hd.Utilization)
				if hd.MemoryTotal > 0 {
					gd.MemHist = append(gd.MemHist, float64(hd.MemoryUsed)/float64(hd.MemoryTotal))
				}
			}
		}
		info.Devices = append(info.Devices, gd)
	}
	return info
}
