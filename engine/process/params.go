package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/benchtop/benchtop/engine"
)

// Params are the init params of the "process" runnable.
type Params struct {
	// Command is the worker's argv, e.g. ["python3", "worker.py"]. A
	// relative program path is taken relative to Dir.
	Command []string `json:"command"`
	// Env is added to benchtop's own environment (and wins over it).
	// Values may be strings, numbers or booleans, as YAML writes them.
	Env map[string]any `json:"env,omitempty"`
	// Dir is the worker's working directory; empty means benchtop's.
	Dir string `json:"dir,omitempty"`
	// Init is handed to the worker in its handshake (the runnable's own
	// init params).
	Init map[string]any `json:"init,omitempty"`
	// HandshakeTimeoutMS bounds start-up: from starting the process to its
	// READY, which includes whatever the worker loads before it answers.
	HandshakeTimeoutMS int `json:"handshake_timeout_ms,omitempty"`
}

// DefaultHandshakeTimeout applies when handshake_timeout_ms is 0 or absent.
const DefaultHandshakeTimeout = 10 * time.Second

// ParseParams decodes p strictly (unknown keys are errors) and checks it
// without starting anything.
func ParseParams(p engine.Params) (Params, error) {
	var out Params
	if err := p.Decode(&out); err != nil {
		return out, err
	}
	var errs []error
	if len(out.Command) == 0 || out.Command[0] == "" {
		errs = append(errs, errors.New(`init params: command is required, e.g. ["python3", "worker.py"]`))
	}
	if out.HandshakeTimeoutMS < 0 {
		errs = append(errs, fmt.Errorf("init params: handshake_timeout_ms is %d: want 0 (default %v) or more", out.HandshakeTimeoutMS, DefaultHandshakeTimeout))
	}
	for _, k := range sortedKeys(out.Env) {
		if _, err := envString(k, out.Env[k]); err != nil {
			errs = append(errs, err)
		}
	}
	if out.Dir != "" {
		if st, err := os.Stat(out.Dir); err != nil {
			errs = append(errs, fmt.Errorf("init params: dir: %w", err))
		} else if !st.IsDir() {
			errs = append(errs, fmt.Errorf("init params: dir %q is not a directory", out.Dir))
		}
	}
	if len(errs) > 0 {
		return out, errors.Join(errs...)
	}
	if err := out.lookPath(); err != nil {
		return out, err
	}
	return out, nil
}

func (p Params) handshakeTimeout() time.Duration {
	if p.HandshakeTimeoutMS > 0 {
		return time.Duration(p.HandshakeTimeoutMS) * time.Millisecond
	}
	return DefaultHandshakeTimeout
}

// lookPath checks that the program exists, as exec would find it: on PATH
// for a bare name, relative to Dir for a relative path.
func (p Params) lookPath() error {
	prog := p.Command[0]
	if strings.ContainsRune(prog, filepath.Separator) {
		if !filepath.IsAbs(prog) && p.Dir != "" {
			prog = filepath.Join(p.Dir, prog)
		}
		st, err := os.Stat(prog)
		if err != nil {
			return fmt.Errorf("init params: command: %w", err)
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("init params: command %q is not an executable file", prog)
		}
		return nil
	}
	if _, err := exec.LookPath(prog); err != nil {
		return fmt.Errorf("init params: command: %w (is it installed and on PATH?)", err)
	}
	return nil
}

// key identifies params for the cache of described methods: JSON marshals
// maps with sorted keys, so equal params give equal keys.
func (p Params) key() string {
	b, err := json.Marshal(p)
	if err != nil {
		// Params came from JSON, so they marshal; this is only a fallback.
		return fmt.Sprint(p)
	}
	return string(b)
}

