package server

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// What the front end holds is bounded three ways: the time a body may take
// to arrive (server.body_timeout), the bytes of the bodies in flight
// (server.max_inflight_mb), and the connections open at once (below the
// open-file limit).

// Defaults for the bounds; Options' zero values mean these.
const (
	DefaultBodyTimeout      = 30 * time.Second
	DefaultMaxInflightBytes = 256 << 20
)

// inflight is a budget of request-body bytes held at once. It never blocks:
// a request that does not fit is refused.
type inflight struct {
	limit int64
	used  atomic.Int64
}

func (b *inflight) tryAcquire(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *inflight) release(n int64) {
	if n > 0 {
		b.used.Add(-n)
	}
}

// admit checks a request before its handler runs: the host guard, then the
// body bounds. On success the body is wrapped (read deadline, and metering
// for a body of unknown length), and release must be called when the
// request ends.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) (release func(), err error) {
	release = func() {}
	if reason, err := s.guard.check(r); err != nil {
		s.refused.WithLabelValues(reason).Inc()
		return release, err
	}
	if r.Body == nil || r.Body == http.NoBody {
		return release, nil
	}
	var held int64
	// A body declared over MaxBodyBytes is refused unread (413) by readBody.
	if n := r.ContentLength; n > 0 && n <= s.opts.MaxBodyBytes {
		if n > s.inflight.limit {
			s.refused.WithLabelValues("inflight_bytes").Inc()
			return release, errorf(http.StatusRequestEntityTooLarge,
				"request body of %d bytes is more than the server may hold at once (server.max_inflight_mb: %s): send less, or raise server.max_inflight_mb",
				n, mib(s.inflight.limit))
		}
		if !s.inflight.tryAcquire(n) {
			s.refused.WithLabelValues("inflight_bytes").Inc()
			return release, s.inflightError()
		}
		held = n
	}
	rc := http.NewResponseController(w)
	// Not every ResponseWriter has a connection (httptest.ResponseRecorder);
	// there is then nothing to bound.
	_ = rc.SetReadDeadline(time.Now().Add(s.opts.BodyTimeout))
	body := &guardedBody{ReadCloser: r.Body, s: s, rc: rc, metered: r.ContentLength < 0}
	r.Body = body
	return func() { s.inflight.release(held + body.held) }, nil
}

func (s *Server) inflightError() error {
	return errorf(http.StatusServiceUnavailable,
		"server busy: request bodies in flight would pass server.max_inflight_mb (%s); retry later, or raise server.max_inflight_mb",
		mib(s.inflight.limit))
}

// guardedBody is a request body under the front end's bounds: reading past
// the deadline is a 408, reaching EOF lifts the deadline (so that a long
// inference is not cut short by it), and a body without a Content-Length
// is charged to the in-flight budget as its bytes arrive.
type guardedBody struct {
	io.ReadCloser
	s       *Server
	rc      *http.ResponseController
	metered bool
	held    int64 // metered bytes, released with the request
	read    int64
	err     error // the first error we made, repeated
}

func (b *guardedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	if b.metered && n > 0 {
		if !b.s.inflight.tryAcquire(int64(n)) {
			b.s.refused.WithLabelValues("inflight_bytes").Inc()
			b.err = b.s.inflightError()
			return 0, b.err
		}
		b.held += int64(n)
	}
	switch {
	case errors.Is(err, io.EOF):
		_ = b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.s.refused.WithLabelValues("body_timeout").Inc()
		b.err = errorf(http.StatusRequestTimeout,
			"request body not complete after %s (%d bytes received): send it faster, or raise server.body_timeout",
			b.s.opts.BodyTimeout, b.read)
		return n, b.err
	}
	return n, err
}

func mib(n int64) string {
	if n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// limitListener caps the connections open at once so that the process
// never runs out of file descriptors: at the cap it stops accepting, and
// the kernel's backlog holds new connections until one closes. Accept
// errors pass through unchanged, so that http.Server still backs off on
// temporary ones (EMFILE among them) instead of spinning or exiting.
type limitListener struct {
	net.Listener
	slots chan struct{}
	open  *atomic.Int64
	done  chan struct{}
	once  sync.Once
}

func newLimitListener(ln net.Listener, max int, open *atomic.Int64) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, max), open: open, done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	l.open.Add(1)
	return &limitConn{Conn: c, release: sync.OnceFunc(func() {
		l.open.Add(-1)
		<-l.slots
	})}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// connectionCap leaves a reserve of the open-file limit for everything that
// is not a connection (model files, worker pipes, logs, the config watch):
// a quarter of it, at least 64 and at most 4096.
func connectionCap(nofile uint64) int {
	const most = 1 << 20
	nofile = min(nofile, most) // RLIM_INFINITY among others
	reserve := min(max(nofile/4, 64), 4096)
	if nofile < 2*reserve {
		return int(max(nofile/2, 1))
	}
	return int(nofile - reserve)
}
