package kubernetes

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/watcher"
)

// The ports every benchtop pod serves on: HTTP (the APIs, KServe v2 over
// HTTP, health, metrics) and KServe v2 gRPC, which front ends call runner
// servers on.
const (
	HTTPPort = 3000
	GRPCPort = 3001
)

// Names of what every deployment has once.
const (
	// FrontEnd is the API front end's Deployment and Service.
	FrontEnd = "benchtop"
	// ConfigMapName holds the config: ConfigKey as written, for the runner
	// servers, and FrontEndKey, the front end's, whose runners are remote.
	ConfigMapName = "benchtop-config"
	ConfigKey     = "benchtop.yaml"
	FrontEndKey   = "frontend.yaml"
	// ConfigDir is where the ConfigMap is mounted.
	ConfigDir = "/etc/benchtop"
)

// Labels and annotations the objects carry.
const (
	labelName      = "app.kubernetes.io/name"
	labelComponent = "app.kubernetes.io/component"
	labelRunner    = "benchtop/runner"
	annotConfig    = "benchtop/config-sha256"
)

// QueueDepthMetric is the series the autoscalers read: requests waiting in
// a runner's batching queues, per pod (engine/metrics.go).
const QueueDepthMetric = "benchtop_runner_queue_depth"

// Autoscalers.
const (
	HPA  = "hpa"
	KEDA = "keda"
	None = "none"
)

// preStopSleep lets the endpoints controller take a stopping pod out of
// its Service before the pod stops accepting: without it, front ends that
// resolved the pod's address a moment ago send it requests it refuses.
const preStopSleep = 5

// Options say how to deploy a config.
type Options struct {
	// Image runs benchtop as its entrypoint (the repository's Dockerfile).
	Image string
	// Namespace the objects live in; "" means "default".
	Namespace string
	// Autoscaler: HPA (autoscaling/v2 on a Pods metric through
	// prometheus-adapter), KEDA (a ScaledObject with a Prometheus
	// trigger) or None; "" means HPA.
	Autoscaler string
	// PrometheusURL is where KEDA queries; "" means DefaultPrometheusURL.
	PrometheusURL string
	// DrainTimeout is serve's --drain-timeout in every pod; pods are given
	// longer than it to stop. 0 means 30s, serve's default.
	DrainTimeout time.Duration
	// FrontEndReplicas is the front end's pod count; 0 means 2, so that one
	// can be evicted without an outage.
	FrontEndReplicas int32
}

// DefaultPrometheusURL is the Prometheus Operator's default Service.
const DefaultPrometheusURL = "http://prometheus-operated.monitoring.svc.cluster.local:9090"

// Object is one manifest: its typed object and the file it goes to with
// --out.
type Object struct {
	File   string
	Object any
}

// Build turns a config (source is its bytes, put as they are in the
// ConfigMap) into the objects that run it on Kubernetes: the ConfigMap, the
// front end's Service, Deployment and PodDisruptionBudget, and per runner
// that runs here (not already remote) a headless Service, a Deployment of
// runner servers, a PodDisruptionBudget and, where replicas.max is above
// min, an autoscaler.
func Build(cfg *watcher.Config, source []byte, opts Options) ([]Object, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if err := checkDeployable(cfg); err != nil {
		return nil, err
	}
	front, err := FrontEndConfig(cfg, opts.Namespace)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append(append([]byte(nil), source...), front...))
	b := builder{opts: opts, configSum: hex.EncodeToString(sum[:])}

	b.add("configmap", ConfigMapName, &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: b.meta(ConfigMapName, labels("config", "")),
		Data:       map[string]string{ConfigKey: string(source), FrontEndKey: string(front)},
	})
	frontLabels := labels("frontend", "")
	b.add("service", FrontEnd, b.service(FrontEnd, frontLabels, false))
	b.add("deployment", FrontEnd, b.deployment(FrontEnd, frontLabels, &opts.FrontEndReplicas,
		b.args(FrontEndKey), corev1.ResourceRequirements{}))
	b.add("pdb", FrontEnd, b.pdb(FrontEnd, frontLabels))

	for _, r := range cfg.Runners {
		if r.Remote != nil {
			continue // served elsewhere already: the front end calls it as it is
		}
		lb := labels("runner", r.Name)
		reps := r.ReplicasOrDefault()
		scaled := opts.Autoscaler != None && reps.Max > reps.Min
		var replicas *int32
		if !scaled {
			// An autoscaled Deployment leaves replicas to its autoscaler, so
			// that applying the manifests again does not reset the count.
			n := int32(reps.Min)
			replicas = &n
		}
		b.add("service", r.Name, b.service(r.Name, lb, true))
		b.add("deployment", r.Name, b.deployment(r.Name, lb, replicas,
			append(b.args(ConfigKey), "--runners", r.Name), runnerResources(r)))
		b.add("pdb", r.Name, b.pdb(r.Name, lb))
		if !scaled {
			continue
		}
		target := targetQueueDepth(r)
		switch opts.Autoscaler {
		case HPA:
			b.add("hpa", r.Name, b.hpa(r.Name, lb, reps, target))
		case KEDA:
			b.add("scaledobject", r.Name, b.scaledObject(r.Name, lb, reps, target))
		}
	}
	return b.objects, nil
}

