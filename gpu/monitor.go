package gpu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a Monitor; the zero value polls the real NVML every
// second and registers no metrics.
type Options struct {
	// Interval is the time between readings; 0 means DefaultInterval. NVML
	// averages utilization over 1/6 s to 1 s, so much less tells nothing new.
	Interval time.Duration
	// History is how many snapshots History keeps; 0 means DefaultHistory.
	History int
	// Registerer, if set, gets the benchtop_gpu_* gauges.
	Registerer prometheus.Registerer
	// Logger receives the no-GPU notice and device errors; nil discards them.
	Logger *slog.Logger
	// Library is the NVML to read; nil means the real one (nvml.New()),
	// which loads libnvidia-ml.so.1 only when Run calls Init.
	Library NVML
}

// Defaults for Options.
const (
	DefaultInterval = time.Second
	DefaultHistory  = 60
)

// Monitor polls NVML and publishes Snapshots. Its methods are safe for
// concurrent use; Run is called once.
type Monitor struct {
	lib      NVML
	interval time.Duration
	keep     int
	logger   *slog.Logger
	started  atomic.Bool

	mu      sync.Mutex
	cur     Snapshot
	changed chan struct{} // closed when cur is replaced
	history []Snapshot

	// Only Run's goroutine touches these.
	names   map[int]string // process names by PID, asked of NVML once each
	lastErr map[int]string // per device, so that a lasting fault is logged once
	noTemp  bool           // the driver no longer exports nvmlDeviceGetTemperature
}

// New returns a monitor in StateStarting and registers its gauges.
func New(opts Options) (*Monitor, error) {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.History <= 0 {
		opts.History = DefaultHistory
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Library == nil {
		opts.Library = nvml.New()
	}
	m := &Monitor{
		lib: opts.Library, interval: opts.Interval, keep: opts.History, logger: opts.Logger,
		cur:     Snapshot{State: StateStarting, Message: "waiting for the first GPU reading"},
		changed: make(chan struct{}),
		names:   map[int]string{}, lastErr: map[int]string{},
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(collector{m}); err != nil {
			return nil, fmt.Errorf("register gpu metrics: %w", err)
		}
	}
	return m, nil
}

// Run starts NVML, reads the GPUs at once and then every interval until ctx
// ends, and shuts NVML down. Without a driver it publishes StateNoGPU, logs
// why once, and returns nil at once having made no other NVML call: there is
// nothing to poll, and benchtop carries on without GPUs.
func (m *Monitor) Run(ctx context.Context) error {
	if !m.started.CompareAndSwap(false, true) {
		return errors.New("gpu monitor: Run was already called; make a new Monitor")
	}
	if ctx.Err() != nil {
		m.publish(Snapshot{State: StateStopped, Message: "GPU monitor stopped", Taken: time.Now()})
		return nil
	}
	if ret := m.lib.Init(); ret != nvml.SUCCESS {
		msg := noGPUMessage(ret)
		m.logger.Info(msg)
		m.publish(Snapshot{State: StateNoGPU, Message: msg, Taken: time.Now()})
		return nil
	}
	driver, ret := m.lib.SystemGetDriverVersion()
	if ret != nvml.SUCCESS {
		driver = ""
	}
	// Deprecated in NVML 13 in favour of a versioned call; a driver that
	// drops it reads no temperature instead of crashing.
	if err := m.lib.Extensions().LookupSymbol("nvmlDeviceGetTemperature"); err != nil {
		m.noTemp = true
		m.logger.Info("GPU temperature not read: this driver's NVML lacks nvmlDeviceGetTemperature")
	}
	defer func() {
		// Only after a successful Init: Shutdown on an unloaded library is a
		// call into nothing.
		if ret := m.lib.Shutdown(); ret != nvml.SUCCESS {
			m.logger.Warn("NVML shutdown failed", "err", returnText(ret))
		}
		m.publish(Snapshot{State: StateStopped, Message: "GPU monitor stopped", Taken: time.Now(), Driver: driver})
	}()
	m.poll(driver)
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			m.poll(driver)
		}
	}
}

// Snapshot is the latest reading. It costs a lock and a copy of a few words.
func (m *Monitor) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur
}

// Watch returns the latest reading and a channel closed when a newer one is
// published; taking both under one lock means no reading is missed between
// them.
func (m *Monitor) Watch() (Snapshot, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur, m.changed
}

// Ready blocks until Run has published its first reading (devices, or why
// there are none) and returns it. Call it before placing GPU workers, so
// that they are placed by what NVML sees.
func (m *Monitor) Ready(ctx context.Context) (Snapshot, error) {
	for {
		s, changed := m.Watch()
		if s.State != StateStarting {
			return s, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return s, fmt.Errorf("wait for the first GPU reading: %w", ctx.Err())
		}
	}
}

// History is the last readings, oldest first, for the UI's sparklines.
func (m *Monitor) History() []Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.history)
}

func (m *Monitor) publish(s Snapshot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s.Seq = m.cur.Seq + 1
	m.cur = s
	m.history = append(m.history, s)
	if len(m.history) > m.keep {
		m.history = slices.Delete(m.history, 0, len(m.history)-m.keep)
	}
	close(m.changed)
	m.changed = make(chan struct{})
}

