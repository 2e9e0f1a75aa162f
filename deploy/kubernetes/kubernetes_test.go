package kubernetes

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/golden"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/gpu/placement"
	"github.com/benchtop/benchtop/samples"
	"github.com/benchtop/benchtop/server"
	"github.com/benchtop/benchtop/watcher"
)

// wiringConfig has what the manifests must wire: an autoscaled runner, one
// with cores, one on GPUs, a runner already remote, and a front end that
// lists allowed hosts (which the probes must get past).
const wiringConfig = `
server:
  allowed_hosts: [bench.example]
runners:
  - name: sim
    runnable: sim
    batching: {max_batch_size: 16}
    replicas: {min: 2, max: 6}
  - name: sentiment
    runnable: sentiment
    resources: {cpu: 1.5}
    timeout: 10s
  - name: gpu-sim
    runnable: gpu-sim
    resources: {nvidia.com/gpu: 2}
    workers_per_resource: 2
  - name: outside
    remote: {endpoints: [10.0.0.9:3001], model: sim}
apis:
  - {name: predict, runner: sim, method: predict, input: ndarray, output: ndarray}
  - {name: analysis, runner: sentiment, method: is_positive, input: text, output: json}
  - {name: gpu-predict, runner: gpu-sim, method: predict, input: ndarray, output: ndarray}
  - {name: outside-predict, runner: outside, method: predict, input: ndarray, output: ndarray}
`

// manifests is the output decoded strictly, document by document, into
// the typed objects: a field the type lacks fails the test.
type manifests struct {
	configMaps    []*corev1.ConfigMap
	services      []*corev1.Service
	deployments   []*appsv1.Deployment
	pdbs          []*policyv1.PodDisruptionBudget
	hpas          []*autoscalingv2.HorizontalPodAutoscaler
	scaledObjects []*ScaledObject
}

func decode(t *testing.T, stream []byte) manifests {
	t.Helper()
	var m manifests
	for i, doc := range bytes.Split(stream, []byte("\n---\n")) {
		var tm metav1.TypeMeta
		if err := sigsyaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 ConfigMap":
			obj = &corev1.ConfigMap{}
		case "v1 Service":
			obj = &corev1.Service{}
		case "apps/v1 Deployment":
			obj = &appsv1.Deployment{}
		case "policy/v1 PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		case "autoscaling/v2 HorizontalPodAutoscaler":
			obj = &autoscalingv2.HorizontalPodAutoscaler{}
		case "keda.sh/v1alpha1 ScaledObject":
			obj = &ScaledObject{}
		default:
			t.Fatalf("document %d: unexpected %s %s", i, tm.APIVersion, tm.Kind)
		}
		if err := sigsyaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("document %d (%s) does not decode strictly: %v", i, tm.Kind, err)
		}
		switch o := obj.(type) {
		case *corev1.ConfigMap:
			m.configMaps = append(m.configMaps, o)
		case *corev1.Service:
			m.services = append(m.services, o)
		case *appsv1.Deployment:
			m.deployments = append(m.deployments, o)
		case *policyv1.PodDisruptionBudget:
			m.pdbs = append(m.pdbs, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			m.hpas = append(m.hpas, o)
		case *ScaledObject:
			m.scaledObjects = append(m.scaledObjects, o)
		}
	}
	return m
}

func find[T any](objs []T, name func(T) string, want string) (T, bool) {
	for _, o := range objs {
		if name(o) == want {
			return o, true
		}
	}
	var zero T
	return zero, false
}

func svcName(s *corev1.Service) string               { return s.Name }
func depName(d *appsv1.Deployment) string            { return d.Name }
func cmName(c *corev1.ConfigMap) string              { return c.Name }
func pdbName(p *policyv1.PodDisruptionBudget) string { return p.Name }

// registryWithGPUSim is the samples plus gpu-sim, sim's methods on GPUs.
func registryWithGPUSim(t *testing.T) *engine.Registry {
	t.Helper()
	reg := engine.NewRegistry()
	if err := samples.Register(reg); err != nil {
		t.Fatal(err)
	}
	sim, err := reg.Lookup("sim")
	if err != nil {
		t.Fatal(err)
	}
	gpuSim := *sim
	gpuSim.Name = "gpu-sim"
	gpuSim.SupportedResources = []string{engine.ResourceCPU, engine.ResourceGPU}
	if err := reg.Register(&gpuSim); err != nil {
		t.Fatal(err)
	}
	return reg
}

