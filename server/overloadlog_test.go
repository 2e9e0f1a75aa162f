package server

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestOverloadLogSummarises: under a steady stream of refusals a route gets
// its first one logged at once, then one summary line per interval with the
// count, whether the next refusal or the ticker notices the interval passed.
func TestOverloadLogSummarises(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	l := newOverloadLog(slog.New(slog.NewTextHandler(&buf, nil)), 10*time.Second, func() time.Time { return now })
	lines := func() []string {
		s := strings.TrimSpace(buf.String())
		if s == "" {
			return nil
		}
		return strings.Split(s, "\n")
	}
	overloaded := errors.New("runner \"sim\" overloaded: queue full")

	l.add("predict", overloaded)
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], `msg="1 request refused as overloaded: runner \"sim\" overloaded: queue full"`) ||
		!strings.Contains(got[0], "level=INFO") || !strings.Contains(got[0], "api=predict") {
		t.Fatalf("first refusal: %q", got)
	}
	// 1,000 refusals a second for 9.9 s: nothing more yet.
	for i := range 9900 {
		now = now.Add(time.Millisecond)
		l.add("predict", overloaded)
		if i%1000 == 0 {
			l.flush(false)
		}
	}
	if got := lines(); len(got) != 1 {
		t.Fatalf("%d lines within one interval:\n%s", len(got), strings.Join(got, "\n"))
	}
	// Another route has its own interval.
	l.add("v2.infer", overloaded)
	if got := lines(); len(got) != 2 || !strings.Contains(got[1], "api=v2.infer") {
		t.Fatalf("another route: %q", got)
	}
	// The interval passes: the ticker writes the summary.
	now = now.Add(100 * time.Millisecond)
	l.flush(false)
	got := lines()
	if len(got) != 3 || !strings.Contains(got[2], "9900 requests refused as overloaded in the last 10s") || !strings.Contains(got[2], "count=9900") {
		t.Fatalf("summary: %q", got[2:])
	}
	// A quiet route writes nothing; at shutdown what is pending is written.
	now = now.Add(time.Minute)
	l.flush(false)
	if len(lines()) != 3 {
		t.Fatalf("a quiet interval wrote %q", lines()[3:])
	}
	now = now.Add(time.Second)
	l.add("predict", overloaded) // logged at once: the interval has passed
	now = now.Add(time.Second)
	l.add("predict", overloaded)
	l.flush(true)
	if got := lines(); len(got) != 5 || !strings.Contains(got[4], "1 request refused as overloaded") {
		t.Fatalf("at shutdown: %q", got[3:])
	}
}

func TestConnectionCapLeavesAReserve(t *testing.T) {
	cases := []struct {
		nofile uint64
		want   int
	}{
		{64, 32},
		{256, 192},
		{1024, 768},
		{20000, 15904},
		{1 << 20, 1<<20 - 4096},
		{^uint64(0), 1<<20 - 4096},
	}
	for _, c := range cases {
		if got := connectionCap(c.nofile); got != c.want {
			t.Errorf("connectionCap(%d) = %d, want %d", c.nofile, got, c.want)
		}
	}
}

// TestFileLimitIsRaised: Go raises the soft RLIMIT_NOFILE to the hard limit
// at start; nothing in benchtop may undo it.
func TestFileLimitIsRaised(t *testing.T) {
	soft, hard, err := fileLimit()
	if err != nil {
		t.Skip(err)
	}
	if hard != ^uint64(0) && soft+1 < hard {
		t.Fatalf("soft open-file limit %d, hard %d: the soft limit should be raised to (nearly) the hard one", soft, hard)
	}
}
