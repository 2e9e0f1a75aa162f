package remote

import (
	"context"
	"fmt"
	"math"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/v2pb"
)

// dnsScheme marks an endpoint that is a name whose addresses are the
// endpoints (a Kubernetes headless Service).
const dnsScheme = "dns:///"

// EndpointState is one endpoint as the workbench shows it.
type EndpointState struct {
	Addr        string
	Healthy     bool
	LastError   string        // why it was last taken out ("" if never)
	Outstanding int64         // calls in flight now
	Calls       uint64        // calls answered, successes and errors
	Errors      uint64        // of which failed
	Latency     time.Duration // moving average of a call's round trip
}

// endpoint is one server: its connection and what the client knows of it.
type endpoint struct {
	addr   string
	conn   *grpc.ClientConn
	infer  v2pb.GRPCInferenceServiceClient
	health healthpb.HealthClient

	outstanding atomic.Int64
	healthy     atomic.Bool

	mu        sync.Mutex
	lastError string
	calls     uint64
	errors    uint64
	latency   time.Duration // exponentially weighted, 1/8 per call
}

func (ep *endpoint) record(d time.Duration, failed bool) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.calls++
	if failed {
		ep.errors++
	}
	if ep.latency == 0 {
		ep.latency = d
	} else {
		ep.latency += (d - ep.latency) / 8
	}
}

// setHealth records a probe's or a call's verdict; it reports whether the
// endpoint changed state.
func (ep *endpoint) setHealth(ok bool, why string) bool {
	if !ok {
		ep.mu.Lock()
		ep.lastError = why
		ep.mu.Unlock()
	}
	return ep.healthy.Swap(ok) != ok
}

func (ep *endpoint) state() EndpointState {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return EndpointState{Addr: ep.addr, Healthy: ep.healthy.Load(), LastError: ep.lastError,
		Outstanding: ep.outstanding.Load(), Calls: ep.calls, Errors: ep.errors, Latency: ep.latency}
}

// client calls one set of servers for the runners that share it. Its run
// goroutine probes the endpoints and re-resolves a DNS name; it stops when
// the last user releases the client.
type client struct {
	opts   Options
	params Params
	id     string // params.key(), its key in the clientSet
	runner string // the runner that acquired it last, for Pool.Endpoints
	users  int    // guarded by the clientSet's lock

	mu        sync.RWMutex
	endpoints []*endpoint
	batching  []ServerBatching // as the servers said, once read
	next      atomic.Uint64    // rotates ties between equally loaded endpoints
	changed   chan struct{}    // closed and replaced when health or the set changes

	stop chan struct{}
	done chan struct{}
}

func newClient(opts Options, params Params) *client {
	c := &client{opts: opts, params: params, changed: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	if !c.params.isDNS() {
		for _, addr := range params.Endpoints {
			c.add(addr)
		}
	}
	go c.run()
	return c
}

// sentKey marks a call's context with a flag the stats handler sets once
// the request has gone out, so that a failure can tell a request never sent
// (safe to send elsewhere) from one that may have run.
type sentKey struct{}

type sentTracker struct{}

func (sentTracker) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (sentTracker) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.OutPayload); ok {
		if f, ok := ctx.Value(sentKey{}).(*atomic.Bool); ok {
			f.Store(true)
		}
	}
}
func (sentTracker) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (sentTracker) HandleConn(context.Context, stats.ConnStats)                       {}

// add dials addr (lazily: grpc connects on first use) and counts it healthy
// until a probe or a call says otherwise.
func (c *client) add(addr string) {
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(sentTracker{}),
		// Fixed windows, as the server's: no bandwidth-probing pings.
		grpc.WithInitialWindowSize(4<<20), grpc.WithInitialConnWindowSize(4<<20),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)))
	ep := &endpoint{addr: addr, conn: conn}
	if err != nil {
		// Only a malformed target fails here; the config check refuses those.
		ep.lastError = err.Error()
	} else {
		ep.infer = v2pb.NewGRPCInferenceServiceClient(conn)
		ep.health = healthpb.NewHealthClient(conn)
		ep.healthy.Store(true)
	}
	c.mu.Lock()
	c.endpoints = append(c.endpoints, ep)
	c.mu.Unlock()
	c.notify()
}