func (o *Options) defaults() error {
	if o.Image == "" {
		return fmt.Errorf("--image: required, the image that runs benchtop (see the Dockerfile)")
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
		return fmt.Errorf("--namespace %q: %s", o.Namespace, strings.Join(errs, "; "))
	}
	switch o.Autoscaler {
	case "":
		o.Autoscaler = HPA
	case HPA, KEDA, None:
	default:
		return fmt.Errorf("--autoscaler %q: want hpa, keda or none", o.Autoscaler)
	}
	if o.PrometheusURL == "" {
		o.PrometheusURL = DefaultPrometheusURL
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = 30 * time.Second
	}
	if o.DrainTimeout < 0 {
		return fmt.Errorf("--drain-timeout %s: want a duration above 0", o.DrainTimeout)
	}
	if o.FrontEndReplicas == 0 {
		o.FrontEndReplicas = 2
	}
	return nil
}

// checkDeployable reports what a config can say on one machine but not as
// pods: names that are no Service name, and GPUs by device id.
func checkDeployable(cfg *watcher.Config) error {
	var errs []string
	for i, r := range cfg.Runners {
		if r.Remote != nil {
			continue
		}
		at := fmt.Sprintf("%s: runners[%d] (%s)", cfg.File, i, r.Name)
		if msgs := validation.IsDNS1035Label(r.Name); len(msgs) > 0 {
			errs = append(errs, fmt.Sprintf("%s: the name is its Service's, so it must be lower-case letters, digits and '-', starting with a letter: rename it", at))
		}
		if r.Name == FrontEnd {
			errs = append(errs, fmt.Sprintf("%s: %q is the front end's name: rename the runner", at, FrontEnd))
		}
		if len(r.Resources.GPUIDs) > 0 {
			errs = append(errs, fmt.Sprintf("%s: resources.nvidia.com/gpu lists device ids %v: a pod sees only the GPUs it is given, so give a count (%d)", at, r.Resources.GPUIDs, len(r.Resources.GPUIDs)))
		}
		if gpus := r.Resources.GPU; gpus > 0 && r.Workers > 0 {
			per := r.WorkersPerResource
			if per == 0 {
				per = 1
			}
			if want := int(math.Ceil(float64(gpus) * per)); r.Workers != want {
				errs = append(errs, fmt.Sprintf("%s: workers %d on %d GPUs: a pod runs one worker per GPU (times workers_per_resource), %d here: leave workers out", at, r.Workers, gpus, want))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cannot deploy:\n%s", strings.Join(errs, "\n"))
	}
	return nil
}

// ServiceHost is the DNS name of a runner's headless Service.
func ServiceHost(runner, namespace string) string {
	return fmt.Sprintf("%s.%s.svc.cluster.local", runner, namespace)
}

// FrontEndConfig is cfg for the front end: every runner remote (a runner
// that runs here points at its headless Service, whose name resolves to
// the addresses of its ready pods), the APIs as they are, the server bound
// to every interface of the pod.
func FrontEndConfig(cfg *watcher.Config, namespace string) ([]byte, error) {
	type remoteOut struct {
		Endpoints []string `yaml:"endpoints,flow"`
		Model     string   `yaml:"model,omitempty"`
		Timeout   string   `yaml:"timeout,omitempty"`
	}
	type runnerOut struct {
		Name   string    `yaml:"name"`
		Remote remoteOut `yaml:"remote"`
	}
	type serverOut struct {
		Host           string   `yaml:"host"`
		Port           int      `yaml:"port"`
		BodyTimeout    string   `yaml:"body_timeout"`
		MaxInflightMB  int      `yaml:"max_inflight_mb"`
		AllowedHosts   []string `yaml:"allowed_hosts,omitempty"`
		AllowedOrigins []string `yaml:"allowed_origins,omitempty"`
	}
	var out struct {
		Server  serverOut   `yaml:"server"`
		Runners []runnerOut `yaml:"runners"`
		APIs    []any       `yaml:"apis,omitempty"`
	}
	out.Server = serverOut{
		Host: "0.0.0.0", Port: HTTPPort, BodyTimeout: cfg.Server.BodyTimeout.String(), MaxInflightMB: cfg.Server.MaxInflightMB,
		AllowedHosts: cfg.Server.AllowedHosts, AllowedOrigins: cfg.Server.AllowedOrigins,
	}
	for _, r := range cfg.Runners {
		ro := runnerOut{Name: r.Name}
		if rm := r.Remote; rm != nil {
			ro.Remote = remoteOut{Endpoints: rm.Endpoints, Model: rm.Model}
			if rm.Timeout > 0 {
				ro.Remote.Timeout = rm.Timeout.String()
			}
		} else {
			ro.Remote = remoteOut{
				Endpoints: []string{"dns:///" + ServiceHost(r.Name, namespace) + ":" + strconv.Itoa(GRPCPort)},
				Timeout:   remoteTimeout(r).String(),
			}
		}
		out.Runners = append(out.Runners, ro)
	}
	for _, a := range cfg.APIs {
		out.APIs = append(out.APIs, a.FileForm())
	}
	var buf bytes.Buffer
	buf.WriteString("# The front end's config, made by `benchtop deploy kubernetes` from " + filepath.Base(cfg.File) + ":\n" +
		"# every runner is called on its runner servers (their headless Service).\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("front end config: %w", err)
	}
	return buf.Bytes(), nil
}

// remoteTimeout bounds the front end's call to a runner: the longest the
// server may queue it (max_latency of its slowest method) plus the batch's
// own timeout, so that the front end never gives up on a call the server
// would still answer.
func remoteTimeout(r watcher.Runner) time.Duration {
	latency := batcher.DefaultConfig().MaxLatency
	if r.Batching.MaxLatency != nil {
		latency = *r.Batching.MaxLatency
	}
	for _, m := range r.Methods {
		if m.MaxLatency != nil && *m.MaxLatency > latency {
			latency = *m.MaxLatency
		}
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = engine.DefaultTimeout
	}
	return (timeout + latency + time.Second - 1).Truncate(time.Second)
}

// targetQueueDepth is the average queue depth per pod the autoscaler keeps:
// one full batch waiting. Below it the workers keep up; above it requests
// wait longer than a batch for a worker, and more pods pay.
func targetQueueDepth(r watcher.Runner) int64 {
	n := batcher.DefaultConfig().MaxBatchSize
	if r.Batching.MaxBatchSize != nil && *r.Batching.MaxBatchSize > 0 {
		n = *r.Batching.MaxBatchSize
	}
	return int64(n)
}

// runnerResources are the pod's share of the node: the runner's cores as
// request and limit (the engine sizes its pool from what it may use), and
// its GPUs, which the device plugin hands over whole.
func runnerResources(r watcher.Runner) corev1.ResourceRequirements {
	var rr corev1.ResourceRequirements
	if r.Resources.CPU > 0 {
		cpu := *resource.NewMilliQuantity(int64(math.Round(r.Resources.CPU*1000)), resource.DecimalSI)
		rr.Requests = corev1.ResourceList{corev1.ResourceCPU: cpu}
		rr.Limits = corev1.ResourceList{corev1.ResourceCPU: cpu}
	}
	if gpus := r.Resources.GPU; gpus > 0 {
		if rr.Limits == nil {
			rr.Limits = corev1.ResourceList{}
		}
		rr.Limits[GPUResource] = *resource.NewQuantity(int64(gpus), resource.DecimalSI)
	}
	return rr
}

// GPUResource is the NVIDIA device plugin's resource.
const GPUResource corev1.ResourceName = "nvidia.com/gpu"

func labels(component, runner string) map[string]string {
	l := map[string]string{labelName: "benchtop", labelComponent: component}
	if runner != "" {
		l[labelRunner] = runner
	}
	return l
}

type builder struct {
	opts      Options
	configSum string
	objects   []Object
}

func (b *builder) add(kind, name string, obj any) {
	b.objects = append(b.objects, Object{File: fmt.Sprintf("%02d-%s-%s.yaml", len(b.objects), kind, name), Object: obj})
}

func (b *builder) meta(name string, lb map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: b.opts.Namespace, Labels: lb}
}

// args are serve's in every pod: the config at key, every interface of the
// pod (the Service routes to the pod's IP), the ports the probes and the
// Services name.
func (b *builder) args(key string) []string {
	return []string{"serve", "--config", ConfigDir + "/" + key, "--host", "0.0.0.0",
		"--port", strconv.Itoa(HTTPPort), "--drain-timeout", b.opts.DrainTimeout.String(), "--log-format", "json"}
}

func ports() []corev1.ServicePort {
	return []corev1.ServicePort{
		{Name: "http", Port: HTTPPort, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP},
		{Name: "grpc", Port: GRPCPort, TargetPort: intstr.FromString("grpc"), Protocol: corev1.ProtocolTCP, AppProtocol: ptr("grpc")},
	}
}

// service is a runner's headless Service (its DNS name resolves to each
// ready pod, which is how front ends balance and notice pods come and go)
// or the front end's ClusterIP one.
func (b *builder) service(name string, lb map[string]string, headless bool) *corev1.Service {
	s := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: b.meta(name, lb),
		Spec:       corev1.ServiceSpec{Selector: lb, Ports: ports()},
	}
	if headless {
		s.Spec.ClusterIP = corev1.ClusterIPNone
	}
	return s
}

