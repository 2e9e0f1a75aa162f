package ui

import (
	"cmp"
	"fmt"
	"log/slog"
	"strings"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/remote"
)

// A remote: runner runs on runner servers: the workbench shows its
// endpoints where a local runner's workers are, and its batching as the
// servers report it, read-only.

// endpointLines lists a remote runner's endpoints in w cells and at most n
// lines: a header that counts those up, then one line each, the down ones
// first so that a small screen keeps the failures in view.
func (st styles) endpointLines(ri RemoteInfo, w, n int) []string {
	if n <= 0 {
		return nil
	}
	summary := fmt.Sprintf("endpoints %d/%d up", ri.Up(), len(ri.Endpoints))
	if len(ri.Endpoints) == 0 {
		return []string{st.bad.Render("✗ " + summary + ": none resolved yet")}
	}
	eps := make([]remote.EndpointState, 0, len(ri.Endpoints))
	for _, healthy := range []bool{false, true} {
		for _, e := range ri.Endpoints {
			if e.Healthy == healthy {
				eps = append(eps, e)
			}
		}
	}
	const numsW = 1 + 5 + 1 + 7 + 1 + 6 // in flight, round trip, errors
	addrW := 0
	for _, e := range eps {
		addrW = max(addrW, len(e.Addr))
	}
	addrW = max(8, min(addrW, w-2-numsW))
	first := max(2+addrW, len(summary))
	nums := func(e remote.EndpointState) string {
		return fmt.Sprintf(" %5s %7s %6s", humanInt(e.Outstanding), msString(e.Latency), humanInt(int64(e.Errors)))
	}
	lines := []string{st.colHeader.Render(fmt.Sprintf("%-*s %5s %7s %6s", first, summary, "in-fl", "rtt", "errors"))}
	// The reason follows the figures where a line has room for it, and
	// stands in their place, cut to its cause, where it has not (the ✗
	// says down; the events pane has the whole reason).
	roomy := w-first-numsW >= 30
	shown := eps
	if len(eps) > n-1 {
		shown = eps[:max(0, n-2)]
	}
	for _, e := range shown {
		addr := padRight(truncate(e.Addr, addrW), first-2)
		if e.Healthy {
			lines = append(lines, st.ok.Render("✓")+" "+addr+nums(e))
			continue
		}
		why := cmp.Or(e.LastError, "not answering")
		if roomy {
			lines = append(lines, st.bad.Render("✗ "+addr+nums(e)+"  down: "+brief(why)))
		} else {
			lines = append(lines, st.bad.Render("✗ "+addr+" "+cause(why)))
		}
	}
	if rest := eps[len(shown):]; len(rest) > 0 && n >= 2 {
		up := 0
		for _, e := range rest {
			if e.Healthy {
				up++
			}
		}
		lines = append(lines, st.dim.Render(fmt.Sprintf("  … %d more, %d up", len(rest), up)))
	}
	return lines
}

// cause is the innermost part of an error chain ("health check: connection
// error: desc = \"transport: … connect: connection refused\"" is
// "connection refused"): what a narrow line has room for.
func cause(why string) string {
	why = strings.TrimSpace(strings.Trim(strings.TrimSpace(why), `"`))
	parts := strings.Split(why, ": ")
	for i := len(parts) - 1; i >= 0; i-- {
		if p := strings.TrimSpace(strings.Trim(parts[i], `"`)); p != "" {
			return p
		}
	}
	return why
}

// brief is an error chain's first and innermost parts: what failed and
// why, without the layers between ("health check: connection refused").
func brief(why string) string {
	head, _, found := strings.Cut(why, ": ")
	if c := cause(why); found && c != head {
		return head + ": " + c
	}
	return why
}

// endpointChanges are the events of endpoints that went down or came back
// between two snapshots: the pool logs them, the events pane shows them.
func endpointChanges(before, after map[string]RemoteInfo) []engine.Event {
	var evs []engine.Event
	for runner, now := range after {
		was := map[string]bool{}
		for _, e := range before[runner].Endpoints {
			was[e.Addr] = e.Healthy
		}
		for _, e := range now.Endpoints {
			healthy, known := was[e.Addr]
			switch {
			case !known || healthy == e.Healthy:
			case e.Healthy:
				evs = append(evs, engine.Event{Level: slog.LevelInfo, Runner: runner, Message: "endpoint " + e.Addr + " back up"})
			default:
				// Its cause first, where a line of the pane shows it; the
				// whole chain after, for the event opened.
				why := cmp.Or(e.LastError, "not answering")
				if c := cause(why); c != why {
					why = c + " (" + why + ")"
				}
				evs = append(evs, engine.Event{Level: slog.LevelWarn, Runner: runner, Message: "endpoint " + e.Addr + " down: " + why})
			}
		}
	}
	return evs
}

// remoteBatchingNote says where a remote runner's batching is changed, on
// one line where it fits and two where it does not, split before the
// command so that the command stays whole.
func remoteBatchingNote(model string, w int) []string {
	what, where := "batching is the runner servers': change it in their config", fmt.Sprintf("(benchtop serve --runners %s …)", model)
	if len(what)+1+len(where) <= w {
		return []string{what + " " + where}
	}
	return []string{what, where}
}

// serverBatchingLines is the read-only batching panel's table: per method,
// what the servers' metadata says.
func (st styles) serverBatchingLines(ri RemoteInfo) []string {
	if len(ri.Batching) == 0 {
		return []string{st.dim.Render("  the servers have not said yet: none has been healthy since the runner started")}
	}
	methodW := len("method")
	for _, b := range ri.Batching {
		methodW = max(methodW, len(b.Method))
	}
	row := func(m, p, b, l, w string) string {
		return fmt.Sprintf("  %-*s %-9s %6s %8s %8s", methodW, m, p, b, l, w)
	}
	lines := []string{st.colHeader.Render(row("method", "policy", "max b", "max lat", "workers"))}
	for _, b := range ri.Batching {
		lines = append(lines, row(b.Method, cmp.Or(b.Policy, "–"), humanInt(int64(b.MaxBatchSize)), msString(b.MaxLatency), humanInt(int64(b.Workers))))
	}
	return lines
}
