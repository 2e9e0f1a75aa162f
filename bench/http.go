package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/server/codec"
)

// HTTPOptions describe an HTTP target.
type HTTPOptions struct {
	// URL is a service API (http://127.0.0.1:3000/predict) or a KServe v2
	// infer route (http://127.0.0.1:3000/v2/models/sim/infer).
	URL string
	// Body is sent with every request. Empty: one is made from the
	// method's signature, read from the server (the v2 model metadata, or
	// the API's example in /docs.json).
	Body []byte
	// ContentType of Body; empty: the API's, else JSON when Body parses
	// as JSON and text/plain when it does not.
	ContentType string
	// Conns is how many keep-alive connections to hold: the concurrency,
	// so that no request waits for a connection or pays for a new one.
	Conns int
}

// HTTP is a target reached over HTTP; its batching figures come from the
// server's /metrics.
type HTTP struct {
	url, metricsURL string
	body            []byte
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
		url:        opts.URL,
		metricsURL: (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/metrics"}).String(),
		body:       opts.Body, contentType: opts.ContentType,
		transport: tr, client: &http.Client{Transport: tr},
	}
	base := (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
	if model, ok := v2Model(u.Path); ok {
		err = h.discoverV2(ctx, base, model)
	} else {
		err = h.discoverAPI(ctx, base, u.Path)
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

type v2Metadata struct {
	Inputs []struct {
		Name     string `json:"name"`
		Datatype string `json:"datatype"`
		Shape    []int  `json:"shape"`
	} `json:"inputs"`
	Parameters struct {
		Method string `json:"method"`
	} `json:"parameters"`
}

func (h *HTTP) discoverV2(ctx context.Context, base, model string) error {
	var md v2Metadata
	metaURL := base + "/v2/models/" + model
	if err := h.getJSON(ctx, metaURL, &md); err != nil {
		return fmt.Errorf("read model metadata (GET %s): %w", metaURL, err)
	}
	h.method = md.Parameters.Method
	h.runner = model
	if r, ok := strings.CutSuffix(model, "."+h.method); ok && h.method != "" {
		h.runner = r
	}
	if h.contentType == "" {
		h.contentType = "application/json"
	}
	if len(h.body) > 0 {
		return nil
	}
	if len(md.Inputs) != 1 {
		return fmt.Errorf("model %q has %d inputs: pass a request body with --input", model, len(md.Inputs))
	}
	body, err := v2Example(md.Inputs[0].Name, md.Inputs[0].Datatype, md.Inputs[0].Shape)
	if err != nil {
		return fmt.Errorf("model %q: %w", model, err)
	}
	h.body = body
	return nil
}

// v2Example is a v2 inference request whose one input fits the metadata.
func v2Example(name, datatype string, shape []int) ([]byte, error) {
	type v2Tensor struct {
		Name     string          `json:"name"`
		Shape    []int           `json:"shape"`
		Datatype string          `json:"datatype"`
		Data     json.RawMessage `json:"data"`
	}
	dt, err := tensor.ParseDType(datatype)
	if err != nil && datatype != "ANY" {
		return nil, fmt.Errorf("input %q: %w; pass a request body with --input", name, err)
	}
	var in v2Tensor
	if dt == tensor.String {
		// A text or JSON method: a JSON document is valid as either.
		doc, _ := json.Marshal(`{"text": "I love this!"}`)
		in = v2Tensor{name, []int{1}, dt.V2(), json.RawMessage("[" + string(doc) + "]")}
	} else {
		v := codec.ExampleValue(tensor.IOSpec{Kind: tensor.KindTensor, DType: dt, Shape: shape})
		t := v.Tensor()
		if t == nil {
			return nil, fmt.Errorf("input %q: no example for datatype %s shape %v; pass a request body with --input", name, datatype, shape)
		}
		in = v2Tensor{name, t.Shape(), t.DType().V2(), codec.AppendFlat(nil, t)}
	}
	return json.Marshal(map[string]any{"inputs": []v2Tensor{in}})
}

// openAPIDoc is the part of /docs.json that names an API's runner method
// and its example body.
type openAPIDoc struct {
	Paths map[string]struct {
		Post *struct {
			Summary     string `json:"summary"`
			RequestBody struct {
				Content map[string]struct {
					Example json.RawMessage `json:"example"`
				} `json:"content"`
			} `json:"requestBody"`
		} `json:"post"`
	} `json:"paths"`
}

func (h *HTTP) discoverAPI(ctx context.Context, base, path string) error {
	var doc openAPIDoc
	docURL := base + "/docs.json"
	err := h.getJSON(ctx, docURL, &doc)
	if err != nil {
		if len(h.body) > 0 {
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
	if i := strings.LastIndexByte(op.Summary, '.'); i > 0 {
		h.runner, h.method = op.Summary[:i], op.Summary[i+1:]
	}
	for ct, media := range op.RequestBody.Content {
		if h.contentType == "" {
			h.contentType = ct
		}
		if len(h.body) > 0 {
			break
		}
		if len(media.Example) == 0 {
			return fmt.Errorf("API %s has no example input: pass a request body with --input", path)
		}
		if ct == "text/plain" {
			var s string
			if err := json.Unmarshal(media.Example, &s); err != nil {
				return fmt.Errorf("API %s: example input: %w", path, err)
			}
			h.body = []byte(s)
		} else {
			h.body = media.Example
		}
		break
	}
	if len(h.body) == 0 {
		return fmt.Errorf("API %s has no example input: pass a request body with --input", path)
	}
	h.guessContentType()
	return nil
}

func (h *HTTP) guessContentType() {
	if h.contentType != "" {
		return
	}
	h.contentType = "text/plain"
	if json.Valid(h.body) {
		h.contentType = "application/json"
	}
}

// Body is what every request sends, with its content type.
func (h *HTTP) Body() (body []byte, contentType string) { return h.body, h.contentType }

// RunnerMethod is the runner method behind the URL, "" if unknown.
func (h *HTTP) RunnerMethod() (runner, method string) { return h.runner, h.method }

func (h *HTTP) String() string { return h.url }

// Close drops the idle connections.
func (h *HTTP) Close() { h.transport.CloseIdleConnections() }

// Call posts the body and reads the whole answer, so that the connection
// goes back to the pool.
func (h *HTTP) Call(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(h.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", h.contentType)
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