// probe asks path on the HTTP port with Host: localhost, which the
// server's host guard accepts however allowed_hosts is set (the kubelet
// would otherwise send the pod's IP).
func probe(path string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromString("http"),
			HTTPHeaders: []corev1.HTTPHeader{{Name: "Host", Value: "localhost"}},
		}},
		PeriodSeconds: period, FailureThreshold: failures, TimeoutSeconds: 2,
	}
}

func (b *builder) deployment(name string, lb map[string]string, replicas *int32, args []string, rr corev1.ResourceRequirements) *appsv1.Deployment {
	grace := int64(preStopSleep + b.opts.DrainTimeout.Seconds() + 10)
	container := corev1.Container{
		Name: "benchtop", Image: b.opts.Image, Args: args,
		Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: HTTPPort, Protocol: corev1.ProtocolTCP},
			{Name: "grpc", ContainerPort: GRPCPort, Protocol: corev1.ProtocolTCP},
		},
		// The port opens once the config is applied and the runners have
		// started (models loaded): up to 10 minutes before liveness counts.
		StartupProbe:   probe("/livez", 5, 120),
		LivenessProbe:  probe("/livez", 10, 3),
		ReadinessProbe: probe("/readyz", 5, 2),
		Resources:      rr,
		VolumeMounts:   []corev1.VolumeMount{{Name: "config", MountPath: ConfigDir, ReadOnly: true}},
		Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
			Sleep: &corev1.SleepAction{Seconds: preStopSleep},
		}},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: b.meta(name, lb),
		Spec: appsv1.DeploymentSpec{
			Replicas: replicas,
			Selector: &metav1.LabelSelector{MatchLabels: lb},
			// One pod at a time, never below the count: a runner's capacity
			// holds through a rollout.
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr(intstr.FromInt32(0)), MaxSurge: ptr(intstr.FromInt32(1)),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: lb,
					Annotations: map[string]string{
						// A new config rolls the pods.
						annotConfig:            b.configSum,
						"prometheus.io/scrape": "true",
						"prometheus.io/port":   strconv.Itoa(HTTPPort),
						"prometheus.io/path":   "/metrics",
					},
				},
				Spec: corev1.PodSpec{
					Containers:                    []corev1.Container{container},
					TerminationGracePeriodSeconds: &grace,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr(true),
						RunAsUser:      ptr(int64(65532)),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
						ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: ConfigMapName}},
					}}},
				},
			},
		},
	}
}

