package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/server/codec"
)

// HTTPOptions describe an HTTP target.
type HTTPOptions struct {
	// URL is a service API (http://127.0.0.1:3000/predict) or a KServe v2
	// infer route (http://127.0.0.1:3000/v2/models/sim/infer).
	URL string
	// Body is sent with every request. Empty: bodies are made from the
	// method's signature, read from the server (the v2 model metadata, and
	// for an API its IO kinds and example in /docs.json).
	Body []byte
	// Gen, when set and Body is empty, makes a pool of different bodies
	// (Generate) sent in turn; nil sends the method's example every time.
	Gen *GenOptions
	// ContentType of Body; empty: the API's, else JSON when Body parses
	// as JSON and text/plain when it does not.
	ContentType string
	// Conns is how many keep-alive connections to hold: the concurrency,
	// so that no request waits for a connection or pays for a new one.
	Conns int
	// Binary sends a v2 route's tensors as raw bytes after a JSON header
	// (Triton's binary data extension) and asks for the outputs the same
	// way. Bodies are then made from the signature: Body must be empty.
	Binary bool
}

// HTTP is a target reached over HTTP; its batching figures come from the
// server's /metrics.
type HTTP struct {
	url, metricsURL string
	bodies          [][]byte // sent in turn
	headerLens      []string // each body's Inference-Header-Content-Length; nil: JSON bodies
	binary          bool
	next            atomic.Uint64
	contentType     string
	runner, method  string // "" when the URL does not map to a runner
	transport       *http.Transport
	client          *http.Client
}

// discoveryTimeout bounds each request made to learn about the target.
const discoveryTimeout = 10 * time.Second