// remoteType stands in for engine/remote's runnable, which this package
// does not run: a remote runner's methods are those of the runner it names
// on its servers, as the source config defines it.
func remoteType(source *watcher.Config, reg *engine.Registry) *engine.RunnableType {
	return &engine.RunnableType{
		Name: watcher.RemoteRunnable,
		Describe: func(ctx context.Context, p engine.Params) ([]engine.MethodSpec, error) {
			var params struct {
				Endpoints []string `json:"endpoints"`
				Model     string   `json:"model"`
				TimeoutMS int64    `json:"timeout_ms"`
			}
			if err := p.Decode(&params); err != nil {
				return nil, err
			}
			runnable := params.Model // a runner outside the cluster: the test names it after a sample
			for _, r := range source.Runners {
				if r.Name == params.Model && r.Runnable != "" {
					runnable = r.Runnable
				}
			}
			typ, err := reg.Lookup(runnable)
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

func build(t *testing.T, config string, opts Options) (*watcher.Config, manifests, []byte) {
	t.Helper()
	src, err := watcher.Parse("benchtop.yaml", []byte(config))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Build(src, []byte(config), opts)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(objs)
	if err != nil {
		t.Fatal(err)
	}
	return src, decode(t, out), out
}

// TestWiring checks that the objects fit together as Kubernetes will join
// them: every remote endpoint of the front end names a headless Service
// that exists, on a port the Service has, whose target is a container port
// of the Deployment the Service selects; each pod mounts the ConfigMap key
// its --config names; GPU limits are what the runner's workers are planned
// on; each runner has a PodDisruptionBudget and, when its replicas allow,
// an autoscaler on its Deployment; the front end's config passes the checks
// of config check.
func TestWiring(t *testing.T) {
	for _, autoscaler := range []string{HPA, KEDA, None} {
		t.Run(autoscaler, func(t *testing.T) {
			opts := Options{Image: "registry.example/benchtop:1", Namespace: "ml", Autoscaler: autoscaler, DrainTimeout: 40 * time.Second}
			src, m, _ := build(t, wiringConfig, opts)
			checkWiring(t, src, m, opts)
		})
	}
}

func checkWiring(t *testing.T, src *watcher.Config, m manifests, opts Options) {
	if len(m.configMaps) != 1 {
		t.Fatalf("%d ConfigMaps, want 1", len(m.configMaps))
	}
	cm := m.configMaps[0]
	if cm.Data[ConfigKey] != wiringConfig {
		t.Errorf("the ConfigMap's %s is not the config as written", ConfigKey)
	}

	// The front end's config: valid, every runner remote, the APIs kept.
	front, err := watcher.Parse(FrontEndKey, []byte(cm.Data[FrontEndKey]))
	if err != nil {
		t.Fatalf("front end config does not parse: %v\n%s", err, cm.Data[FrontEndKey])
	}
	reg := registryWithGPUSim(t)
	if err := reg.Register(remoteType(src, reg)); err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := front.Check(t.Context(), eng); err != nil {
		t.Fatalf("front end config fails config check: %v", err)
	}
	if !reflect.DeepEqual(front.APIs, src.APIs) {
		t.Errorf("front end APIs %v, want %v", front.APIs, src.APIs)
	}
	if front.Server.Host != "0.0.0.0" || front.Server.Port != HTTPPort || !slices.Equal(front.Server.AllowedHosts, src.Server.AllowedHosts) {
		t.Errorf("front end server %+v", front.Server)
	}

	for i, r := range front.Runners {
		if r.Remote == nil {
			t.Fatalf("front end runner %s is not remote", r.Name)
		}
		if src.Runners[i].Remote != nil {
			if !slices.Equal(r.Remote.Endpoints, src.Runners[i].Remote.Endpoints) {
				t.Errorf("%s: endpoints %v, want those of the config %v", r.Name, r.Remote.Endpoints, src.Runners[i].Remote.Endpoints)
			}
			if _, ok := find(m.deployments, depName, r.Name); ok {
				t.Errorf("%s is remote already but got a Deployment", r.Name)
			}
			continue
		}
		if len(r.Remote.Endpoints) != 1 {
			t.Fatalf("%s: endpoints %v, want its Service", r.Name, r.Remote.Endpoints)
		}
		host, port, err := net.SplitHostPort(strings.TrimPrefix(r.Remote.Endpoints[0], "dns:///"))
		if err != nil || !strings.HasPrefix(r.Remote.Endpoints[0], "dns:///") {
			t.Fatalf("%s: endpoint %q is no dns:///host:port", r.Name, r.Remote.Endpoints[0])
		}
		name, ns, ok := strings.Cut(strings.TrimSuffix(host, ".svc.cluster.local"), ".")
		if !ok || ns != opts.Namespace {
			t.Fatalf("%s: endpoint host %q is no Service of namespace %s", r.Name, host, opts.Namespace)
		}
		svc, ok := find(m.services, svcName, name)
		if !ok {
			t.Fatalf("%s: endpoint names Service %q, which the manifests lack", r.Name, name)
		}
		if svc.Namespace != ns || svc.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("Service %s: namespace %q clusterIP %q, want %s and headless", name, svc.Namespace, svc.Spec.ClusterIP, ns)
		}
		sp := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return strconv.Itoa(int(p.Port)) == port })
		if sp < 0 {
			t.Fatalf("Service %s has no port %s", name, port)
		}
		dep := selected(t, m.deployments, svc.Spec.Selector)
		c := dep.Spec.Template.Spec.Containers[0]
		cp := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == svc.Spec.Ports[sp].TargetPort.StrVal })
		if cp < 0 || c.Ports[cp].ContainerPort != GRPCPort {
			t.Errorf("Service %s port %s targets %q, which is not the pod's gRPC port", name, port, svc.Spec.Ports[sp].TargetPort.StrVal)
		}
		if got := argOf(c.Args, "--runners"); got != r.Name {
			t.Errorf("Deployment %s serves --runners %q, want %q", dep.Name, got, r.Name)
		}
		if _, ok := find(m.pdbs, pdbName, dep.Name); !ok {
			t.Errorf("runner %s has no PodDisruptionBudget", r.Name)
		}
	}

	for _, dep := range m.deployments {
		checkPod(t, dep, cm)
	}
	for _, pdb := range m.pdbs {
		if d := selected(t, m.deployments, pdb.Spec.Selector.MatchLabels); d.Name != pdb.Name {
			t.Errorf("PodDisruptionBudget %s selects Deployment %s", pdb.Name, d.Name)
		}
	}

	// Resources: cores as request and limit; GPUs on which the engine plans
	// the runner's workers, one per GPU times workers_per_resource.
	sent, _ := find(m.deployments, depName, "sentiment")
	cpu := sent.Spec.Template.Spec.Containers[0].Resources
	if cpu.Requests.Cpu().MilliValue() != 1500 || cpu.Limits.Cpu().MilliValue() != 1500 {
		t.Errorf("sentiment resources %v, want cpu 1500m requested and limited", cpu)
	}
	gpuDep, _ := find(m.deployments, depName, "gpu-sim")
	limit := gpuDep.Spec.Template.Spec.Containers[0].Resources.Limits[GPUResource]
	gpus := int(limit.Value())
	podEngine, err := engine.New(engine.Options{Registry: registryWithGPUSim(t),
		GPUs: func() placement.Visible { return placement.Visible{Count: gpus} }})
	if err != nil {
		t.Fatal(err)
	}
	checked, err := watcher.ParseAndValidate(t.Context(), ConfigKey, []byte(cm.Data[ConfigKey]), podEngine, func(string) string { return "" },
		watcher.WithRunners([]string{argOf(gpuDep.Spec.Template.Spec.Containers[0].Args, "--runners")}))
	if err != nil {
		t.Fatalf("the gpu-sim pod's config does not plan on its %d GPUs: %v", gpus, err)
	}
	rc := checked.Plan.Config().Runners[0]
	typ, err := podEngine.Registry().Lookup(rc.Runnable)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := engine.PlanWorkers(typ, rc, 1, placement.Visible{Count: gpus})
	if err != nil {
		t.Fatal(err)
	}
	if gpus != 2 || plan.Workers != 4 {
		t.Errorf("gpu-sim: %d GPUs in the limits, %d workers planned; want 2 GPUs and 2 workers each", gpus, plan.Workers)
	}

	// Autoscaling: sim alone has room (2 to 6); the others run min pods.
	simDep, _ := find(m.deployments, depName, "sim")
	scaled := 0
	switch opts.Autoscaler {
	case HPA:
		scaled = len(m.hpas)
		for _, h := range m.hpas {
			if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != "sim" || *h.Spec.MinReplicas != 2 || h.Spec.MaxReplicas != 6 {
				t.Errorf("HPA %s: %+v", h.Name, h.Spec)
			}
			mt := h.Spec.Metrics[0]
			if mt.Type != autoscalingv2.PodsMetricSourceType || mt.Pods.Metric.Name != QueueDepthMetric || mt.Pods.Target.AverageValue.Value() != 16 {
				t.Errorf("HPA %s metric %+v, want pods %s averaging one batch (16)", h.Name, mt, QueueDepthMetric)
			}
		}
	case KEDA:
		scaled = len(m.scaledObjects)
		for _, s := range m.scaledObjects {
			tr := s.Spec.Triggers[0]
			if s.Spec.ScaleTargetRef.Name != "sim" || *s.Spec.MinReplicaCount != 2 || *s.Spec.MaxReplicaCount != 6 ||
				tr.Type != "prometheus" || !strings.Contains(tr.Metadata["query"], QueueDepthMetric+`{namespace="ml", runner="sim"}`) || tr.Metadata["threshold"] != "16" {
				t.Errorf("ScaledObject %s: %+v", s.Metadata.Name, s.Spec)
			}
		}
	case None:
		if len(m.hpas)+len(m.scaledObjects) > 0 {
			t.Error("--autoscaler none made autoscalers")
		}
		if simDep.Spec.Replicas == nil || *simDep.Spec.Replicas != 2 {
			t.Errorf("sim replicas %v, want its min, 2", simDep.Spec.Replicas)
		}
	}
	if opts.Autoscaler != None {
		if scaled != 1 || simDep.Spec.Replicas != nil {
			t.Errorf("%d autoscalers and sim replicas %v: want one, and the count left to it", scaled, simDep.Spec.Replicas)
		}
	}
	if sent.Spec.Replicas == nil || *sent.Spec.Replicas != 1 {
		t.Errorf("sentiment replicas %v, want 1", sent.Spec.Replicas)
	}
}