// pdb lets a voluntary disruption (a node drain) take one pod at a time.
func (b *builder) pdb(name string, lb map[string]string) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: b.meta(name, lb),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: lb},
		},
	}
}

func (b *builder) hpa(name string, lb map[string]string, reps watcher.Replicas, target int64) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: b.meta(name, lb),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			MinReplicas:    ptr(int32(reps.Min)),
			MaxReplicas:    int32(reps.Max),
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.PodsMetricSourceType,
				Pods: &autoscalingv2.PodsMetricSource{
					Metric: autoscalingv2.MetricIdentifier{Name: QueueDepthMetric},
					Target: autoscalingv2.MetricTarget{
						Type: autoscalingv2.AverageValueMetricType, AverageValue: resource.NewQuantity(target, resource.DecimalSI),
					},
				},
			}},
		},
	}
}

// ScaledObject is KEDA's keda.sh/v1alpha1 ScaledObject, the fields we set.
type ScaledObject struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            ScaledObjectSpec  `json:"spec"`
}

// ScaledObjectSpec is what KEDA scales and on what.
type ScaledObjectSpec struct {
	ScaleTargetRef  ScaleTarget    `json:"scaleTargetRef"`
	MinReplicaCount *int32         `json:"minReplicaCount,omitempty"`
	MaxReplicaCount *int32         `json:"maxReplicaCount,omitempty"`
	PollingInterval *int32         `json:"pollingInterval,omitempty"`
	Triggers        []ScaleTrigger `json:"triggers"`
}

