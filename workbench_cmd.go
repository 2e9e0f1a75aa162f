package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"github.com/benchtop/benchtop/ui"
)

// runWorkbench starts the engine and its HTTP port, and opens the terminal
// UI over them. Logs go to a file: the screen is the UI's.
func runWorkbench(cmd *cobra.Command, f *engineFlags, logPath string) error {
	if !term.IsTerminal(os.Stdout.Fd()) {
		return errors.New("the workbench needs a terminal; to run headless use `benchtop serve`")
	}
	logFile, err := openLog(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	logger := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return runStack(cmd.Context(), f, logger, func(ctx context.Context, st *stack) error {
		backend := &ui.EngineBackend{Engine: st.eng, Reloader: st.reloader, URL: st.URL(),
			GPU: func() ui.GPUInfo { return gpuInfo(st.gpus, st.eng) }}
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
