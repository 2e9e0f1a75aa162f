package watcher

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/store/names"
)

// Remote is a runner served elsewhere: by runner servers (`benchtop serve
// --runners NAME`) reached over KServe v2 gRPC. Batching, workers and
// resources are the servers' business, so a remote runner has none here.
type Remote struct {
	// Endpoints are host:port addresses, or one dns:///name:port whose
	// addresses (a Kubernetes headless Service) are re-resolved.
	Endpoints []string
	// Model is the runner's name on the servers; "" means the runner's own.
	Model string
	// Timeout bounds one remote call.
	Timeout time.Duration
	// Concurrency is how many calls may be in flight at once; 0 leaves it
	// to the remote runnable (engine/remote: a few per endpoint).
	Concurrency int
}

// RemoteRunnable is the runnable a remote: entry resolves to; engine/remote
// registers it.
const RemoteRunnable = "remote"

// DefaultRemoteTimeout bounds a remote call when remote.timeout is left out.
const DefaultRemoteTimeout = 30 * time.Second

// dnsScheme marks an endpoint that is a DNS name to re-resolve.
const dnsScheme = "dns:///"

// Replicas is how many pods `benchtop deploy kubernetes` runs a runner on:
// the autoscaler's bounds. Serving on one machine ignores it.
type Replicas struct{ Min, Max int }

// remoteOnlyKeys are the runner keys that belong to the runner servers, not
// to a front end that calls them.
var remoteOnlyKeys = []string{"workers", "workers_per_resource", "resources", "batching", "methods", "init", "timeout"}

func (d *decoder) remote(n *yaml.Node, p string) *Remote {
	rm := &Remote{}
	d.note(n, p)
	d.mapping(n, p, map[string]func(*yaml.Node, string){
		"endpoints": func(n *yaml.Node, p string) {
			d.sequence(n, p, func(n *yaml.Node, p string) { rm.Endpoints = append(rm.Endpoints, d.str(n, p)) })
		},
		"model":   func(n *yaml.Node, p string) { rm.Model = d.str(n, p) },
		"timeout": func(n *yaml.Node, p string) { rm.Timeout = d.duration(n, p) },
		"concurrency": func(n *yaml.Node, p string) {
			rm.Concurrency = d.integer(n, p)
		},
	})
	return rm
}

func (d *decoder) replicas(n *yaml.Node, p string) *Replicas {
	rp := &Replicas{Min: 1}
	d.note(n, p)
	maxSet := false
	d.mapping(n, p, map[string]func(*yaml.Node, string){
		"min": func(n *yaml.Node, p string) { rp.Min = d.integer(n, p) },
		"max": func(n *yaml.Node, p string) { rp.Max = d.integer(n, p); maxSet = true },
	})
	if !maxSet {
		rp.Max = rp.Min
	}
	return rp
}

// ReplicasOrDefault is r's replicas, or one pod when the file says nothing.
func (r Runner) ReplicasOrDefault() Replicas {
	if r.Replicas == nil {
		return Replicas{Min: 1, Max: 1}
	}
	return *r.Replicas
}

// params are the remote runnable's init params for a runner named name.
func (rm *Remote) params(name string) (string, engine.Params, error) {
	if len(rm.Endpoints) == 0 {
		return "", nil, fmt.Errorf("remote.endpoints: required, e.g. [10.0.0.7:3001, 10.0.0.8:3001] or [dns:///%s.default.svc.cluster.local:3001]", name)
	}
	model := rm.Model
	if model == "" {
		model = name
	}
	timeout := rm.Timeout
	if timeout == 0 {
		timeout = DefaultRemoteTimeout
	}
	params := engine.Params{
		"endpoints":  append([]string(nil), rm.Endpoints...),
		"model":      model,
		"timeout_ms": timeout.Milliseconds(),
	}
	if rm.Concurrency > 0 {
		params["concurrency"] = rm.Concurrency
	}
	return RemoteRunnable, params, nil
}

// checkScaleOut reports what is wrong with the remote: and replicas: keys,
// which the engine never sees whole: the endpoints' form, a remote runner
// given knobs that are its servers', and replicas out of order.
func (c *Config) checkScaleOut(add func(path, format string, args ...any)) {
	for i, r := range c.Runners {
		p := fmt.Sprintf("runners[%d]", i)
		if rm := r.Remote; rm != nil {
			for _, k := range remoteOnlyKeys {
				if _, given := c.pos[p+"."+k]; given {
					add(p+"."+k, "a remote runner has no %s: %s", k, remoteKeyHint(k))
				}
			}
			checkEndpoints(rm.Endpoints, p+".remote.endpoints", add)
			if rm.Model != "" && !names.Valid(rm.Model) {
				add(p+".remote.model", "%q: use %s", rm.Model, names.Rule)
			}
			if _, given := c.pos[p+".remote.concurrency"]; given && (rm.Concurrency < 1 || rm.Concurrency > engine.MaxWorkers) {
				add(p+".remote.concurrency", "%d: want 1 to %d calls in flight", rm.Concurrency, engine.MaxWorkers)
			}
			if _, given := c.pos[p+".remote.timeout"]; given && rm.Timeout <= 0 {
				add(p+".remote.timeout", "%s: want a duration above 0, such as 30s", rm.Timeout)
			}
		}
		if rp := r.Replicas; rp != nil {
			if rp.Min < 1 {
				add(p+".replicas.min", "%d: want at least 1", rp.Min)
			}
			if rp.Max < rp.Min {
				add(p+".replicas.max", "%d is below min (%d): want max ≥ min", rp.Max, rp.Min)
			}
		}
	}
}

// withoutServerKnobs is r without the keys that are its servers': they
// are reported once, by checkScaleOut, rather than again by the engine.
func (r Runner) withoutServerKnobs() Runner {
	r.Workers, r.WorkersPerResource, r.Resources, r.Timeout = 0, 0, engine.Resources{}, 0
	r.Batching, r.Methods, r.Init = Batching{}, nil, nil
	return r
}

func remoteKeyHint(key string) string {
	if key == "timeout" {
		return "bound its calls with remote.timeout (the runner servers' own timeout bounds a batch)"
	}
	return "it is the runner servers' (set it in their config, where the runner runs)"
}

// checkEndpoints checks each endpoint's form: host:port, or a single
// dns:///name:port.
func checkEndpoints(eps []string, p string, add func(path, format string, args ...any)) {
	seen := map[string]bool{}
	for j, ep := range eps {
		ip := fmt.Sprintf("%s[%d]", p, j)
		addr, isDNS := strings.CutPrefix(ep, dnsScheme)
		if isDNS && len(eps) > 1 {
			add(ip, "%q: a dns:/// name stands alone (its addresses are the endpoints): list it by itself, or list host:port addresses", ep)
			continue
		}
		if err := checkHostPort(addr); err != nil {
			add(ip, "%q: %v: want host:port (10.0.0.7:3001) or dns:///name:port (dns:///sim.default.svc.cluster.local:3001)", ep, err)
			continue
		}
		if seen[ep] {
			add(ip, "%q is listed twice", ep)
		}
		seen[ep] = true
	}
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("no port")
	}
	if host == "" || strings.ContainsAny(host, "/ \t") {
		return fmt.Errorf("no host")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not 1 to 65535", port)
	}
	return nil
}
