#!/usr/bin/env bash
# End to end: start `benchtop serve` as a process on a free port, drive it
# with curl like a user would, edit its config live and see the engine
# batch by the new size, then stop it with SIGTERM while a request is in
# flight and check that it finished and the process exited 0; SIGINT and
# SIGHUP stop it with 0 too. Every wait polls for what it waits for, with
# a bound. Usage: scripts/e2e-serve.sh [path/to/benchtop]
set -euo pipefail
bin=${1:-bin/benchtop}
tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "e2e-serve: FAIL: $*" >&2; echo "--- server log:" >&2; cat "$tmp/log" >&2; exit 1; }
passed=0
. "$(dirname "$0")/e2e-lib.sh"
ok() { passed=$((passed + 1)); echo "ok   $*"; }

write_config() { # $1 = max_batch_size of sim
	cat > "$tmp/cfg.yaml.new" <<YAML
runners:
  - name: sim
    runnable: sim
    init: {fixed_ms: 1, per_row_ms: 0.01}
    workers: 1
    batching: {max_batch_size: $1, max_latency_ms: 1000}
  - name: slow
    runnable: sim
    init: {fixed_ms: 1500, per_row_ms: 0}
    workers: 1
  - name: sentiment
    runnable: sentiment
    workers: 1
apis:
  - {name: predict, runner: sim, method: predict, input: ndarray, output: ndarray}
  - {name: slow, runner: slow, method: predict, input: ndarray, output: ndarray}
  - {name: analysis, runner: sentiment, method: is_positive, input: text, output: json}
  - {name: classify, runner: sentiment, method: classify, input: object, output: object}
YAML
	mv "$tmp/cfg.yaml.new" "$tmp/cfg.yaml" # an editor's atomic save
}

# start_server: run `benchtop serve` on $tmp/cfg.yaml, logging to $tmp/log;
# sets pid and url once the log says it serves (its runners are ready).
start_server() {
	"$bin" serve --config "$tmp/cfg.yaml" --port 0 2> "$tmp/log" &
	pid=$!
	local line
	line=$(wait_serving "$tmp/log" "$pid")
	url=$(field url "$line")
	echo "serving at $url"
}

# stop_with SIGNAL: signal the server, then reap it.
stop_with() {
	kill "-$1" "$pid"
	reap "$1"
}

# reap SIGNAL: the signalled server must exit 0, and say it drained.
reap() {
	local code=0
	wait "$pid" || code=$?
	pid=
	[ "$code" = 0 ] || fail "exit status $code after SIG$1, want 0"
	grep -q 'shutting down: draining runners' "$tmp/log" || fail "no shutdown line in the log after SIG$1"
	ok "exit 0 after SIG$1"
}