// notify wakes whoever waits for a healthy endpoint.
func (c *client) notify() {
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *client) run() {
	defer close(c.done)
	probe := time.NewTicker(c.opts.ProbeEvery)
	defer probe.Stop()
	var resolve <-chan time.Time
	if c.params.isDNS() {
		c.resolve()
		t := time.NewTicker(c.opts.ResolveEvery)
		defer t.Stop()
		resolve = t.C
	}
	c.probe()
	for {
		select {
		case <-c.stop:
			c.mu.Lock()
			for _, ep := range c.endpoints {
				if ep.conn != nil {
					ep.conn.Close()
				}
			}
			c.mu.Unlock()
			return
		case <-probe.C:
			c.probe()
		case <-resolve:
			c.resolve()
		}
	}
}

// probe checks every endpoint's health (the model's, which is its runner's
// readiness) at once, each bounded by the probe interval.
func (c *client) probe() {
	c.mu.RLock()
	eps := append([]*endpoint(nil), c.endpoints...)
	c.mu.RUnlock()
	var wg sync.WaitGroup
	changed := atomic.Bool{}
	for _, ep := range eps {
		if ep.health == nil {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), max(c.opts.ProbeEvery, 500*time.Millisecond))
			defer cancel()
			resp, err := ep.health.Check(ctx, &healthpb.HealthCheckRequest{Service: c.params.Model})
			ok := err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING
			why := ""
			switch {
			case err != nil:
				why = "health check: " + status.Convert(err).Message()
			case !ok:
				why = "health check: " + resp.Status.String()
			}
			if ep.setHealth(ok, why) {
				changed.Store(true)
				if ok {
					c.opts.Logger.Info("remote endpoint back in", "model", c.params.Model, "endpoint", ep.addr)
				} else {
					c.opts.Logger.Warn("remote endpoint taken out", "model", c.params.Model, "endpoint", ep.addr, "why", why)
				}
			}
		})
	}
	wg.Wait()
	if changed.Load() {
		c.notify()
	}
}

// resolve looks the dns:/// name up again: new addresses are added, those
// gone are taken out (and closed once no call is in flight on them).
func (c *client) resolve() {
	hostport := strings.TrimPrefix(c.params.Endpoints[0], dnsScheme)
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return // the config check refuses it; nothing to resolve
	}
	lookup := c.opts.Lookup
	if lookup == nil {
		lookup = net.DefaultResolver.LookupHost
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.ResolveEvery)
	defer cancel()
	addrs, err := lookup(ctx, host)
	if err != nil {
		c.opts.Logger.Warn("remote endpoints: lookup failed; keeping the last addresses", "name", host, "err", err)
		return
	}
	want := map[string]bool{}
	for _, a := range addrs {
		want[net.JoinHostPort(a, port)] = true
	}
	c.mu.Lock()
	var keep []*endpoint
	var gone []*endpoint
	for _, ep := range c.endpoints {
		if want[ep.addr] {
			keep = append(keep, ep)
			delete(want, ep.addr)
		} else {
			gone = append(gone, ep)
		}
	}
	c.endpoints = keep
	c.mu.Unlock()
	for addr := range want {
		c.add(addr)
	}
	for _, ep := range gone {
		go func() {
			// Calls in flight there finish or time out first.
			deadline := time.Now().Add(c.params.timeout())
			for ep.outstanding.Load() > 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if ep.conn != nil {
				ep.conn.Close()
			}
		}()
	}
	if len(gone) > 0 {
		c.notify()
	}
}

// pick is the healthy endpoint with the fewest calls in flight, not one
// already tried; ties go round the endpoints.
func (c *client) pick(tried map[*endpoint]bool) *endpoint {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := len(c.endpoints)
	start := int(c.next.Add(1) % uint64(max(n, 1)))
	var best *endpoint
	for i := range n {
		ep := c.endpoints[(start+i)%n]
		if !ep.healthy.Load() || tried[ep] || ep.infer == nil {
			continue
		}
		if best == nil || ep.outstanding.Load() < best.outstanding.Load() {
			best = ep
		}
	}
	return best
}

// unavailable says why no endpoint can take a call.
func (c *client) unavailable() error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.endpoints) == 0 {
		return fmt.Errorf("%w: no runner server for %q: %s resolves to no address yet", engine.ErrNotReady, c.params.Model, c.params.Endpoints[0])
	}
	var why []string
	for _, ep := range c.endpoints {
		st := ep.state()
		why = append(why, fmt.Sprintf("%s: %s", st.Addr, orDefault(st.LastError, "failed")))
	}
	return fmt.Errorf("%w: no runner server for %q is healthy (%s)", engine.ErrNotReady, c.params.Model, strings.Join(why, "; "))
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// waitHealthy waits until an endpoint is healthy, for at most timeout.
func (c *client) waitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		c.mu.RLock()
		ch := c.changed
		c.mu.RUnlock()
		if c.pick(nil) != nil {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return c.unavailable()
		}
	}
}

