#!/usr/bin/env bash
# End to end: start `benchtop serve` as a process on a free port, drive it
# with curl like a user would, edit its config live, then stop it with
# SIGTERM while a request is in flight and check that it finished and the
# process exited 0. Usage: scripts/e2e-serve.sh [path/to/benchtop]
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

write_config 8
"$bin" serve --config "$tmp/cfg.yaml" --port 0 2> "$tmp/log" &
pid=$!
url=
for _ in $(seq 200); do
	url=$(grep -o 'url=http://[0-9.:]*' "$tmp/log" | head -1 | cut -d= -f2 || true)
	[ -n "$url" ] && break
	kill -0 "$pid" 2>/dev/null || fail "benchtop serve exited at start"
	sleep 0.05
done
[ -n "$url" ] || fail "no 'benchtop serving url=' line in the log"
echo "serving at $url"

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

# Live reload: edit the file, then see the engine follow.
write_config 16
applied() {
	curl -s "$url/metrics" > "$tmp/metrics"
	grep -q 'benchtop_config_reloads_total{result="applied"} 2' "$tmp/metrics"
}
for _ in $(seq 100); do
	applied && break
	sleep 0.05
done
applied || fail "config edit not applied"
grep -q 'max_batch_size 8 → 16' "$tmp/log" || fail "reload event does not say what changed"
ok "live reload: max_batch_size 8 → 16"

# Graceful stop: an in-flight request finishes, then the process exits 0.
curl -s -o "$tmp/slow.out" -w '%{http_code}' -X POST "$url/slow" -H 'Content-Type: application/json' -d '[[21]]' > "$tmp/slow.status" &
curl_pid=$!
sleep 0.3
kill -TERM "$pid"
wait "$curl_pid" || true
[ "$(cat "$tmp/slow.status")" = 200 ] || fail "in-flight request got $(cat "$tmp/slow.status") during shutdown"
[ "$(cat "$tmp/slow.out")" = '[[42.0]]' ] || fail "in-flight request body $(cat "$tmp/slow.out")"
ok "in-flight request finished during shutdown"
code=0
wait "$pid" || code=$?
pid=
[ "$code" = 0 ] || fail "exit status $code after SIGTERM, want 0"
ok "exit 0 after SIGTERM"
echo "e2e-serve: $passed passed, 0 failed"