// NewHTTP checks the URL and learns the runner method behind it and, if
// opts.Body is empty, an example input. Close releases its connections.
func NewHTTP(ctx context.Context, opts HTTPOptions) (*HTTP, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("url %q: want http://HOST:PORT/API or http://HOST:PORT/v2/models/MODEL/infer", opts.URL)
	}
	model, isV2 := v2Model(u.Path)
	if opts.Binary && !isV2 {
		return nil, fmt.Errorf("url %q: binary tensors are sent to a v2 route: want http://HOST:PORT/v2/models/MODEL/infer", opts.URL)
	}
	if opts.Binary && len(opts.Body) > 0 {
		return nil, errors.New("binary bodies are made from the model's signature: leave out the body (--input), or send it without --binary")
	}
	conns := max(opts.Conns, 1)
	tr := &http.Transport{
		// No proxy: a benchmark of a local server must not detour.
		Proxy:               nil,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	h := &HTTP{
		url:         opts.URL,
		metricsURL:  (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/metrics"}).String(),
		contentType: opts.ContentType,
		binary:      opts.Binary,
		transport:   tr, client: &http.Client{Transport: tr},
	}
	if len(opts.Body) > 0 {
		h.bodies = [][]byte{opts.Body}
	}
	base := (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
	if isV2 {
		err = h.discoverV2(ctx, base, model, opts.Gen)
	} else {
		err = h.discoverAPI(ctx, base, u.Path, opts.Gen)
	}
	if err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// v2Model extracts MODEL from /v2/models/MODEL/infer.
func v2Model(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/v2/models/")
	if !ok {
		return "", false
	}
	model, ok := strings.CutSuffix(rest, "/infer")
	return model, ok && model != "" && !strings.Contains(model, "/")
}

func (h *HTTP) getJSON(ctx context.Context, u string, dst any) error {
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return &StatusError{Code: resp.StatusCode, Message: snippet(body)}
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	return nil
}

// v2Slot is one input or output in v2 model metadata, with the parameters
// benchtop adds where v2's fields cannot say enough.
type v2Slot struct {
	Name       string `json:"name"`
	Datatype   string `json:"datatype"`
	Shape      []int  `json:"shape"`
	Parameters struct {
		Optional  bool   `json:"optional"`
		Unbatched bool   `json:"unbatched"`
		AnyShape  bool   `json:"any_shape"`
		Content   string `json:"content"`
	} `json:"parameters"`
}

type v2Metadata struct {
	Inputs     []v2Slot `json:"inputs"`
	Parameters struct {
		Method    string `json:"method"`
		Batchable bool   `json:"batchable"`
		BatchDim  int    `json:"batch_dim"`
	} `json:"parameters"`
}

// spec is the method's signature as the metadata gives it: enough to make
// inputs it takes (its outputs are not needed).
func (md v2Metadata) spec() (engine.MethodSpec, error) {
	m := engine.MethodSpec{Name: md.Parameters.Method, Batchable: md.Parameters.Batchable, BatchDim: md.Parameters.BatchDim}
	for _, in := range md.Inputs {
		s := tensor.IOSpec{Name: in.Name, Kind: tensor.KindTensor, Shape: in.Shape,
			Optional: in.Parameters.Optional, Unbatched: in.Parameters.Unbatched}
		switch in.Parameters.Content {
		case "text":
			s = tensor.IOSpec{Name: in.Name, Kind: tensor.KindText, Optional: s.Optional, Unbatched: s.Unbatched}
		case "json":
			s = tensor.IOSpec{Name: in.Name, Kind: tensor.KindJSON, Optional: s.Optional, Unbatched: s.Unbatched}
		default:
			if in.Parameters.AnyShape {
				s.Shape = nil
			}
			if in.Datatype != "" { // none: any dtype
				dt, err := tensor.ParseDType(in.Datatype)
				if err != nil {
					return m, fmt.Errorf("input %q: %w; pass a request body with --input", in.Name, err)
				}
				s.DType = dt
			}
		}
		m.Inputs = append(m.Inputs, s)
	}
	return m, nil
}

// readSpec reads a model's metadata: the runner method behind it and its
// signature.
func (h *HTTP) readSpec(ctx context.Context, base, model string) (engine.MethodSpec, error) {
	var md v2Metadata
	metaURL := base + "/v2/models/" + model
	if err := h.getJSON(ctx, metaURL, &md); err != nil {
		return engine.MethodSpec{}, fmt.Errorf("read model metadata (GET %s): %w", metaURL, err)
	}
	spec, err := md.spec()
	if err != nil {
		return engine.MethodSpec{}, fmt.Errorf("model %q: %w", model, err)
	}
	return spec, nil
}

// inputs is the pool of requests to send: Generate's when gen is set,
// else the method's example.
func inputs(spec engine.MethodSpec, gen *GenOptions) ([][]tensor.Value, error) {
	if gen == nil {
		return [][]tensor.Value{codec.ExampleValues(spec.Inputs)}, nil
	}
	return Generate(spec, *gen, PoolSize)
}

func (h *HTTP) discoverV2(ctx context.Context, base, model string, gen *GenOptions) error {
	spec, err := h.readSpec(ctx, base, model)
	if err != nil {
		return err
	}
	h.method = spec.Name
	h.runner = model
	if r, ok := strings.CutSuffix(model, "."+h.method); ok && h.method != "" {
		h.runner = r
	}
	if h.contentType == "" {
		h.contentType = "application/json"
		if h.binary {
			h.contentType = "application/octet-stream"
		}
	}
	if len(h.bodies) > 0 {
		return nil
	}
	pool, err := inputs(spec, gen)
	if err != nil {
		return fmt.Errorf("model %q: %w", model, err)
	}
	for _, in := range pool {
		if h.binary {
			body, headerLen, err := v2BinaryBody(spec.Inputs, in)
			if err != nil {
				return fmt.Errorf("model %q: %w", model, err)
			}
			h.bodies = append(h.bodies, body)
			h.headerLens = append(h.headerLens, strconv.Itoa(headerLen))
			continue
		}
		body, err := v2Body(spec.Inputs, in)
		if err != nil {
			return fmt.Errorf("model %q: %w", model, err)
		}
		h.bodies = append(h.bodies, body)
	}
	return nil
}

// openAPIDoc is the part of /docs.json that names an API's runner method,
// its IO kinds and its example body.
type openAPIDoc struct {
	Paths map[string]struct {
		Post *struct {
			Summary  string `json:"summary"`
			Benchtop struct {
				Runner string        `json:"runner"`
				Method string        `json:"method"`
				Input  engine.IOKind `json:"input"`
			} `json:"x-benchtop"`
			RequestBody struct {
				Content map[string]struct {
					Example json.RawMessage `json:"example"`
				} `json:"content"`
			} `json:"requestBody"`
		} `json:"post"`
	} `json:"paths"`
}

func (h *HTTP) discoverAPI(ctx context.Context, base, path string, gen *GenOptions) error {
	var doc openAPIDoc
	docURL := base + "/docs.json"
	err := h.getJSON(ctx, docURL, &doc)
	if err != nil {
		if len(h.bodies) > 0 {
			// Not a benchtop server (or an old one): it can still be
			// loaded, without batching figures.
			h.guessContentType()
			return nil
		}
		return fmt.Errorf("learn the API's input (GET %s): %w; pass a request body with --input", docURL, err)
	}
	op := doc.Paths[path].Post
	if op == nil {
		var apis []string
		for p, item := range doc.Paths {
			if item.Post != nil && !strings.HasPrefix(p, "/v2/") {
				apis = append(apis, p)
			}
		}
		slices.Sort(apis)
		return fmt.Errorf("no API at POST %s (APIs: %s)", path, strings.Join(apis, ", "))
	}
	h.runner, h.method = op.Benchtop.Runner, op.Benchtop.Method
	if i := strings.LastIndexByte(op.Summary, '.'); h.runner == "" && i > 0 {
		h.runner, h.method = op.Summary[:i], op.Summary[i+1:]
	}
	for ct := range op.RequestBody.Content {
		if h.contentType == "" {
			h.contentType = ct
		}
		break
	}
	switch {
	case len(h.bodies) > 0:
	case gen != nil:
		if err := h.generateAPIBodies(ctx, base, path, op.Benchtop.Input, gen); err != nil {
			return err
		}
	default:
		if err := h.exampleAPIBody(path, op.RequestBody.Content); err != nil {
			return err
		}
	}
	h.guessContentType()
	return nil
}

// exampleAPIBody takes the API's example from /docs.json.
func (h *HTTP) exampleAPIBody(path string, content map[string]struct {
	Example json.RawMessage `json:"example"`
}) error {
	for ct, media := range content {
		if len(media.Example) == 0 {
			break
		}
		body := []byte(media.Example)
		if ct == "text/plain" {
			var s string
			if err := json.Unmarshal(media.Example, &s); err != nil {
				return fmt.Errorf("API %s: example input: %w", path, err)
			}
			body = []byte(s)
		}
		h.bodies = [][]byte{body}
		return nil
	}
	return fmt.Errorf("API %s has no example input: pass a request body with --input", path)
}

// generateAPIBodies makes a pool of bodies for an API from its method's
// signature, read from the v2 metadata of runner.method: an object keyed
// by input name, or an ndarray for an API of one tensor input.
func (h *HTTP) generateAPIBodies(ctx context.Context, base, path string, kind engine.IOKind, gen *GenOptions) error {
	if kind != engine.IOObject && kind != engine.IONDArray {
		return fmt.Errorf("API %s takes %s bodies: --rows, --seq-len and --vocab make tensors (ndarray or object APIs); leave them out, or pass a body with --input", path, kind)
	}
	if h.runner == "" {
		return fmt.Errorf("API %s does not say which method it calls: pass a body with --input", path)
	}
	spec, err := h.readSpec(ctx, base, h.runner+"."+h.method)
	if err != nil {
		return err
	}
	pool, err := Generate(spec, *gen, PoolSize)
	if err != nil {
		return fmt.Errorf("API %s (%s.%s): %w", path, h.runner, h.method, err)
	}
	for _, in := range pool {
		body, err := codec.EncodeObject(spec.Inputs, in)
		if kind == engine.IONDArray {
			if len(in) != 1 || in[0].Tensor() == nil {
				return fmt.Errorf("API %s takes an ndarray, but %s.%s takes %s", path, h.runner, h.method, spec.Inputs)
			}
			body = codec.AppendNDArray(nil, in[0].Tensor())
		}
		if err != nil {
			return fmt.Errorf("API %s: %w", path, err)
		}
		h.bodies = append(h.bodies, body)
	}
	return nil
}

func (h *HTTP) guessContentType() {
	if h.contentType != "" || len(h.bodies) == 0 {
		return
	}
	h.contentType = "text/plain"
	if json.Valid(h.bodies[0]) {
		h.contentType = "application/json"
	}
}

// Bodies are what requests send, in turn, with their content type.
func (h *HTTP) Bodies() (bodies [][]byte, contentType string) { return h.bodies, h.contentType }

// RunnerMethod is the runner method behind the URL, "" if unknown.
func (h *HTTP) RunnerMethod() (runner, method string) { return h.runner, h.method }

func (h *HTTP) String() string {
	if h.binary {
		return h.url + " (binary tensors)"
	}
	return h.url
}

// Close drops the idle connections.
func (h *HTTP) Close() { h.transport.CloseIdleConnections() }

// Call posts the next body and reads the whole answer, so that the
// connection goes back to the pool.
func (h *HTTP) Call(ctx context.Context) error {
	i := 0
	if len(h.bodies) > 1 {
		i = int((h.next.Add(1) - 1) % uint64(len(h.bodies)))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(h.bodies[i]))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", h.contentType)
	if h.headerLens != nil {
		req.Header.Set(v2HeaderLength, h.headerLens[i])
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		io.Copy(io.Discard, resp.Body)
		return &StatusError{Code: resp.StatusCode, Message: snippet(msg), RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	return nil
}

// ServerStats scrapes /metrics for the runner method behind the URL.
func (h *HTTP) ServerStats(ctx context.Context) (ServerStats, error) {
	if h.runner == "" {
		return ServerStats{}, ErrNoServerStats
	}
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.metricsURL, nil)
	if err != nil {
		return ServerStats{}, err
	}
	// The text format: the parser reads nothing else.
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := h.client.Do(req)
	if err != nil {
		return ServerStats{}, fmt.Errorf("scrape %s: %w", h.metricsURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		io.Copy(io.Discard, resp.Body)
		return ServerStats{}, fmt.Errorf("scrape %s: %w", h.metricsURL, ErrNoServerStats)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return ServerStats{}, fmt.Errorf("scrape %s: %w", h.metricsURL, &StatusError{Code: resp.StatusCode, Message: snippet(msg)})
	}
	s, err := ParseMetrics(resp.Body, h.runner, h.method)
	if err != nil {
		return ServerStats{}, fmt.Errorf("scrape %s: %w", h.metricsURL, err)
	}
	return s, nil
}

// retryAfter reads a Retry-After header: a number of seconds, or an HTTP
// date (RFC 9110, 10.2.3). 0 when absent, unreadable or past.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, maxRetryAfter)) * time.Second
	}
	if at, err := http.ParseTime(h); err == nil && at.After(now) {
		return min(at.Sub(now), maxRetryAfter*time.Second)
	}
	return 0
}

// maxRetryAfter bounds a Retry-After in seconds, so that a huge one cannot
// overflow a Duration; a level never runs that long anyway.
const maxRetryAfter = 24 * 60 * 60

// snippet is the readable start of an error body: the "error" field of a
// JSON error, else the text itself, on one line.
func snippet(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

var _ Target = (*HTTP)(nil)