// checkPod: the config it reads is in the ConfigMap it mounts, the probes
// and the --port agree on the HTTP port, and it is given longer to stop
// than serve's drain.
func checkPod(t *testing.T, dep *appsv1.Deployment, cm *corev1.ConfigMap) {
	t.Helper()
	spec := dep.Spec.Template.Spec
	c := spec.Containers[0]
	cfg := argOf(c.Args, "--config")
	mount := slices.IndexFunc(c.VolumeMounts, func(v corev1.VolumeMount) bool { return strings.HasPrefix(cfg, v.MountPath+"/") })
	if mount < 0 {
		t.Fatalf("%s: --config %s is under no mount", dep.Name, cfg)
	}
	vol := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == c.VolumeMounts[mount].Name })
	if vol < 0 || spec.Volumes[vol].ConfigMap == nil || spec.Volumes[vol].ConfigMap.Name != cm.Name {
		t.Fatalf("%s: the mount of %s is not the ConfigMap %s", dep.Name, cfg, cm.Name)
	}
	if _, ok := cm.Data[strings.TrimPrefix(cfg, c.VolumeMounts[mount].MountPath+"/")]; !ok {
		t.Errorf("%s: --config %s is no key of the ConfigMap", dep.Name, cfg)
	}
	if argOf(c.Args, "--host") != "0.0.0.0" {
		t.Errorf("%s: --host %q, want every interface", dep.Name, argOf(c.Args, "--host"))
	}
	port := argOf(c.Args, "--port")
	for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
		cp := slices.IndexFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.HTTPGet.Port.StrVal })
		if cp < 0 || strconv.Itoa(int(c.Ports[cp].ContainerPort)) != port {
			t.Errorf("%s: probe %s on port %q, but serve listens on --port %s", dep.Name, p.HTTPGet.Path, p.HTTPGet.Port.String(), port)
		}
	}
	drain, err := time.ParseDuration(argOf(c.Args, "--drain-timeout"))
	if err != nil {
		t.Fatalf("%s: --drain-timeout: %v", dep.Name, err)
	}
	if grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second; grace <= drain+preStopSleep*time.Second {
		t.Errorf("%s: %s to stop, not more than the pre-stop sleep and the %s drain", dep.Name, grace, drain)
	}
	if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
		t.Errorf("%s: may run as root", dep.Name)
	}
}

