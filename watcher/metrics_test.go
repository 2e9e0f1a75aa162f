package watcher

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// reloadMetrics reads the benchtop_config_* series from reg.
type reloadMetrics struct {
	reloadCounts
	timestamp float64
	info      map[string]float64 // "file hash" → value
}

// reloadCounts are the reloads by result and the success gauge.
type reloadCounts struct {
	applied, unchanged, refused, successful float64
}

func readReloadMetrics(t *testing.T, reg prometheus.Gatherer) reloadMetrics {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	m := reloadMetrics{info: map[string]float64{}}
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range s.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			switch mf.GetName() {
			case "benchtop_config_reloads_total":
				v := s.GetCounter().GetValue()
				switch l["result"] {
				case "applied":
					m.applied = v
				case "unchanged":
					m.unchanged = v
				case "refused":
					m.refused = v
				default:
					t.Fatalf("reload result %q", l["result"])
				}
			case "benchtop_config_last_reload_successful":
				m.successful = gaugeOf(s)
			case "benchtop_config_last_reload_success_timestamp_seconds":
				m.timestamp = gaugeOf(s)
			case "benchtop_config_info":
				m.info[l["file"]+" "+l["hash"]] = gaugeOf(s)
			}
		}
	}
	return m
}

func gaugeOf(s *dto.Metric) float64 { return s.GetGauge().GetValue() }

// unixSeconds is t as the timestamp gauge holds it.
func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// TestReloadMetrics: each reload is counted by result; the success gauge
// follows the last attempt (1, then 0 on a refusal, then 1 again), and the
// timestamp and the info series move only when a config is applied.
func TestReloadMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	before := time.Now()
	f := newFixtureWith(t, simConfig(8, 1, 0), Options{Registerer: reg})
	m := readReloadMetrics(t, reg)
	first := f.rl.Status().Hash[:12]
	wantCounts(t, "after the first load", m, reloadCounts{applied: 1, successful: 1})
	wantStamp(t, "the first load", m, before, time.Now())
	applied := m.timestamp
	wantInfo(t, m, f.path, first)

	// step writes body, reloads, and returns the metrics after it; a
	// reload that should be refused must be.
	step := func(body string, refused bool) reloadMetrics {
		t.Helper()
		if err := os.WriteFile(f.path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := f.rl.Reload(t.Context()); (err != nil) != refused {
			t.Fatalf("reload: %v, want refused %v", err, refused)
		}
		return readReloadMetrics(t, reg)
	}
	keptFirst := func(stage string, m reloadMetrics) {
		t.Helper()
		if m.timestamp != applied {
			t.Fatalf("%s: success timestamp %v, want the first load's %v", stage, m.timestamp, applied)
		}
		wantInfo(t, m, f.path, first)
	}

	// The same bytes: unchanged, still successful, nothing applied.
	m = step(simConfig(8, 1, 0), false)
	wantCounts(t, "after an unchanged reload", m, reloadCounts{applied: 1, unchanged: 1, successful: 1})
	keptFirst("after an unchanged reload", m)

	// A broken config: refused, unsuccessful; the timestamp and the info
	// still describe the config that serves.
	m = step(strings.Replace(simConfig(9, 1, 0), "max_batch_size: 9", "max_batch_size: nine", 1), true)
	wantCounts(t, "after a refused reload", m, reloadCounts{applied: 1, unchanged: 1, refused: 1})
	keptFirst("after a refused reload", m)

	// Back to the bytes that serve: nothing to apply, and the last attempt
	// succeeded.
	m = step(simConfig(8, 1, 0), false)
	wantCounts(t, "after reverting to the config that serves", m, reloadCounts{applied: 1, unchanged: 2, refused: 1, successful: 1})
	keptFirst("after reverting to the config that serves", m)
	// The refusal was announced in the events; so is its end, once.
	fixed := 0
	for _, ev := range f.eng.Events().Since(0) {
		if strings.HasPrefix(ev.Message, "config fixed: ") {
			fixed++
		}
	}
	if fixed != 1 {
		t.Fatalf("%d \"config fixed\" events after the refused config was reverted, want 1", fixed)
	}

	// A refusal, then a new config applied: successful again, a new
	// timestamp, the new hash alone in the info.
	m = step("runners: [", true)
	wantCounts(t, "after a second refusal", m, reloadCounts{applied: 1, unchanged: 2, refused: 2})
	before = time.Now()
	m = step(simConfig(16, 1, 0), false)
	wantCounts(t, "after applying a new config", m, reloadCounts{applied: 2, unchanged: 2, refused: 2, successful: 1})
	wantStamp(t, "the new config's reload", m, before, time.Now())
	second := f.rl.Status().Hash[:12]
	if second == first {
		t.Fatal("the new config has the first one's hash")
	}
	wantInfo(t, m, f.path, second)
	if f.maxBatch() != 16 {
		t.Fatalf("max_batch_size %d after the new config, want 16", f.maxBatch())
	}
}

func wantCounts(t *testing.T, stage string, m reloadMetrics, want reloadCounts) {
	t.Helper()
	if m.reloadCounts != want {
		t.Fatalf("%s: %+v, want %+v", stage, m.reloadCounts, want)
	}
}

// wantStamp: the success timestamp is the time of a reload that ran
// between before and after.
func wantStamp(t *testing.T, what string, m reloadMetrics, before, after time.Time) {
	t.Helper()
	if m.timestamp < unixSeconds(before) || m.timestamp > unixSeconds(after) {
		t.Fatalf("success timestamp %v, want the time of %s (%v to %v)", m.timestamp, what, unixSeconds(before), unixSeconds(after))
	}
}

// wantInfo: the info series names exactly the config that serves.
func wantInfo(t *testing.T, m reloadMetrics, path, hash string) {
	t.Helper()
	if len(m.info) != 1 || m.info[path+" "+hash] != 1 {
		t.Fatalf("config info %v, want only {%s %s}", m.info, path, hash)
	}
}
