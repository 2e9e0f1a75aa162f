#!/usr/bin/env bash
# End to end, like a person at a terminal: run the real workbench binary in
# tmux, read the screen with capture-pane, type with send-keys. Launch, see
# the runners, change max batch size, send a test input and read its output,
# start a load and see batches above one request, quit cleanly.
# Usage: scripts/e2e-tui.sh [path/to/benchtop]
set -euo pipefail
bin=$(realpath "${1:-bin/benchtop}")
if ! command -v tmux >/dev/null; then
	echo "e2e-tui: installing tmux" >&2
	apt-get update -qq && apt-get install -y -qq tmux >/dev/null
fi
tmp=$(mktemp -d)
sock="$tmp/tmux.sock"
session=benchtop-e2e
t() { tmux -S "$sock" "$@"; }
cleanup() {
	t kill-server 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
passed=0
fail() {
	echo "e2e-tui: FAIL: $*" >&2
	echo "--- screen:" >&2
	t capture-pane -p -t "$session" >&2 || true
	echo "--- log:" >&2
	tail -20 "$tmp/workbench.log" >&2 || true
	exit 1
}
ok() { passed=$((passed + 1)); echo "ok   $*"; }
screen() { t capture-pane -p -t "$session"; }
# wait_for REGEX [seconds]
wait_for() {
	local re=$1 limit=${2:-10} i
	for i in $(seq $((limit * 20))); do
		screen | grep -Eq -- "$re" && return 0
		sleep 0.05
	done
	fail "screen never showed /$re/"
}

# close_panel REGEX: with the panel whose title REGEX matches open, press
# Escape and wait until it is gone. A key sent before the workbench has
# read the Escape would arrive with it as one Alt+key sequence.
close_panel() {
	local re=$1 i
	wait_for "$re"
	t send-keys -t "$session" Escape
	for i in $(seq 200); do
		screen | grep -Eq -- "$re" || return 0
		sleep 0.05
	done
	fail "the panel /$re/ did not close on Escape"
}

cat > "$tmp/benchtop.yaml" <<'YAML'
runners:
  - name: sim
    runnable: sim
    init: {fixed_ms: 2, per_row_ms: 0.1}
    workers: 1
    batching: {policy: adaptive, max_batch_size: 64, max_latency_ms: 500}
  - name: sentiment
    runnable: sentiment
    workers: 1
apis:
  - {name: predict, runner: sim, method: predict, input: ndarray, output: ndarray}
  - {name: analysis, runner: sentiment, method: is_positive, input: text, output: json}
YAML

t new-session -d -s "$session" -x 120 -y 40 \
	"'$bin' --config '$tmp/benchtop.yaml' --port 0 --log-file '$tmp/workbench.log'; echo \$? > '$tmp/exit'; sleep 30"
wait_for 'Runners \(2\)'
wait_for '▸ sentiment'
ok "launch: runners table"

t send-keys -t "$session" Down
wait_for '▸ sim .*adaptive +64'
ok "select sim"

t send-keys -t "$session" b
wait_for 'batching · sim.predict'
t send-keys -t "$session" Down 1 6 Enter
wait_for 'applied live: sim.predict adaptive max_batch_size 16'
wait_for '▸ sim .*adaptive +16'
ok "max batch size 64 → 16, applied live"
t send-keys -t "$session" w
wait_for 'written to the config file'
grep -q 'max_batch_size: 16' "$tmp/benchtop.yaml" || fail "tweak not written to the config file"
ok "tweak written back to the config file"
close_panel '╭─ batching · sim.predict '

t send-keys -t "$session" t
wait_for 'to:  POST /predict'
t send-keys -t "$session" C-s
wait_for '✓ ok in .* batch of'
wait_for '\[\[0\.2,0\.4,0\.6,0\.8\],\[1\.0,1\.2,1\.4,1\.6\]\]'
ok "test input: output and batch shown"
close_panel '╭─ test input '

t send-keys -t "$session" l
wait_for 'concurrency 32'
t send-keys -t "$session" Enter
wait_for '✓ done' 30
close_panel '╭─ load '
wait_for 'mean [0-9.]+ rows, ([2-9]|[1-9][0-9])\.[0-9] requests per batch'
ok "load: batches carry more than one request"

t send-keys -t "$session" q
for _ in $(seq 100); do
	[ -s "$tmp/exit" ] && break
	sleep 0.05
done
[ -s "$tmp/exit" ] || fail "workbench did not exit after q"
[ "$(cat "$tmp/exit")" = 0 ] || fail "workbench exit status $(cat "$tmp/exit")"
ok "quit cleanly (exit 0)"
echo "e2e-tui: $passed passed, 0 failed"
