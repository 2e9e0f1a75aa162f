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
	applied, unchanged, refused float64
	successful, timestamp       float64
	info                        map[string]float64 // "file hash" → value
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
	after := time.Now()
	m := readReloadMetrics(t, reg)
	first := f.rl.Status().Hash[:12]
	if m.applied != 1 || m.unchanged != 0 || m.refused != 0 || m.successful != 1 {
		t.Fatalf("after the first load: %+v, want applied 1, successful 1", m)
	}
	if m.timestamp < unixSeconds(before) || m.timestamp > unixSeconds(after) {
		t.Fatalf("success timestamp %v, want the time of the first load (%v to %v)", m.timestamp, unixSeconds(before), unixSeconds(after))
	}
	applied := m.timestamp
	if len(m.info) != 1 || m.info[f.path+" "+first] != 1 {
		t.Fatalf("config info %v, want {%s %s}", m.info, f.path, first)
	}

	reload := func() error {
		t.Helper()
		return f.rl.Reload(t.Context())
	}
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(f.path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The same bytes: unchanged, still successful, nothing applied.
	if err := reload(); err != nil {
		t.Fatal(err)
	}
	if m := readReloadMetrics(t, reg); m.applied != 1 || m.unchanged != 1 || m.refused != 0 || m.successful != 1 || m.timestamp != applied {
		t.Fatalf("after an unchanged reload: %+v, want applied 1, unchanged 1, successful 1, the timestamp of the first load", m)
	}

	// A broken config: refused, unsuccessful; the timestamp and the info
	// still describe the config that serves.
	write(strings.Replace(simConfig(9, 1, 0), "max_batch_size: 9", "max_batch_size: nine", 1))
	if err := reload(); err == nil {
		t.Fatal("a broken config was applied")
	}
	if m := readReloadMetrics(t, reg); m.applied != 1 || m.refused != 1 || m.successful != 0 || m.timestamp != applied || m.info[f.path+" "+first] != 1 {
		t.Fatalf("after a refused reload: %+v, want refused 1, successful 0, the first load's timestamp and info", m)
	}

	// Back to the bytes that serve: nothing to apply, and the last attempt
	// succeeded.
	write(simConfig(8, 1, 0))
	if err := reload(); err != nil {
		t.Fatal(err)
	}
	if m := readReloadMetrics(t, reg); m.unchanged != 2 || m.successful != 1 || m.timestamp != applied {
		t.Fatalf("after reverting to the config that serves: %+v, want unchanged 2, successful 1, the first load's timestamp", m)
	}

	// A refusal, then a new config applied: successful again, a new
	// timestamp, the new hash alone in the info.
	write("runners: [")
	if err := reload(); err == nil {
		t.Fatal("a config that does not parse was applied")
	}
	if m := readReloadMetrics(t, reg); m.refused != 2 || m.successful != 0 {
		t.Fatalf("after a second refusal: %+v, want refused 2, successful 0", m)
	}
	write(simConfig(16, 1, 0))
	before = time.Now()
	if err := reload(); err != nil {
		t.Fatal(err)
	}
	after = time.Now()
	m = readReloadMetrics(t, reg)
	if m.applied != 2 || m.unchanged != 2 || m.refused != 2 || m.successful != 1 {
		t.Fatalf("after applying a new config: %+v, want applied 2, unchanged 2, refused 2, successful 1", m)
	}
	if m.timestamp < unixSeconds(before) || m.timestamp > unixSeconds(after) {
		t.Fatalf("success timestamp %v, want the time of the new config's reload (%v to %v)", m.timestamp, unixSeconds(before), unixSeconds(after))
	}
	if second := f.rl.Status().Hash[:12]; len(m.info) != 1 || m.info[f.path+" "+second] != 1 || second == first {
		t.Fatalf("config info %v, want only {%s %s}", m.info, f.path, second)
	}
	if f.maxBatch() != 16 {
		t.Fatalf("max_batch_size %d after the new config, want 16", f.maxBatch())
	}
}