# metric NAME-WITH-LABELS: its value in /metrics, or empty.
metric() {
	curl -s -m 5 "$url/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}

# batch_rows CURL-ARGS...: the X-Batch-Rows the answer carries.
batch_rows() {
	curl -s -m 10 -D - -o /dev/null "$@" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-batch-rows" { print $2 }'
}

write_config 8
start_server

# expect STATUS BODY-SUBSTRING curl-args...
expect() {
	local want=$1 substr=$2; shift 2
	local out status body
	out=$(curl -s -w '\n%{http_code}' "$@") || fail "curl $* failed"
	status=${out##*$'\n'}
	body=${out%$'\n'*}
	[ "$status" = "$want" ] || fail "curl $*: status $status, want $want: $body"
	[[ "$body" == *"$substr"* ]] || fail "curl $*: body $body lacks $substr"
	ok "$want ${*: -1} ${substr:0:40}"
}

expect 200 '"ready":true' "$url/readyz"
expect 200 'curl -s' "$url/"
expect 200 '[[2.0,4.0],[6.0,8.0]]' -X POST "$url/predict" -H 'Content-Type: application/json' -d '[[1,2],[3,4]]'
expect 200 'true' -X POST "$url/analysis" -H 'Content-Type: text/plain' -d 'I love it, great work!'
expect 400 'same length' -X POST "$url/predict" -H 'Content-Type: application/json' -d '[[1,2],[3]]'
expect 404 'unknown api' -X POST "$url/nope" -d '[]' -H 'Content-Type: application/json'
expect 415 'Content-Type' -X POST "$url/predict" -d '[[1]]'
expect 200 '"data":[2.0,4.0]' -X POST "$url/v2/models/sim/infer" -H 'Content-Type: application/json' \
	-d '{"inputs":[{"name":"input","shape":[1,2],"datatype":"FP32","data":[1,2]}]}'
# A method of several inputs and outputs: an object keyed by name, and v2.
expect 200 '{"positive":[true,false],"scores":[' -X POST "$url/classify" -H 'Content-Type: application/json' \
	-d '{"texts":["I love it, great work!","awful"],"threshold":0.1}'
expect 400 'missing input \"texts\"' -X POST "$url/classify" -H 'Content-Type: application/json' -d '{"threshold":0.1}'
expect 200 '"outputs":[{"name":"scores","datatype":"FP32","shape":[2]' -X POST "$url/v2/models/sentiment.classify/infer" -H 'Content-Type: application/json' \
	-d '{"inputs":[{"name":"texts","shape":[2],"datatype":"BYTES","data":["great","awful"]},{"name":"threshold","shape":[],"datatype":"FP32","data":0.5}],"outputs":[{"name":"scores"}]}'
expect 200 '"openapi":"3.0.3"' "$url/docs.json"
expect 200 'benchtop_runner_batch_size_bucket' "$url/metrics"

# Live reload: edit the file, then see the engine follow. Sixteen rows in
# one request run as batches of at most max_batch_size: 8 before, one
# batch of 16 after.
rows16="[$(printf '[1,2],%.0s' $(seq 15))[1,2]]"
predict16=(-X POST "$url/predict" -H 'Content-Type: application/json' -d "$rows16")
[ "$(batch_rows "${predict16[@]}")" = 8 ] || fail "16 rows at max_batch_size 8: X-Batch-Rows $(batch_rows "${predict16[@]}"), want 8"
ok "16 rows at max_batch_size 8 ran in batches of 8"
write_config 16
for _ in $(seq 100); do
	[ "$(metric 'benchtop_config_reloads_total{result="applied"}')" = 2 ] && break
	sleep 0.05
done
[ "$(metric 'benchtop_config_reloads_total{result="applied"}')" = 2 ] || fail "config edit not applied"
[ "$(metric benchtop_config_last_reload_successful)" = 1 ] || fail "last_reload_successful is not 1 after a reload applied"
grep -q 'max_batch_size 8 → 16' "$tmp/log" || fail "reload event does not say what changed"
ok "live reload applied: max_batch_size 8 → 16"
[ "$(batch_rows "${predict16[@]}")" = 16 ] || fail "16 rows after the reload: X-Batch-Rows $(batch_rows "${predict16[@]}"), want 16"
curl -s "$url/v2/models/sim/stats" | grep -q '"batch_size":16,' || fail "the engine's stats show no batch of 16 after the reload: $(curl -s "$url/v2/models/sim/stats")"
ok "the engine batches by the new size: one batch of 16 rows"

# Graceful stop: an in-flight request finishes, then the process exits 0.
curl -s -o "$tmp/slow.out" -w '%{http_code}' -X POST "$url/slow" -H 'Content-Type: application/json' -d '[[21]]' > "$tmp/slow.status" &
curl_pid=$!
for _ in $(seq 100); do
	[ "$(metric 'benchtop_runner_in_flight{method="predict",runner="slow"}')" = 1 ] && break
	sleep 0.05
done
[ "$(metric 'benchtop_runner_in_flight{method="predict",runner="slow"}')" = 1 ] || fail "the slow request never started"
kill -TERM "$pid"
wait "$curl_pid" || true
[ "$(cat "$tmp/slow.status")" = 200 ] || fail "in-flight request got $(cat "$tmp/slow.status") during shutdown"
[ "$(cat "$tmp/slow.out")" = '[[42.0]]' ] || fail "in-flight request body $(cat "$tmp/slow.out")"
ok "in-flight request finished during shutdown"
reap TERM

# SIGINT (Ctrl-C) and SIGHUP (the terminal went away) stop it cleanly too.
for sig in INT HUP; do
	start_server
	stop_with "$sig"
done
echo "e2e-serve: $passed passed, 0 failed"
