package gpu

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

// syncBuffer is a log sink safe to read while Run writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newMonitor(t *testing.T, lib NVML, opts Options) (*Monitor, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	opts.Library = lib
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m, logs
}

// start runs m until the test ends and returns a function that stops it and
// returns Run's error.
func start(t *testing.T, m *Monitor) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitSeq waits for a snapshot numbered at least seq; the test's deadline
// bounds it.
func waitSeq(t *testing.T, m *Monitor, seq uint64) Snapshot {
	t.Helper()
	ctx := t.Context()
	for {
		s, changed := m.Watch()
		if s.Seq >= seq {
			return s
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("no snapshot %d: %v", seq, ctx.Err())
		}
	}
}

func TestRead(t *testing.T) {
	tests := []struct {
		name   string
		change func(s *fakeServer)
		check  func(t *testing.T, s Snapshot, srv *fakeServer)
	}{
		{
			name: "idle dgx a100",
			check: func(t *testing.T, s Snapshot, _ *fakeServer) {
				if s.State != StateOK || s.Message != "" || s.Driver != "550.54.15" || len(s.Devices) != 8 || !s.Available() {
					t.Fatalf("snapshot = %v %q driver %q, %d devices; want ok, 550.54.15, 8", s.State, s.Message, s.Driver, len(s.Devices))
				}
				for i, d := range s.Devices {
					want := Device{
						Index: i, Name: "NVIDIA A100-SXM4-40GB", UUID: dgxA100()[i].uuid,
						HasUtilization: true, MemoryTotal: 40 * gib, HasMemory: true,
						TemperatureC: float64(30 + i), HasTemperature: true,
						PowerW: 60 + float64(i), HasPower: true, Processes: []Process{},
					}
					if !reflect.DeepEqual(d, want) {
						t.Errorf("device %d:\n got %+v\nwant %+v", i, d, want)
					}
				}
			},
		},
		{
			name: "busy gpu with its processes",
			change: func(s *fakeServer) {
				s.names[100], s.names[300] = "python3", "/usr/bin/benchtop"
				s.gpus[2].set(func(g *fakeGPU) {
					g.util = nvml.Utilization{Gpu: 87, Memory: 43}
					g.mem.Used, g.mem.Free = 30*gib, 10*gib
					g.compute = []nvml.ProcessInfo{{Pid: 300, UsedGpuMemory: 4 * gib}, {Pid: 100, UsedGpuMemory: 20 * gib}}
					g.graphics = []nvml.ProcessInfo{{Pid: 200, UsedGpuMemory: 1 * gib}, {Pid: 300, UsedGpuMemory: 4 * gib}}
				})
			},
			check: func(t *testing.T, s Snapshot, _ *fakeServer) {
				d, _ := s.Device(2)
				if d.Utilization != 0.87 || d.MemoryUtilization != 0.43 || d.MemoryUsed != 30*gib {
					t.Errorf("gpu 2: utilization %v/%v, memory %d; want 0.87/0.43, 30 GiB", d.Utilization, d.MemoryUtilization, d.MemoryUsed)
				}
				want := []Process{
					{PID: 100, Name: "python3", Type: "C", MemoryUsed: 20 * gib, HasMemory: true},
					{PID: 200, Name: "", Type: "G", MemoryUsed: 1 * gib, HasMemory: true},
					{PID: 300, Name: "/usr/bin/benchtop", Type: "C+G", MemoryUsed: 4 * gib, HasMemory: true},
				}
				if !reflect.DeepEqual(d.Processes, want) {
					t.Errorf("processes:\n got %+v\nwant %+v", d.Processes, want)
				}
				if other, _ := s.Device(3); len(other.Processes) != 0 || other.Utilization != 0 {
					t.Errorf("gpu 3 = %+v, want idle", other)
				}
			},
		},
		{
			name: "temperature and power absent",
			change: func(s *fakeServer) {
				s.gpus[0].set(func(g *fakeGPU) { g.tempRet, g.powerRet = nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_FUNCTION_NOT_FOUND })
			},
			check: func(t *testing.T, s Snapshot, _ *fakeServer) {
				d, _ := s.Device(0)
				if d.HasTemperature || d.HasPower || d.TemperatureC != 0 || d.PowerW != 0 {
					t.Errorf("gpu 0 temperature %v (%v), power %v (%v); want both absent", d.TemperatureC, d.HasTemperature, d.PowerW, d.HasPower)
				}
				if d.Err != nil {
					t.Errorf("a missing reading is no error, got %v", d.Err)
				}
				if !d.HasMemory || !d.HasUtilization {
					t.Errorf("gpu 0 lost its other readings: %+v", d)
				}
			},
		},
		{
			name: "utilization absent on a mig gpu",
			change: func(s *fakeServer) {
				s.gpus[1].set(func(g *fakeGPU) { g.utilRet = nvml.ERROR_NOT_SUPPORTED })
			},
			check: func(t *testing.T, s Snapshot, _ *fakeServer) {
				if d, _ := s.Device(1); d.HasUtilization || d.Err != nil {
					t.Errorf("gpu 1 = %+v, want utilization absent and no error", d)
				}
			},
		},
		{
			name: "process memory hidden by the driver",
			change: func(s *fakeServer) {
				s.gpus[4].set(func(g *fakeGPU) {
					g.compute = []nvml.ProcessInfo{{Pid: 42, UsedGpuMemory: math.MaxUint64}}
				})
			},
			check: func(t *testing.T, s Snapshot, _ *fakeServer) {
				d, _ := s.Device(4)
				want := []Process{{PID: 42, Type: "C"}}
				if !reflect.DeepEqual(d.Processes, want) {
					t.Errorf("processes = %+v, want %+v", d.Processes, want)
				}
			},
		},
		{
			name: "processes not supported",
			change: func(s *fakeServer) {
				s.gpus[4].set(func(g *fakeGPU) { g.procRet = nvml.ERROR_NOT_SUPPORTED })
			},
			check: func(t *testing.T, s Snapshot, _ *fakeServer) {
				if d, _ := s.Device(4); len(d.Processes) != 0 || d.Err != nil {
					t.Errorf("gpu 4 = %+v, want no processes and no error", d)
				}
			},
		},
		{
			name: "an error on one device leaves the others",
			change: func(s *fakeServer) {
				s.gpus[3].set(func(g *fakeGPU) { g.memRet, g.procRet = nvml.ERROR_UNKNOWN, nvml.ERROR_NO_PERMISSION })
			},
			check: func(t *testing.T, s Snapshot, _ *fakeServer) {
				d, _ := s.Device(3)
				const want = "gpu 3: memory: unknown error; compute processes: no permission; graphics processes: no permission"
				if d.Err == nil || d.Err.Error() != want {
					t.Errorf("gpu 3 err = %v, want %s", d.Err, want)
				}
				if d.HasMemory || !d.HasTemperature || !d.HasPower || d.Name == "" {
					t.Errorf("gpu 3 = %+v, want every reading but memory", d)
				}
				for _, o := range s.Devices {
					if o.Index != 3 && (o.Err != nil || !o.HasMemory) {
						t.Errorf("gpu %d = %+v, want unharmed", o.Index, o)
					}
				}
			},
		},
		{
			name: "a device without a handle",
			change: func(s *fakeServer) {
				s.handleRet[5] = nvml.ERROR_NO_PERMISSION
			},
			check: func(t *testing.T, s Snapshot, _ *fakeServer) {
				if len(s.Devices) != 8 {
					t.Fatalf("%d devices, want 8", len(s.Devices))
				}
				d := s.Devices[5]
				if d.Index != 5 || d.Err == nil || d.Err.Error() != "gpu 5: get handle: no permission" || d.HasMemory {
					t.Errorf("gpu 5 = %+v, want only the handle error", d)
				}
				if o := s.Devices[6]; o.Err != nil || !o.HasMemory {
					t.Errorf("gpu 6 = %+v, want unharmed", o)
				}
			},
		},
		{
			name: "a lost gpu is asked nothing more",
			change: func(s *fakeServer) {
				s.gpus[6].set(func(g *fakeGPU) { g.lost = true })
			},
			check: func(t *testing.T, s Snapshot, srv *fakeServer) {
				d, _ := s.Device(6)
				if d.Err == nil || !strings.HasPrefix(d.Err.Error(), "gpu 6: name: GPU is lost") {
					t.Errorf("gpu 6 err = %v, want the loss", d.Err)
				}
				dev := srv.devs(6)
				if n := len(dev.GetUUIDCalls()) + len(dev.GetMemoryInfoCalls()) + len(dev.GetComputeRunningProcessesCalls()); n != 0 {
					t.Errorf("%d calls after the GPU was lost, want 0", n)
				}
				if o, _ := s.Device(7); o.Err != nil {
					t.Errorf("gpu 7 err = %v, want nil", o.Err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeServer(dgxA100())
			if tc.change != nil {
				tc.change(srv)
			}
			m, _ := newMonitor(t, srv, Options{})
			if ret := srv.Init(); ret != nvml.SUCCESS {
				t.Fatal(ret)
			}
			m.poll("550.54.15")
			tc.check(t, m.Snapshot(), srv)
		})
	}
}

// devs returns the mock behind device i.
func (s *fakeServer) devs(i int) *mock.Device {
	d, _ := s.DeviceGetHandleByIndexFunc(i)
	return d.(*mock.Device)
}

func TestReadWholeServer(t *testing.T) {
	tests := []struct {
		name    string
		lib     *mock.Interface
		state   State
		message string
	}{
		{
			name: "listing fails",
			lib: &mock.Interface{
				DeviceGetCountFunc: func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN },
			},
			state: StateError, message: "list GPUs: NVML: unknown error",
		},
		{
			name: "no device",
			lib: &mock.Interface{
				DeviceGetCountFunc: func() (int, nvml.Return) { return 0, nvml.SUCCESS },
			},
			state: StateNoGPU, message: "no NVIDIA GPU found (NVML sees no device)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newMonitor(t, tc.lib, Options{})
			m.poll("")
			s := m.Snapshot()
			if s.State != tc.state || s.Message != tc.message || len(s.Devices) != 0 || s.Available() {
				t.Fatalf("snapshot = %v %q with %d devices, want %v %q", s.State, s.Message, len(s.Devices), tc.state, tc.message)
			}
		})
	}
}