// ScaleTarget names the Deployment KEDA scales.
type ScaleTarget struct {
	Name string `json:"name"`
}

// ScaleTrigger is one KEDA scaler and its settings.
type ScaleTrigger struct {
	Type       string            `json:"type"`
	MetricType string            `json:"metricType,omitempty"`
	Metadata   map[string]string `json:"metadata"`
}

// scaledObject scales on the same series as the HPA: KEDA divides the
// runner's total queue depth by the pod count and compares that with the
// threshold (metricType AverageValue).
func (b *builder) scaledObject(name string, lb map[string]string, reps watcher.Replicas, target int64) *ScaledObject {
	return &ScaledObject{
		TypeMeta: metav1.TypeMeta{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject"},
		Metadata: b.meta(name, lb),
		Spec: ScaledObjectSpec{
			ScaleTargetRef:  ScaleTarget{Name: name},
			MinReplicaCount: ptr(int32(reps.Min)),
			MaxReplicaCount: ptr(int32(reps.Max)),
			PollingInterval: ptr(int32(15)),
			Triggers: []ScaleTrigger{{
				Type: "prometheus", MetricType: "AverageValue",
				Metadata: map[string]string{
					"serverAddress": b.opts.PrometheusURL,
					"query":         fmt.Sprintf(`sum(%s{namespace=%q, runner=%q})`, QueueDepthMetric, b.opts.Namespace, name),
					"threshold":     strconv.FormatInt(target, 10),
				},
			}},
		},
	}
}

func ptr[T any](v T) *T { return &v }

// marshal writes one object without its status: the typed objects carry
// one (zero counters, an empty load balancer), which is the cluster's to
// fill and has no place in a manifest.
func marshal(o Object) ([]byte, error) {
	j, err := json.Marshal(o.Object)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", o.File, err)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, fmt.Errorf("marshal %s: %w", o.File, err)
	}
	delete(m, "status")
	y, err := sigsyaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", o.File, err)
	}
	return y, nil
}

// Marshal writes the objects as one multi-document YAML stream.
func Marshal(objs []Object) ([]byte, error) {
	var buf bytes.Buffer
	for i, o := range objs {
		y, err := marshal(o)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(y)
	}
	return buf.Bytes(), nil
}

// WriteDir writes each object to a file of its own in dir, numbered in the
// order to apply them (kubectl apply -f dir reads them in name order).
func WriteDir(dir string, objs []Object) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	for _, o := range objs {
		y, err := marshal(o)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, o.File), y, 0o644); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	return nil
}
