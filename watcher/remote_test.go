package watcher

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/benchtop/benchtop/engine"
)

// remoteType stands in for engine/remote's runnable in config checks: its
// methods are those of the sample runnable its model: names, as a runner
// server of that sample would describe them. It never runs.
func remoteType(t testing.TB, samples *engine.Registry) *engine.RunnableType {
	t.Helper()
	return &engine.RunnableType{
		Name: RemoteRunnable,
		Describe: func(ctx context.Context, p engine.Params) ([]engine.MethodSpec, error) {
			var params struct {
				Endpoints []string `json:"endpoints"`
				Model     string   `json:"model"`
				TimeoutMS int64    `json:"timeout_ms"`
			}
			if err := p.Decode(&params); err != nil {
				return nil, err
			}
			typ, err := samples.Lookup(params.Model)
			if err != nil {
				return nil, fmt.Errorf("no runner server serves %q", params.Model)
			}
			return typ.MethodsFor(ctx, nil)
		},
		New: func(context.Context, engine.Env) (engine.Instance, error) {
			return nil, fmt.Errorf("the test remote runnable does not run")
		},
	}
}

func TestRemoteRunnerResolves(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte(`
runners:
  - name: sim
    remote:
      endpoints: [10.0.0.7:3001, "[fd00::8]:3001"]
      timeout: 2s
  - name: fast
    remote: {endpoints: ["dns:///sim.default.svc.cluster.local:3001"], model: sim}
    replicas: {min: 2, max: 5}
apis:
  - {name: predict, runner: fast, method: predict, input: ndarray, output: ndarray}
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := cfg.Resolve(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []engine.Params{
		{"endpoints": []string{"10.0.0.7:3001", "[fd00::8]:3001"}, "model": "sim", "timeout_ms": int64(2000)},
		{"endpoints": []string{"dns:///sim.default.svc.cluster.local:3001"}, "model": "sim", "timeout_ms": int64(30000)},
	}
	for i, rc := range res.Engine.Runners {
		if rc.Runnable != RemoteRunnable || !reflect.DeepEqual(rc.Params, want[i]) {
			t.Errorf("runner %s: runnable %q params %#v, want remote %#v", rc.Name, rc.Runnable, rc.Params, want[i])
		}
	}
	if got := cfg.Runners[1].ReplicasOrDefault(); got != (Replicas{Min: 2, Max: 5}) {
		t.Errorf("replicas %+v", got)
	}
	if got := cfg.Runners[0].ReplicasOrDefault(); got != (Replicas{Min: 1, Max: 1}) {
		t.Errorf("default replicas %+v", got)
	}

	// The front end's checks pass with a remote runnable registered: the
	// API's method comes from the servers' signature.
	reg := registry(t)
	if err := reg.Register(remoteType(t, registry(t))); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Check(t.Context(), checker(t, reg)); err != nil {
		t.Fatal(err)
	}
}

func TestRemoteAndReplicasProblems(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"two kinds", `
runners:
  - name: sim
    runnable: sim
    remote: {endpoints: [a:1]}
`, []string{"c.yaml:3:5: runners[0]: runnable, model, process and remote are alternatives: keep one"}},
		{"the servers' knobs", `
runners:
  - name: sim
    remote: {endpoints: [a:3001]}
    workers: 2
    resources: {nvidia.com/gpu: 1}
    batching: {max_batch_size: 8}
    timeout: 5s
`, []string{
			"c.yaml:5:14: runners[0].workers: a remote runner has no workers: it is the runner servers' (set it in their config, where the runner runs)",
			"c.yaml:6:5: runners[0].resources: a remote runner has no resources: it is the runner servers' (set it in their config, where the runner runs)",
			"c.yaml:7:5: runners[0].batching: a remote runner has no batching: it is the runner servers' (set it in their config, where the runner runs)",
			"c.yaml:8:14: runners[0].timeout: a remote runner has no timeout: bound its calls with remote.timeout (the runner servers' own timeout bounds a batch)",
		}},
		{"endpoints", `
runners:
  - name: sim
    remote:
      endpoints: [a, "a:0", "a:3001", "a:3001", ":3001"]
      model: Sim
      timeout: 0s
`, []string{
			`c.yaml:3:5: runners[0].init: describe runnable "remote": no runner server serves "Sim"`,
			`c.yaml:5:19: runners[0].remote.endpoints[0]: "a": no port: want host:port (10.0.0.7:3001) or dns:///name:port (dns:///sim.default.svc.cluster.local:3001)`,
			`c.yaml:5:22: runners[0].remote.endpoints[1]: "a:0": port "0" is not 1 to 65535: want host:port (10.0.0.7:3001) or dns:///name:port (dns:///sim.default.svc.cluster.local:3001)`,
			`c.yaml:5:39: runners[0].remote.endpoints[3]: "a:3001" is listed twice`,
			`c.yaml:5:49: runners[0].remote.endpoints[4]: ":3001": no host: want host:port (10.0.0.7:3001) or dns:///name:port (dns:///sim.default.svc.cluster.local:3001)`,
			`c.yaml:6:14: runners[0].remote.model: "Sim": use lower-case letters, digits and -._ (1 to 63 characters, starting and ending with a letter or digit)`,
			`c.yaml:7:16: runners[0].remote.timeout: 0s: want a duration above 0, such as 30s`,
		}},
		{"dns name with others", `
runners:
  - name: sim
    remote: {endpoints: ["dns:///sim.ns.svc:3001", "b:3001"]}
`, []string{`c.yaml:4:26: runners[0].remote.endpoints[0]: "dns:///sim.ns.svc:3001": a dns:/// name stands alone (its addresses are the endpoints): list it by itself, or list host:port addresses`}},
		{"no endpoints", `
runners:
  - name: sim
    remote: {model: sim}
`, []string{`c.yaml:3:5: runners[0]: remote.endpoints: required, e.g. [10.0.0.7:3001, 10.0.0.8:3001] or [dns:///sim.default.svc.cluster.local:3001]`}},
		{"replicas", `
runners:
  - name: sim
    runnable: sim
    replicas: {min: 0, max: 3}
  - name: sim2
    runnable: sim
    replicas: {min: 4, max: 2}
`, []string{
			"c.yaml:5:21: runners[0].replicas.min: 0: want at least 1",
			"c.yaml:8:29: runners[1].replicas.max: 2 is below min (4): want max ≥ min",
		}},
	}
	reg := registry(t)
	if err := reg.Register(remoteType(t, registry(t))); err != nil {
		t.Fatal(err)
	}
	eng := checker(t, reg)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAndValidate(t.Context(), "c.yaml", []byte(tc.yaml), eng, noEnv)
			if err == nil {
				t.Fatal("no problem found")
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestOnlyRunners: a runner server's check keeps the named runners and no
// API, problems still point into the file, and a name the file lacks is an
// error that lists the names it has.
func TestOnlyRunners(t *testing.T) {
	const file = `
runners:
  - name: sim
    runnable: sim
  - name: sentiment
    runnable: sentiment
    workers: 0
  - name: echo
    runnable: echo
apis:
  - {name: predict, runner: sim, method: predict, input: ndarray, output: ndarray}
`
	eng := checker(t, registry(t))
	cfg, err := ParseAndValidate(t.Context(), "c.yaml", []byte(file), eng, noEnv, WithRunners([]string{"echo", "sim"}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rc := range cfg.Plan.Config().Runners {
		got = append(got, rc.Name)
	}
	if !reflect.DeepEqual(got, []string{"sim", "echo"}) || len(cfg.APIs) != 0 || len(cfg.Plan.Config().APIs) != 0 {
		t.Errorf("serves runners %v and %d apis, want [sim echo] and none", got, len(cfg.APIs))
	}
	if _, err := cfg.Effective(); err != nil {
		t.Errorf("effective config: %v", err)
	}

	_, err = ParseAndValidate(t.Context(), "c.yaml", []byte(file), eng, noEnv, WithRunners([]string{"sentiment"}))
	if want := "c.yaml:7:14: runners[0].workers: 0: want 1 to"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v, want the problem at the runner's own line: %s…", err, want)
	}

	_, err = ParseAndValidate(t.Context(), "c.yaml", []byte(file), eng, noEnv, WithRunners([]string{"sim", "nope"}))
	if want := `c.yaml: runner "nope" is not in this config: its runners are sim, sentiment, echo`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}