func TestRunPollsUntilStopped(t *testing.T) {
	srv := newFakeServer(dgxA100())
	m, _ := newMonitor(t, srv, Options{Interval: time.Millisecond})
	if s := m.Snapshot(); s.State != StateStarting || s.Seq != 0 {
		t.Fatalf("before Run: %v #%d, want starting #0", s.State, s.Seq)
	}
	stop := start(t, m)
	first, err := m.Ready(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if first.State != StateOK || len(first.Devices) != 8 {
		t.Fatalf("first reading: %v with %d devices", first.State, len(first.Devices))
	}

	// A change shows in the reading after the one in flight, if any.
	s, _ := m.Watch()
	srv.gpus[7].set(func(g *fakeGPU) { g.util.Gpu = 55 })
	next := waitSeq(t, m, s.Seq+2)
	if d, _ := next.Device(7); d.Utilization != 0.55 {
		t.Fatalf("gpu 7 utilization %v after the change, want 0.55", d.Utilization)
	}

	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil when ctx ends", err)
	}
	if s := m.Snapshot(); s.State != StateStopped || len(s.Devices) != 0 {
		t.Fatalf("after Run: %v with %d devices, want stopped with none", s.State, len(s.Devices))
	}
	if n := len(srv.InitCalls()); n != 1 {
		t.Errorf("Init called %d times, want 1", n)
	}
	if n := len(srv.ShutdownCalls()); n != 1 {
		t.Errorf("Shutdown called %d times, want 1", n)
	}
	if err := m.Run(t.Context()); err == nil {
		t.Error("a second Run succeeded; want an error")
	}
}