// poll reads every device and publishes the result.
func (m *Monitor) poll(driver string) {
	s := m.read(driver)
	for _, d := range s.Devices {
		msg := ""
		if d.Err != nil {
			msg = d.Err.Error()
		}
		if msg != m.lastErr[d.Index] {
			if msg != "" {
				m.logger.Warn("read GPU", "gpu", d.Index, "err", msg)
			}
			m.lastErr[d.Index] = msg
		}
	}
	m.publish(s)
}

func (m *Monitor) read(driver string) Snapshot {
	s := Snapshot{State: StateOK, Taken: time.Now(), Driver: driver}
	n, ret := m.lib.DeviceGetCount()
	switch {
	case ret != nvml.SUCCESS:
		s.State, s.Message = StateError, "list GPUs: NVML: "+returnText(ret)
		return s
	case n == 0:
		s.State, s.Message = StateNoGPU, "no NVIDIA GPU found (NVML sees no device)"
		return s
	}
	seen := map[int]bool{}
	s.Devices = make([]Device, n)
	for i := range n {
		s.Devices[i] = m.readDevice(i, seen)
	}
	for pid := range m.names {
		if !seen[pid] {
			delete(m.names, pid)
		}
	}
	return s
}

// deviceReader reads one device, collecting what fails instead of stopping
// at it, except that a lost GPU answers nothing more.
type deviceReader struct {
	index int
	errs  []string
	lost  bool
}

// ok reports whether a reading succeeded, noting why not unless the device
// simply does not have it.
func (r *deviceReader) ok(what string, ret nvml.Return) bool {
	switch {
	case ret == nvml.SUCCESS:
		return true
	case ret == nvml.ERROR_GPU_IS_LOST:
		r.lost = true
	case absent(ret):
		return false
	}
	r.errs = append(r.errs, what+": "+returnText(ret))
	return false
}

func (r *deviceReader) err() error {
	if len(r.errs) == 0 {
		return nil
	}
	return fmt.Errorf("gpu %d: %s", r.index, strings.Join(r.errs, "; "))
}

func (m *Monitor) readDevice(i int, seen map[int]bool) Device {
	d := Device{Index: i}
	r := &deviceReader{index: i}
	h, ret := m.lib.DeviceGetHandleByIndex(i)
	if !r.ok("get handle", ret) {
		d.Err = r.err()
		return d
	}
	steps := []func(){
		func() {
			if name, ret := h.GetName(); r.ok("name", ret) {
				d.Name = name
			}
		},
		func() {
			if uuid, ret := h.GetUUID(); r.ok("uuid", ret) {
				d.UUID = uuid
			}
		},
		func() {
			if u, ret := h.GetUtilizationRates(); r.ok("utilization", ret) {
				d.Utilization, d.MemoryUtilization, d.HasUtilization = float64(u.Gpu)/100, float64(u.Memory)/100, true
			}
		},
		func() {
			if mem, ret := h.GetMemoryInfo(); r.ok("memory", ret) {
				d.MemoryUsed, d.MemoryTotal, d.HasMemory = mem.Used, mem.Total, true
			}
		},
		func() {
			if m.noTemp {
				return
			}
			if c, ret := h.GetTemperature(nvml.TEMPERATURE_GPU); r.ok("temperature", ret) {
				d.TemperatureC, d.HasTemperature = float64(c), true
			}
		},
		func() {
			if mw, ret := h.GetPowerUsage(); r.ok("power", ret) {
				d.PowerW, d.HasPower = float64(mw)/1000, true
			}
		},
		func() { d.Processes = m.readProcesses(h, r, seen) },
	}
	for _, step := range steps {
		if r.lost {
			break
		}
		step()
	}
	d.Err = r.err()
	return d
}

// notAvailable is NVML_VALUE_NOT_AVAILABLE in an unsigned field: the driver
// hides a process's memory from us.
const notAvailable = math.MaxUint64

func (m *Monitor) readProcesses(h nvml.Device, r *deviceReader, seen map[int]bool) []Process {
	byPID := map[int]*Process{}
	add := func(typ string, list []nvml.ProcessInfo) {
		for _, pi := range list {
			pid := int(pi.Pid)
			p := byPID[pid]
			if p == nil {
				p = &Process{PID: pid}
				byPID[pid] = p
			}
			if p.Type == "" {
				p.Type = typ
			} else if p.Type != typ {
				p.Type = "C+G"
			}
			if pi.UsedGpuMemory != notAvailable {
				// A process in both lists is reported with the same memory
				// twice; it holds it once.
				p.MemoryUsed, p.HasMemory = max(p.MemoryUsed, pi.UsedGpuMemory), true
			}
		}
	}
	if list, ret := h.GetComputeRunningProcesses(); r.ok("compute processes", ret) {
		add("C", list)
	}
	if r.lost {
		return nil
	}
	if list, ret := h.GetGraphicsRunningProcesses(); r.ok("graphics processes", ret) {
		add("G", list)
	}
	procs := make([]Process, 0, len(byPID))
	for pid, p := range byPID {
		seen[pid] = true
		name, ok := m.names[pid]
		if !ok {
			// A failure is remembered too: it would fail again each poll.
			if n, ret := m.lib.SystemGetProcessName(pid); ret == nvml.SUCCESS {
				name = n
			}
			m.names[pid] = name
		}
		p.Name = name
		procs = append(procs, *p)
	}
	slices.SortFunc(procs, func(a, b Process) int { return a.PID - b.PID })
	return procs
}