// selected is the one Deployment whose pods the selector picks.
func selected(t *testing.T, deps []*appsv1.Deployment, selector map[string]string) *appsv1.Deployment {
	t.Helper()
	var got []*appsv1.Deployment
	for _, d := range deps {
		if k8slabels.SelectorFromSet(selector).Matches(k8slabels.Set(d.Spec.Template.Labels)) {
			got = append(got, d)
		}
	}
	if len(got) != 1 {
		t.Fatalf("selector %v picks %d Deployments' pods, want 1", selector, len(got))
	}
	return got[0]
}

func argOf(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// TestProbesHitRealRoutes asks a real server, bound to every interface
// with allowed_hosts set as a pod's front end is, the probes' requests as
// the kubelet sends them: each answers 200. Without the probes' Host header
// the kubelet would name the pod's IP, which the host guard refuses. The
// series the autoscalers read is one the server exposes for its runner.
func TestProbesHitRealRoutes(t *testing.T) {
	_, m, _ := build(t, wiringConfig, Options{Image: "registry.example/benchtop:1"})
	reg := prometheus.NewRegistry()
	eng := enginetest.New(t, enginetest.Options{Samples: true, Engine: engine.Options{Registerer: reg}})
	enginetest.Start(t, eng, engine.RunnerConfig{Name: "sim", Runnable: "sim", Workers: 1})
	srv, err := server.New(eng, server.Options{BindHost: "0.0.0.0", AllowedHosts: []string{"bench.example"}, Registerer: reg, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", ln.Addr().(*net.TCPAddr).Port)

	ask := func(path string, headers []corev1.HTTPHeader) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "10.1.2.3:3000" // the kubelet's default: the pod's IP
		for _, h := range headers {
			if h.Name == "Host" {
				req.Host = h.Value
			} else {
				req.Header.Set(h.Name, h.Value)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	probes := 0
	for _, dep := range m.deployments {
		c := dep.Spec.Template.Spec.Containers[0]
		for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
			probes++
			if code := ask(p.HTTPGet.Path, p.HTTPGet.HTTPHeaders); code != http.StatusOK {
				t.Errorf("%s: probe GET %s: %d, want 200", dep.Name, p.HTTPGet.Path, code)
			}
		}
	}
	if probes == 0 {
		t.Fatal("no probes")
	}
	if code := ask("/readyz", nil); code != http.StatusForbidden {
		t.Errorf("GET /readyz with the pod's IP as Host: %d; the guard should refuse it (403), which is why probes send Host", code)
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(mfs, func(mf *dto.MetricFamily) bool { return mf.GetName() == QueueDepthMetric })
	if i < 0 {
		t.Fatalf("the runner server exposes no %s", QueueDepthMetric)
	}
	found := false
	for _, s := range mfs[i].GetMetric() {
		for _, l := range s.GetLabel() {
			found = found || l.GetName() == "runner" && l.GetValue() == "sim"
		}
	}
	if !found {
		t.Errorf("%s has no series for runner sim", QueueDepthMetric)
	}
}

// TestSampleGolden: the manifests of the sample config, byte for byte
// (go test ./deploy/kubernetes -update rewrites the golden file).
func TestSampleGolden(t *testing.T) {
	src, err := os.ReadFile("../../samples/benchtop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := watcher.Parse("benchtop.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Build(cfg, src, Options{Image: "registry.example/benchtop:1"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(objs)
	if err != nil {
		t.Fatal(err)
	}
	decode(t, out)
	golden.RequireEqual(t, out)

	// --out writes the same documents, one file each, in the order to
	// apply them.
	dir := t.TempDir()
	if err := WriteDir(dir, objs); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var joined [][]byte
	for _, e := range entries {
		b, err := os.ReadFile(dir + "/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		joined = append(joined, b)
	}
	if got := bytes.Join(joined, []byte("---\n")); !bytes.Equal(got, out) {
		t.Error("the files of --out, in name order, differ from the stream")
	}
}

func TestBuildRefuses(t *testing.T) {
	cases := []struct {
		name, config string
		opts         Options
		want         string
	}{
		{"no image", "runners: [{name: sim, runnable: sim}]", Options{}, "--image: required"},
		{"autoscaler", "runners: [{name: sim, runnable: sim}]", Options{Image: "i", Autoscaler: "vpa"}, `--autoscaler "vpa": want hpa, keda or none`},
		{"namespace", "runners: [{name: sim, runnable: sim}]", Options{Image: "i", Namespace: "ML"}, `--namespace "ML"`},
		{"name no Service can have", "runners: [{name: sim.v2, runnable: sim}]", Options{Image: "i"},
			"runners[0] (sim.v2): the name is its Service's, so it must be lower-case letters, digits and '-', starting with a letter: rename it"},
		{"the front end's name", "runners: [{name: benchtop, runnable: sim}]", Options{Image: "i"}, `"benchtop" is the front end's name`},
		{"device ids", "runners: [{name: sim, runnable: sim, resources: {nvidia.com/gpu: [0, 2]}}]", Options{Image: "i"},
			"lists device ids [0 2]: a pod sees only the GPUs it is given, so give a count (2)"},
		{"workers against GPUs", "runners: [{name: sim, runnable: sim, workers: 3, resources: {nvidia.com/gpu: 2}}]", Options{Image: "i"},
			"workers 3 on 2 GPUs: a pod runs one worker per GPU (times workers_per_resource), 2 here: leave workers out"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := watcher.Parse("benchtop.yaml", []byte(tc.config))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Build(cfg, []byte(tc.config), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}
