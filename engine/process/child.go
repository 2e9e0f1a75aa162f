package process

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// child is one worker process and the host's ends of its pipes.
type child struct {
	cmd    *exec.Cmd
	pid    int
	stdin  *os.File
	stdout *pipeReader
	out    *bufio.Reader
	stderr *stderrTail
	// stderrPipe is the read end the stderr reader drains; closing it
	// stops the reader.
	stderrPipe *os.File

	// exited is closed once the process has exited and been reaped;
	// exitErr (cmd.Wait's error) is valid then.
	exited  chan struct{}
	exitErr error
	// reapMu keeps signals from racing the reaping: until the zombie is
	// reaped its pid (and group id) cannot be reused, so a signal sent
	// under the lock with reaped false reaches only our processes.
	reapMu sync.Mutex
	reaped bool
}

const (
	// tailLines is how much of a worker's stderr a crash report quotes.
	tailLines = 20
	// maxLogLine cuts very long stderr lines (a progress bar without
	// newlines) into pieces of this size.
	maxLogLine = 16 << 10
	// stdoutBuffer holds a small frame whole, so that it arrives in one
	// read; the bulk of a large one bypasses it and is read straight into
	// its payload, without a second copy.
	stdoutBuffer = 4 << 10
)

// startChild starts argv with its own process group and a parent-death
// signal, so that neither a crash of benchtop nor of the worker leaves
// processes behind. Each stderr line goes to logger.
func startChild(p Params, env []string, logger *slog.Logger) (*child, error) {
	cmd := exec.Command(p.Command[0], p.Command[1:]...)
	cmd.Dir = p.Dir
	cmd.Env = env
	// Pdeathsig fires when the thread that forked the child exits, not the
	// process; Go only ends threads that a goroutine locked and abandoned,
	// which nothing in benchtop does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start worker: stdin pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW)
		return nil, fmt.Errorf("start worker: stdout pipe: %w", err)
	}
	rd, err := newPipeReader(outR)
	if err != nil {
		closeAll(inR, inW, outR, outW)
		return nil, fmt.Errorf("start worker: stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW, outR, outW)
		return nil, fmt.Errorf("start worker: stderr pipe: %w", err)
	}
	growPipe(inW)
	growPipe(outW)
	// *os.File ends go to the child as they are: no copying goroutines, so
	// Wait never touches the host's ends.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	if err := cmd.Start(); err != nil {
		closeAll(inR, inW, outR, outW, errR, errW)
		return nil, fmt.Errorf("start worker %q: %w", strings.Join(p.Command, " "), err)
	}
	closeAll(inR, outW, errW)
	c := &child{
		cmd:        cmd,
		pid:        cmd.Process.Pid,
		stdin:      inW,
		stdout:     rd,
		out:        bufio.NewReaderSize(rd, stdoutBuffer),
		stderr:     newStderrTail(),
		stderrPipe: errR,
		exited:     make(chan struct{}),
	}
	go c.stderr.run(errR, logger, c.pid)
	go c.wait()
	return c, nil
}

// pipeSize lets a whole batch of a few hundred kilobytes cross a pipe in
// one write instead of 64 KiB at a time, each a pair of context switches.
const pipeSize = 1 << 20

// growPipe enlarges a pipe's buffer. Failing (an old kernel, a lower
// pipe-max-size) only costs speed, so the error is dropped.
func growPipe(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize)
	})
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}

// wait reaps the process. It first waits without reaping, so that the
// zombie still holds the group id while the rest of the group (whatever the
// worker started) is killed: orphans would otherwise outlive it.
func (c *child) wait() {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, c.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	c.reapMu.Lock()
	_ = syscall.Kill(-c.pid, syscall.SIGKILL)
	c.exitErr = c.cmd.Wait()
	c.reaped = true
	c.reapMu.Unlock()
	close(c.exited)
}

// signal sends sig to the worker and its process group, unless it has
// already been reaped.
func (c *child) signal(sig syscall.Signal) {
	c.reapMu.Lock()
	defer c.reapMu.Unlock()
	if c.reaped {
		return
	}
	_ = syscall.Kill(-c.pid, sig)
	_ = syscall.Kill(c.pid, sig)
}

// kill stops the worker at once and unblocks any read or write on its
// pipes, even one a grandchild outside its group keeps open.
func (c *child) kill() {
	c.signal(syscall.SIGKILL)
	c.stdout.interrupt()
	_ = c.stdin.SetWriteDeadline(time.Now())
}

func (c *child) hasExited() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// reap waits up to d for the process to exit, then kills it and waits for
// that. It reports whether the process exited by itself.
func (c *child) reap(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.exited:
		return true
	case <-t.C:
	}
	c.kill()
	<-c.exited
	return false
}

