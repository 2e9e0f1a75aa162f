#!/usr/bin/env bash
# End to end, like a person at a terminal: run the real workbench binary in
# tmux, read the screen with capture-pane, type with send-keys. The tuning
# scenario, at 80×24 (most terminals' default) and at 160×48: launch on a
# copy of samples/benchtop.yaml, filter to sim, fire a load and watch the
# histogram move, halve max batch size live, save it with w, load again and
# see batches land in the new buckets, send a test input, quit cleanly.
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
root=$(pwd)
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

# scenario W H: the whole run at one terminal size.
scenario() {
	local w=$1 h=$2
	session="benchtop-e2e-${w}x${h}"
	cp "$root/samples/benchtop.yaml" "$tmp/benchtop.yaml"
	rm -f "$tmp/exit"
	t new-session -d -s "$session" -x "$w" -y "$h" -c "$root" \
		"'$bin' --config '$tmp/benchtop.yaml' --port 0 --log-file '$tmp/workbench.log'; echo \$? > '$tmp/exit'; sleep 30"
	wait_for 'Runners \(8\)' 20
	wait_for '▸ echo'
	ok "${w}x${h} launch: runners table"

	# Two keys in one write are two moves.
	t send-keys -t "$session" -l 'jj'
	wait_for '▸ mlp-large'
	ok "${w}x${h} keys in one write: jj moves two rows"

	t send-keys -t "$session" /
	t send-keys -t "$session" -l sim
	t send-keys -t "$session" Enter
	wait_for 'Runners \(1 of 8\)'
	wait_for '▸ sim .*adaptive +64'
	ok "${w}x${h} filter: sim, the table says it shows 1 of 8"

	# Fire a load: the histogram and latency stay on screen and move.
	t send-keys -t "$session" l
	wait_for 'concurrency 32'
	t send-keys -t "$session" Enter
	wait_for '(17-32|33-64) ▏[█▉▊▋▌▍▎▏]+ +([1-9][0-9]|100)%' 30
	wait_for 'e2e +[0-9.]+(µs|ms)'
	ok "${w}x${h} load: batches land in 17-64 while the load runs, on one screen"
	wait_for '✓ done' 60
	wait_for 'ok [0-9.,]+/s · refused [0-9.,]+/s'
	close_panel '╭─ load '

	t send-keys -t "$session" b
	wait_for 'batching · sim.predict'
	t send-keys -t "$session" Down 1 6 Enter
	wait_for 'applied live: predict adaptive'
	t send-keys -t "$session" w
	wait_for 'saved to benchtop.yaml'
	awk '/name: sim$/{s=1} s&&/max_batch_size/{print; exit}' "$tmp/benchtop.yaml" | grep -q 'max_batch_size: 16' ||
		fail "the tweak is not in the config file"
	ok "${w}x${h} max batch size 64 → 16 applied live and saved"
	close_panel '╭─ batching · sim.predict '
	wait_for '▸ sim .*adaptive +16'
	wait_for 'saved to benchtop.yaml'
	ok "${w}x${h} the save is an event"

	t send-keys -t "$session" l
	wait_for 'concurrency 32'
	t send-keys -t "$session" Enter
	wait_for '9-16 ▏[█▉▊▋▌▍▎▏]+ +([2-9][0-9]|100)%' 30
	ok "${w}x${h} load again: batches now land in 9-16"
	wait_for '✓ done' 60
	close_panel '╭─ load '

	t send-keys -t "$session" t
	wait_for 'to: POST /predict'
	t send-keys -t "$session" C-s
	wait_for '✓ ok in .* batch of'
	ok "${w}x${h} test input: the result shows"
	close_panel '╭─ test input '

	t send-keys -t "$session" q
	for _ in $(seq 100); do
		[ -s "$tmp/exit" ] && break
		sleep 0.05
	done
	[ -s "$tmp/exit" ] || fail "workbench did not exit after q"
	[ "$(cat "$tmp/exit")" = 0 ] || fail "workbench exit status $(cat "$tmp/exit")"
	ok "${w}x${h} quit cleanly (exit 0)"
	t kill-session -t "$session" 2>/dev/null || true
}

scenario 80 24
scenario 160 48
echo "e2e-tui: $passed passed, 0 failed"