// threadEnv are the variables that size the thread pools of the usual
// numeric libraries, as BentoML sets them for each worker: OpenMP, OpenBLAS,
// MKL, Accelerate, numexpr, Rayon (Hugging Face tokenizers) and TensorFlow.
var threadEnv = []string{
	"BENCHTOP_NUM_THREADS",
	"OMP_NUM_THREADS",
	"OPENBLAS_NUM_THREADS",
	"MKL_NUM_THREADS",
	"VECLIB_MAXIMUM_THREADS",
	"NUMEXPR_NUM_THREADS",
	"RAYON_RS_NUM_CPUS",
	"TF_NUM_INTEROP_THREADS",
	"TF_NUM_INTRAOP_THREADS",
}

// protocolEnv tells a worker SDK it runs under benchtop, so it can claim
// stdout for the protocol as early as it is imported. Its value is the
// newest protocol benchtop speaks; the version itself is agreed in HELLO
// and READY.
const protocolEnv = "BENCHTOP_WORKER_PROTOCOL"

// workerEnv builds a worker's environment: benchtop's own, then the thread
// counts, then the user's env, then CUDA_VISIBLE_DEVICES for its GPUs. cvd
// is the engine's value for the GPUs (engine.Env.CUDAVisibleDevices); when
// it is empty the GPU indices are mapped through benchtop's own
// CUDA_VISIBLE_DEVICES, as CUDA numbers them (with "2,3", GPU 1 is "3").
func workerEnv(parent []string, p Params, threads int, gpus []int, cvd string) ([]string, error) {
	env := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := env[k]; !ok {
			order = append(order, k)
		}
		env[k] = v
	}
	for _, kv := range parent {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k != "" {
			set(k, v)
		}
	}
	if len(gpus) > 0 {
		if _, ok := p.Env["CUDA_VISIBLE_DEVICES"]; ok {
			return nil, fmt.Errorf("env sets CUDA_VISIBLE_DEVICES while benchtop places this worker on GPUs %v: "+
				"choose GPUs with resources (nvidia.com/gpu: [ids]) and drop the variable", gpus)
		}
		if cvd == "" {
			var err error
			if cvd, err = visibleDevices(env, gpus); err != nil {
				return nil, err
			}
		}
	}
	if threads > 0 {
		for _, k := range threadEnv {
			set(k, strconv.Itoa(threads))
		}
	}
	for _, k := range sortedKeys(p.Env) {
		v, err := envString(k, p.Env[k])
		if err != nil {
			return nil, err
		}
		set(k, v)
	}
	if cvd != "" {
		set("CUDA_VISIBLE_DEVICES", cvd)
	}
	set(protocolEnv, strconv.Itoa(maxProtocol))
	out := make([]string, len(order))
	for i, k := range order {
		out[i] = k + "=" + env[k]
	}
	return out, nil
}

func visibleDevices(env map[string]string, gpus []int) (string, error) {
	user, restricted := env["CUDA_VISIBLE_DEVICES"]
	var visible []string
	if restricted {
		for _, d := range strings.Split(user, ",") {
			if d = strings.TrimSpace(d); d != "" {
				visible = append(visible, d)
			}
		}
	}
	ids := make([]string, len(gpus))
	for i, g := range gpus {
		switch {
		case g < 0:
			return "", fmt.Errorf("gpu index %d is negative", g)
		case !restricted:
			ids[i] = strconv.Itoa(g)
		case g >= len(visible):
			return "", fmt.Errorf("gpu %d was assigned but CUDA_VISIBLE_DEVICES=%q makes only %d visible", g, user, len(visible))
		default:
			ids[i] = visible[g]
		}
	}
	return strings.Join(ids, ","), nil
}

func envString(k string, v any) (string, error) {
	if k == "" || strings.ContainsAny(k, "=\x00") {
		return "", fmt.Errorf("init params: env name %q: want a name without '=' or NUL", k)
	}
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		s = strconv.FormatBool(x)
	default:
		return "", fmt.Errorf("init params: env %s: want a string, number or boolean, not %T", k, v)
	}
	if strings.ContainsRune(s, 0) {
		return "", fmt.Errorf("init params: env %s contains a NUL byte", k)
	}
	return s, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