// status describes how the process ended; call it after exited is closed.
func (c *child) status() string {
	var ee *exec.ExitError
	switch {
	case c.exitErr == nil:
		return "exit status 0"
	case errors.As(c.exitErr, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("killed by signal %d (%v)", int(ws.Signal()), ws.Signal())
		}
		return ee.Error()
	}
	return c.exitErr.Error()
}

// stderrText waits briefly for the stderr pipe to drain (a crashing
// worker's traceback arrives just before it exits) and formats its last
// lines for an error message.
func (c *child) stderrText() string {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-c.stderr.done:
	case <-t.C:
	}
	lines := c.stderr.tail()
	if len(lines) == 0 {
		return "; it wrote nothing to stderr"
	}
	var b strings.Builder
	b.WriteString("; its last stderr lines:")
	for _, l := range lines {
		b.WriteString("\n  | ")
		b.WriteString(l)
	}
	return b.String()
}

// writeFrame writes one whole frame.
func (c *child) writeFrame(b []byte) error {
	_, err := c.stdin.Write(b)
	return err
}

// readFrame reads the next frame. The payload is freshly allocated and
// aligned, since decoded tensors keep pointing into it.
func (c *child) readFrame() (header, []byte, error) {
	var hb [headerSize]byte
	n, err := io.ReadFull(c.out, hb[:])
	if n > 0 && !startsWithMagic(hb[:n]) {
		return header{}, nil, &garbageError{text: c.garbage(hb[:n])}
	}
	if err != nil {
		return header{}, nil, err
	}
	h, err := parseHeader(hb[:])
	if err != nil {
		return header{}, nil, &protocolError{err}
	}
	payload := alignedBytes(h.n)
	if _, err := io.ReadFull(c.out, payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return header{}, nil, err
	}
	return h, payload, nil
}

// startsWithMagic reports whether b (possibly shorter than the magic)
// begins the way a frame does.
func startsWithMagic(b []byte) bool {
	n := min(len(b), len(magic))
	return string(b[:n]) == string(magic[:n])
}

// garbage collects what else the stray writer put on stdout, for the
// message: what is buffered, plus whatever arrives within a moment.
func (c *child) garbage(first []byte) string {
	const show = 200
	buf := append(make([]byte, 0, show), first...)
	if n := min(c.out.Buffered(), show-len(buf)); n > 0 {
		k, _ := c.out.Read(buf[len(buf) : len(buf)+n])
		buf = buf[:len(buf)+k]
	}
	// The rest of the line may come in further writes.
	c.stdout.setDeadline(time.Now().Add(200 * time.Millisecond))
	for len(buf) < show && !bytes.Contains(buf, []byte("\n")) {
		k, err := c.out.Read(buf[len(buf):show])
		buf = buf[:len(buf)+k]
		if err != nil {
			break
		}
	}
	// A worker that prints and then answers puts a frame after the stray
	// text; the message quotes only the text.
	if i := bytes.Index(buf[1:], magic[:]); i >= 0 {
		buf = buf[:i+1]
	}
	return string(buf)
}

// garbageError: something other than the protocol wrote to stdout.
type garbageError struct{ text string }

func (e *garbageError) Error() string {
	return fmt.Sprintf("the worker wrote %q to stdout, which is reserved for the benchtop worker protocol: "+
		"print to stderr instead (in Python, print(..., file=sys.stderr) or logging; the benchtop_worker SDK redirects print for you once imported)", e.text)
}

// protocolError: frames arrived, but not the ones the protocol allows.
type protocolError struct{ err error }

func (e *protocolError) Error() string { return "the worker broke the protocol: " + e.err.Error() }
func (e *protocolError) Unwrap() error { return e.err }

// stderrTail logs every line of a worker's stderr and keeps the last few
// for crash reports.
type stderrTail struct {
	mu    sync.Mutex
	lines [tailLines]string
	next  int
	count int
	done  chan struct{} // closed at EOF
}

func newStderrTail() *stderrTail { return &stderrTail{done: make(chan struct{})} }

// run reads r until EOF, which comes once every process holding the pipe
// has exited; kill makes sure they do. It closes r.
func (s *stderrTail) run(r *os.File, logger *slog.Logger, pid int) {
	defer close(s.done)
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			text := strings.TrimRight(string(line), "\r\n")
			s.add(text)
			logger.LogAttrs(context.Background(), slog.LevelInfo, text, slog.Int("pid", pid), slog.String("stream", "stderr"))
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

func (s *stderrTail) add(line string) {
	const maxTailLine = 500
	if len(line) > maxTailLine {
		line = strings.ToValidUTF8(line[:maxTailLine], "") + "…"
	}
	s.mu.Lock()
	s.lines[s.next] = line
	s.next = (s.next + 1) % tailLines
	s.count = min(s.count+1, tailLines)
	s.mu.Unlock()
}

// tail returns the last lines, oldest first.
func (s *stderrTail) tail() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, s.count)
	for i := range s.count {
		out = append(out, s.lines[(s.next-s.count+i+tailLines)%tailLines])
	}
	return out
}
