package process

import (
	"errors"
	"io"
	"math"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pipeReader reads the worker's stdout by waiting in poll(2) on the
// calling thread instead of parking in Go's netpoller. A result then wakes
// the very thread that waits for it, which takes about 10 µs off every
// round trip (a quarter of a small batch's cost). It keeps what the
// netpoller gave: a deadline, and interrupt, which makes a waiting Read
// return even if a process outside the worker's group holds the pipe open.
type pipeReader struct {
	f  *os.File // owns fd; must outlive every Read
	fd int

	deadline    atomic.Int64 // unix ns; 0 means none
	interrupted atomic.Bool
}

// pollSlice bounds each wait, so that interrupt is seen without a wake-up
// from the pipe itself.
const pollSlice = 50 * time.Millisecond

var errInterrupted = errors.New("read interrupted: the worker was stopped")

func newPipeReader(f *os.File) (*pipeReader, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &pipeReader{f: f, fd: -1}
	if err := rc.Control(func(fd uintptr) { r.fd = int(fd) }); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *pipeReader) setDeadline(t time.Time) {
	if t.IsZero() {
		r.deadline.Store(0)
		return
	}
	r.deadline.Store(t.UnixNano())
}

// interrupt makes every Read from now on fail with errInterrupted, once
// what the pipe already holds has been read.
func (r *pipeReader) interrupt() { r.interrupted.Store(true) }

func (r *pipeReader) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		n, err := syscall.Read(r.fd, b)
		switch {
		case err == nil && n == 0:
			return 0, io.EOF
		case err == nil:
			return n, nil
		case err == syscall.EINTR:
			continue
		case err != syscall.EAGAIN:
			return 0, &os.PathError{Op: "read", Path: "worker stdout", Err: err}
		}
		if r.interrupted.Load() {
			return 0, errInterrupted
		}
		wait := pollSlice
		if d := r.deadline.Load(); d != 0 {
			left := time.Until(time.Unix(0, d))
			if left <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			wait = min(wait, left)
		}
		ms := int(math.Ceil(float64(wait) / float64(time.Millisecond)))
		fds := []unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, ms); err != nil && err != unix.EINTR {
			return 0, &os.PathError{Op: "poll", Path: "worker stdout", Err: err}
		}
	}
}