// infer sends req to the least loaded healthy endpoint. A request that
// never left for an endpoint that failed is sent to the next one; one that
// may have run there is not (it fails, naming the endpoint); a server's own
// refusal (overload, with its retry delay) comes back as the engine's
// overload error, not retried into a storm.
func (c *client) infer(ctx context.Context, req *v2pb.ModelInferRequest) (*v2pb.ModelInferResponse, error) {
	var tried map[*endpoint]bool
	for {
		ep := c.pick(tried)
		if ep == nil {
			return nil, c.unavailable()
		}
		sent := new(atomic.Bool)
		ep.outstanding.Add(1)
		start := time.Now()
		resp, err := ep.infer.ModelInfer(context.WithValue(ctx, sentKey{}, sent), req)
		ep.outstanding.Add(-1)
		ep.record(time.Since(start), err != nil)
		if err == nil {
			return resp, nil
		}
		st := status.Convert(err)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("runner server %s: %w", ep.addr, ctx.Err())
		}
		switch st.Code() {
		case codes.Unavailable:
			if delay, ok := retryDelay(st); ok {
				return nil, &engine.OverloadError{Reason: fmt.Sprintf("runner server %s: %s", ep.addr, st.Message()), RetryAfter: delay}
			}
			// No retry delay: the connection failed, not the server's batcher.
			if ep.setHealth(false, st.Message()) {
				c.opts.Logger.Warn("remote endpoint taken out", "model", c.params.Model, "endpoint", ep.addr, "why", st.Message())
				c.notify()
			}
			if !sent.Load() {
				if tried == nil {
					tried = map[*endpoint]bool{}
				}
				tried[ep] = true
				continue
			}
			return nil, fmt.Errorf("%w: runner server %s failed while it had the request: %s", engine.ErrNotReady, ep.addr, st.Message())
		case codes.InvalidArgument, codes.OutOfRange:
			return nil, engine.InvalidInput(fmt.Errorf("runner server %s: %s", ep.addr, st.Message()))
		case codes.DeadlineExceeded:
			return nil, fmt.Errorf("%w: runner server %s: %s", engine.ErrTimeout, ep.addr, st.Message())
		case codes.NotFound:
			return nil, fmt.Errorf("runner server %s: %s (is remote.model right, and does its config serve it?)", ep.addr, st.Message())
		}
		return nil, fmt.Errorf("runner server %s: %s: %s", ep.addr, st.Code(), st.Message())
	}
}

// retryDelay is the delay a server's refusal asks for (RetryInfo); a
// runner server sends one with every Unavailable it answers itself.
func retryDelay(st *status.Status) (time.Duration, bool) {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.RetryDelay.AsDuration(), true
		}
	}
	return 0, false
}

func (c *client) states() []EndpointState {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]EndpointState, 0, len(c.endpoints))
	for _, ep := range c.endpoints {
		out = append(out, ep.state())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out
}

func (c *client) close() {
	close(c.stop)
	<-c.done
}

// clientSet shares clients between the runners (and the generations of a
// runner across reloads) that name the same servers.
type clientSet struct {
	opts Options
	mu   sync.Mutex
	byID map[string]*client
}

func newClientSet(opts Options) *clientSet {
	return &clientSet{opts: opts, byID: map[string]*client{}}
}

// acquire returns the client for params, made if need be; release it when
// done. runner ("" while only describing) names it for Pool.Endpoints.
func (s *clientSet) acquire(runner string, params Params) *client {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := params.key()
	c, ok := s.byID[id]
	if !ok {
		c = newClient(s.opts, params)
		c.id = id
		s.byID[id] = c
	}
	c.users++
	if runner != "" {
		c.runner = runner
	}
	return c
}

func (s *clientSet) release(c *client) {
	s.mu.Lock()
	c.users--
	last := c.users == 0
	if last {
		delete(s.byID, c.id)
	}
	s.mu.Unlock()
	if last {
		c.close()
	}
}

func (s *clientSet) forRunner(runner string) *client {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.byID {
		if c.runner == runner {
			return c
		}
	}
	return nil
}

func (s *clientSet) closeAll() {
	s.mu.Lock()
	all := make([]*client, 0, len(s.byID))
	for id, c := range s.byID {
		all = append(all, c)
		delete(s.byID, id)
	}
	s.mu.Unlock()
	for _, c := range all {
		c.close()
	}
}