// A driver that no longer exports the deprecated temperature call is not
// asked for it: calling a missing symbol would end the process.
func TestRunWithoutTemperatureSymbol(t *testing.T) {
	srv := newFakeServer(dgxA100())
	srv.missing["nvmlDeviceGetTemperature"] = true
	m, _ := newMonitor(t, srv, Options{})
	stop := start(t, m)
	s, err := m.Ready(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, d := range s.Devices {
		if d.HasTemperature || d.Err != nil || !d.HasPower {
			t.Errorf("gpu %d = %+v, want every reading but temperature, without error", d.Index, d)
		}
		if n := len(srv.devs(d.Index).GetTemperatureCalls()); n != 0 {
			t.Errorf("gpu %d: GetTemperature called %d times, want 0", d.Index, n)
		}
	}
}

func TestRunWithEndedContext(t *testing.T) {
	lib := &mock.Interface{} // any call panics
	m, _ := newMonitor(t, lib, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if s := m.Snapshot(); s.State != StateStopped {
		t.Fatalf("state %v, want stopped", s.State)
	}
}

// Without a driver the monitor says so once and asks NVML nothing else:
// the mock panics on any call it was not given.
func TestNoDriver(t *testing.T) {
	tests := []struct {
		name string
		ret  nvml.Return
		want string
	}{
		{"library not found", nvml.ERROR_LIBRARY_NOT_FOUND, "no NVIDIA GPU found (NVML: library not found)"},
		{"driver not loaded", nvml.ERROR_DRIVER_NOT_LOADED, "no NVIDIA GPU found (NVML: driver not loaded)"},
		{"no permission", nvml.ERROR_NO_PERMISSION, "NVIDIA GPUs unavailable (NVML: no permission)"},
		{"version mismatch", nvml.ERROR_LIB_RM_VERSION_MISMATCH, "NVIDIA GPUs unavailable (NVML: driver/library version mismatch (reboot or reload the driver))"},
		{"unknown code", nvml.Return(4242), "NVIDIA GPUs unavailable (NVML: NVML return code 4242)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lib := &mock.Interface{InitFunc: func() nvml.Return { return tc.ret }}
			m, logs := newMonitor(t, lib, Options{Interval: time.Millisecond})
			if err := m.Run(t.Context()); err != nil {
				t.Fatalf("Run = %v, want nil: no GPU is not a failure", err)
			}
			s, err := m.Ready(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if s.State != StateNoGPU || s.Message != tc.want || s.Available() {
				t.Fatalf("snapshot = %v %q, want no gpu %q", s.State, s.Message, tc.want)
			}
			if n := strings.Count(logs.String(), tc.want); n != 1 {
				t.Errorf("logged %d times, want once:\n%s", n, logs)
			}
			if n := len(lib.InitCalls()); n != 1 {
				t.Errorf("Init called %d times, want 1", n)
			}
		})
	}
}

func TestHistory(t *testing.T) {
	m, _ := newMonitor(t, newFakeServer(dgxA100()), Options{History: 3})
	for range 5 {
		m.poll("")
	}
	var seqs []uint64
	for _, s := range m.History() {
		seqs = append(seqs, s.Seq)
	}
	if !reflect.DeepEqual(seqs, []uint64{3, 4, 5}) {
		t.Fatalf("history = %v, want the last three readings", seqs)
	}
}

// A fault that lasts is logged when it starts and when it changes, not on
// every reading.
func TestDeviceErrorsLoggedOnChange(t *testing.T) {
	srv := newFakeServer(dgxA100())
	m, logs := newMonitor(t, srv, Options{})
	srv.gpus[1].set(func(g *fakeGPU) { g.memRet = nvml.ERROR_UNKNOWN })
	m.poll("")
	m.poll("")
	srv.gpus[1].set(func(g *fakeGPU) { g.memRet = nvml.ERROR_TIMEOUT })
	m.poll("")
	srv.gpus[1].set(func(g *fakeGPU) { g.memRet = nvml.SUCCESS })
	m.poll("")
	m.poll("")
	if n := strings.Count(logs.String(), "level=WARN"); n != 2 {
		t.Fatalf("%d warnings, want 2 (unknown, then timeout):\n%s", n, logs)
	}
}

func TestSnapshotVisible(t *testing.T) {
	env := func(v string, ok bool) func(string) (string, bool) {
		return func(k string) (string, bool) {
			if k != "CUDA_VISIBLE_DEVICES" {
				return "", false
			}
			return v, ok
		}
	}
	ok := Snapshot{State: StateOK, Devices: make([]Device, 4)}
	none := Snapshot{State: StateNoGPU, Message: "no NVIDIA GPU found (NVML: library not found)"}
	tests := []struct {
		name string
		s    Snapshot
		env  func(string) (string, bool)
		want []string
		note string
	}{
		{name: "all four", s: ok, env: env("", false), want: []string{"0", "1", "2", "3"}},
		{name: "restricted", s: ok, env: env("3,1", true), want: []string{"3", "1"}},
		{name: "no env reader", s: ok, want: []string{"0", "1", "2", "3"}},
		{name: "no gpu carries the reason", s: none, env: env("0", true), note: none.Message},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.s.Visible(tc.env)
			if !reflect.DeepEqual(v.Devices(), tc.want) || v.Note != tc.note {
				t.Fatalf("Visible = %+v: devices %q, want %q, note %q", v, v.Devices(), tc.want, tc.note)
			}
		})
	}
}
