package process

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/benchtop/benchtop/engine"
)

func TestParseParams(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "worker")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "data.txt")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		p    engine.Params
		want string // "" for success
	}{
		{"minimal", engine.Params{"command": []any{"sh"}}, ""},
		{"everything", engine.Params{"command": []any{"./worker", "--flag"}, "dir": dir, "env": map[string]any{"A": "b", "N": 4.0, "B": true},
			"init": map[string]any{"threshold": 0.5}, "handshake_timeout_ms": 2500.0}, ""},
		{"absolute", engine.Params{"command": []any{exe}}, ""},
		{"unknown key", engine.Params{"command": []any{"sh"}, "comand": 1}, `unknown field "comand"`},
		{"no command", engine.Params{}, "command is required"},
		{"empty program", engine.Params{"command": []any{""}}, "command is required"},
		{"not on PATH", engine.Params{"command": []any{"no-such-program-xyz"}}, "is it installed and on PATH?"},
		{"missing file", engine.Params{"command": []any{"./nope"}, "dir": dir}, "no such file"},
		{"not executable", engine.Params{"command": []any{plain}}, "is not an executable file"},
		{"negative timeout", engine.Params{"command": []any{"sh"}, "handshake_timeout_ms": -1.0}, "handshake_timeout_ms is -1"},
		{"env object", engine.Params{"command": []any{"sh"}, "env": map[string]any{"X": map[string]any{}}}, "env X: want a string, number or boolean"},
		{"env name", engine.Params{"command": []any{"sh"}, "env": map[string]any{"A=B": "c"}}, `env name "A=B"`},
		{"dir missing", engine.Params{"command": []any{"sh"}, "dir": filepath.Join(dir, "nope")}, "dir:"},
		{"dir is a file", engine.Params{"command": []any{"sh"}, "dir": plain}, "is not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseParams(tt.p)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	p, err := ParseParams(engine.Params{"command": []any{"sh"}})
	if err != nil || p.handshakeTimeout() != DefaultHandshakeTimeout {
		t.Errorf("default handshake timeout %v, %v", p.handshakeTimeout(), err)
	}
	p, _ = ParseParams(engine.Params{"command": []any{"sh"}, "handshake_timeout_ms": 1500.0})
	if p.handshakeTimeout() != 1500*time.Millisecond {
		t.Errorf("handshake timeout %v, want 1.5s", p.handshakeTimeout())
	}
}

func TestWorkerEnv(t *testing.T) {
	lookup := func(env []string, k string) (string, bool) {
		for _, kv := range env {
			if key, v, _ := strings.Cut(kv, "="); key == k {
				return v, true
			}
		}
		return "", false
	}
	tests := []struct {
		name    string
		parent  []string
		env     map[string]any
		threads int
		gpus    []int
		cvd     string
		want    map[string]string // "" means unset
		err     string
	}{
		{
			name: "threads", parent: []string{"PATH=/bin", "OMP_NUM_THREADS=16"}, threads: 2,
			want: map[string]string{"PATH": "/bin", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "2", "CUDA_VISIBLE_DEVICES": "", protocolEnv: "2"},
		},
		{
			name: "the user's env wins", parent: []string{"HOME=/root"}, threads: 2, env: map[string]any{"OMP_NUM_THREADS": 8.0, "HOME": "/tmp"},
			want: map[string]string{"OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "2", "HOME": "/tmp"},
		},
		{
			name: "no threads leaves them alone", parent: []string{"OMP_NUM_THREADS=16"},
			want: map[string]string{"OMP_NUM_THREADS": "16", "MKL_NUM_THREADS": ""},
		},
		{
			name: "gpus", gpus: []int{1, 0},
			want: map[string]string{"CUDA_VISIBLE_DEVICES": "1,0"},
		},
		{
			name: "gpus through the parent's restriction", parent: []string{"CUDA_VISIBLE_DEVICES=4,5,6"}, gpus: []int{2},
			want: map[string]string{"CUDA_VISIBLE_DEVICES": "6"},
		},
		{
			name: "the engine's placement wins", parent: []string{"CUDA_VISIBLE_DEVICES=4,5,6"}, gpus: []int{2}, cvd: "GPU-x",
			want: map[string]string{"CUDA_VISIBLE_DEVICES": "GPU-x"},
		},
		{
			name: "a runner's own restriction conflicts with placement", env: map[string]any{"CUDA_VISIBLE_DEVICES": "GPU-x, GPU-y"}, gpus: []int{1},
			err: "env sets CUDA_VISIBLE_DEVICES while benchtop places this worker on GPUs [1]",
		},
		{
			name: "a runner's own restriction without placement", env: map[string]any{"CUDA_VISIBLE_DEVICES": "1"},
			want: map[string]string{"CUDA_VISIBLE_DEVICES": "1"},
		},
		{
			name: "a gpu beyond the restriction", parent: []string{"CUDA_VISIBLE_DEVICES=3"}, gpus: []int{1},
			err: `gpu 1 was assigned but CUDA_VISIBLE_DEVICES="3" makes only 1 visible`,
		},
		{
			name: "no gpus leaves the user's choice", parent: []string{"CUDA_VISIBLE_DEVICES=3"},
			want: map[string]string{"CUDA_VISIBLE_DEVICES": "3"},
		},
		{
			name: "the protocol variable cannot be overridden", env: map[string]any{protocolEnv: "0"},
			want: map[string]string{protocolEnv: "2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := workerEnv(tt.parent, Params{Env: tt.env}, tt.threads, tt.gpus, tt.cvd)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tt.want {
				got, ok := lookup(env, k)
				if want == "" && ok {
					t.Errorf("%s=%q, want it unset", k, got)
				}
				if want != "" && got != want {
					t.Errorf("%s=%q, want %q", k, got, want)
				}
			}
			keys := make([]string, len(env))
			for i, kv := range env {
				keys[i], _, _ = strings.Cut(kv, "=")
			}
			if len(slices.Compact(slices.Sorted(slices.Values(keys)))) != len(keys) {
				t.Errorf("duplicate variables in %v", env)
			}
		})
	}
}
