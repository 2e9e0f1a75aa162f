package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/benchtop/benchtop/batcher"
)

// Setting is one knob and its value, named as in the config file.
type Setting struct{ Key, Value string }

// Variant is one combination of settings compared against the others.
type Variant []Setting

func (v Variant) String() string {
	parts := make([]string, len(v))
	for i, s := range v {
		parts[i] = s.Key + "=" + s.Value
	}
	return strings.Join(parts, ",")
}

// CompareKeys are the knobs Compare can vary, as the config file names them.
var CompareKeys = []string{"policy", "max_batch_size", "max_latency_ms", "batch_wait_ms", "max_queue_size", "workers"}

// ParseCompare reads KEY=V1,V2,… specs (e.g. "policy=none,fixed,adaptive");
// several specs give every combination, the first varying slowest.
func ParseCompare(specs []string) ([]Variant, error) {
	if len(specs) == 0 {
		return nil, errors.New("--compare: nothing to compare; give KEY=V1,V2,…")
	}
	variants := []Variant{nil}
	seen := map[string]bool{}
	for _, spec := range specs {
		key, list, ok := strings.Cut(spec, "=")
		key = strings.TrimSpace(key)
		if !ok || list == "" {
			return nil, fmt.Errorf("--compare %q: want KEY=V1,V2,… such as policy=none,fixed,adaptive", spec)
		}
		if seen[key] {
			return nil, fmt.Errorf("--compare %q: %s is compared twice; list all its values in one flag", spec, key)
		}
		seen[key] = true
		var next []Variant
		for val := range strings.SplitSeq(list, ",") {
			s := Setting{key, strings.TrimSpace(val)}
			if _, _, err := s.apply(batcher.DefaultConfig(), 0); err != nil {
				return nil, fmt.Errorf("--compare %q: %w", spec, err)
			}
			for _, v := range variants {
				next = append(next, append(v[:len(v):len(v)], s))
			}
		}
		variants = next
	}
	return variants, nil
}

// Apply sets the variant's knobs on cfg; workers is 0 unless it sets them.
func (v Variant) Apply(cfg batcher.Config) (batcher.Config, int, error) {
	workers := 0
	for _, s := range v {
		var err error
		if cfg, workers, err = s.apply(cfg, workers); err != nil {
			return cfg, 0, err
		}
	}
	return cfg, workers, cfg.Validate()
}

func (s Setting) apply(cfg batcher.Config, workers int) (batcher.Config, int, error) {
	num := func() (int, error) {
		n, err := strconv.Atoi(s.Value)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s=%q: want a whole number, 0 or more", s.Key, s.Value)
		}
		return n, nil
	}
	ms := func() (time.Duration, error) {
		f, err := strconv.ParseFloat(s.Value, 64)
		if err != nil || f < 0 {
			return 0, fmt.Errorf("%s=%q: want milliseconds, 0 or more", s.Key, s.Value)
		}
		return time.Duration(f * float64(time.Millisecond)), nil
	}
	var err error
	switch s.Key {
	case "policy":
		cfg.Policy, err = batcher.ParsePolicy(s.Value)
	case "max_batch_size":
		cfg.MaxBatchSize, err = num()
		if err == nil && cfg.MaxBatchSize < 1 {
			err = fmt.Errorf("max_batch_size=%s: want at least 1", s.Value)
		}
	case "max_latency_ms":
		cfg.MaxLatency, err = ms()
	case "batch_wait_ms":
		cfg.BatchWait, err = ms()
	case "max_queue_size":
		cfg.MaxQueueSize, err = num()
	case "workers":
		workers, err = num()
		if err == nil && workers < 1 {
			err = fmt.Errorf("workers=%s: want at least 1", s.Value)
		}
	default:
		err = fmt.Errorf("unknown setting %q: want one of %s", s.Key, strings.Join(CompareKeys, ", "))
	}
	return cfg, workers, err
}

// ErrCompareNeedsInProcess: Compare changes batching live, which only an
// in-process target can do.
var ErrCompareNeedsInProcess = errors.New("--compare changes the runner's batching between sweeps, which needs an in-process target (--config FILE --runner NAME --method NAME): the HTTP front end has no route to change batching")

// Compare runs the same sweep under each variant, applied live to the
// runner, and puts the runner back as it found it. A variant's sweep that
// the context ends returns what was measured so far with the error.
func Compare(ctx context.Context, t Target, variants []Variant, levels []Level, opts Options) (results []SweepResult, err error) {
	tt, ok := t.(Tunable)
	if !ok {
		return nil, ErrCompareNeedsInProcess
	}
	opts = opts.withDefaults()
	orig, origWorkers, err := tt.Batching()
	if err != nil {
		return nil, err
	}
	// Check every variant before the first sweep, not minutes into it.
	cfgs := make([]batcher.Config, len(variants))
	workers := make([]int, len(variants))
	for i, v := range variants {
		if cfgs[i], workers[i], err = v.Apply(orig); err != nil {
			return nil, fmt.Errorf("compare %s: %w", v, err)
		}
	}
	defer func() {
		// Restore even when ctx has ended: the runner outlives the bench.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if rerr := tt.SetBatching(rctx, orig, origWorkers); rerr != nil && err == nil {
			err = fmt.Errorf("restore batching: %w", rerr)
		}
	}()
	for i, v := range variants {
		if err := tt.SetBatching(ctx, cfgs[i], workers[i]); err != nil {
			return results, fmt.Errorf("compare %s: %w", v, err)
		}
		res, err := sweep(ctx, t, v.String(), levels, opts)
		results = append(results, res)
		if err != nil {
			return results, fmt.Errorf("compare %s: %w", v, err)
		}
	}
	return results, nil
}
