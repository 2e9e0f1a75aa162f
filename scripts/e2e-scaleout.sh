#!/usr/bin/env bash
# End to end, scale-out on one machine: two runner servers (`benchtop serve
# --runners sim,sentiment`) and a front end whose runners are remote: ones
# pointing at both, each a real process on 127.0.0.1. Requests through the
# front's APIs and v2 routes are answered by the servers and spread over
# both; one server killed, calls go on through the other; both killed, the
# front answers 503 naming them; a server back, calls succeed again.
# Usage: scripts/e2e-scaleout.sh [path/to/benchtop]
set -euo pipefail
bin=${1:-bin/benchtop}
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "e2e-scaleout: FAIL: $*" >&2
	for f in "$tmp"/*.log; do echo "--- $f:" >&2; tail -20 "$f" >&2; done
	exit 1
}
passed=0
. "$(dirname "$0")/e2e-lib.sh"
ok() { passed=$((passed + 1)); echo "ok   $*"; }

cat > "$tmp/servers.yaml" <<YAML
runners:
  - name: sim
    runnable: sim
    init: {fixed_ms: 1, per_row_ms: 0.01}
    workers: 1
    batching: {max_batch_size: 32, max_latency_ms: 1000}
  - name: sentiment
    runnable: sentiment
    workers: 1
YAML

# start NAME ARGS...: run benchtop, logging to $tmp/NAME.log; sets the
# globals url_NAME, grpc_NAME and pid_NAME once it serves.
start() {
	local name=$1
	shift
	"$bin" serve "$@" 2> "$tmp/$name.log" &
	local pid=$!
	pids+=("$pid")
	local line
	line=$(wait_serving "$tmp/$name.log" "$pid")
	printf -v "url_$name" '%s' "$(field url "$line")"
	printf -v "grpc_$name" '%s' "$(field grpc "$line")"
	printf -v "pid_$name" '%s' "$pid"
}

start a --config "$tmp/servers.yaml" --runners sim,sentiment --port 0
start b --config "$tmp/servers.yaml" --runners sim,sentiment --port 0
echo "runner servers: a $grpc_a, b $grpc_b"
grep -q 'benchtop serving runners' "$tmp/a.log" || fail "server a does not say it serves runners"

cat > "$tmp/front.yaml" <<YAML
runners:
  - name: sim
    remote: {endpoints: [$grpc_a, $grpc_b], timeout: 5s}
  - name: sentiment
    remote: {endpoints: [$grpc_a, $grpc_b]}
apis:
  - {name: predict, runner: sim, method: predict, input: ndarray, output: ndarray}
  - {name: analysis, runner: sentiment, method: is_positive, input: text, output: json}
  - {name: classify, runner: sentiment, method: classify, input: object, output: object}
YAML
"$bin" config check "$tmp/front.yaml" > "$tmp/check.out" 2>&1 || fail "config check of the front end: $(cat "$tmp/check.out")"
ok "config check reads the remote runners' signatures from their servers"
start front --config "$tmp/front.yaml" --port 0
echo "front end: $url_front"

out=$(curl -s -m 10 "$url_front/predict" -H 'Content-Type: application/json' -d '[[1, 2], [3, 4]]')
[ "$out" = "[[2.0,4.0],[6.0,8.0]]" ] || fail "predict through the front end: $out"
ok "an API on a remote runner answers (sim doubles)"
out=$(curl -s -m 10 "$url_front/analysis" -H 'Content-Type: text/plain' -d 'I love this!')
[ "$out" = "true" ] || fail "analysis: $out"
ok "a text API on a remote runner"
out=$(curl -s -m 10 "$url_front/classify" -H 'Content-Type: application/json' -d '{"texts": ["I love this!", "awful"]}')
grep -q '"positive":\[true,false\]' <<<"$out" || fail "classify (several named inputs, one optional): $out"
ok "a method of several named inputs on a remote runner"
out=$(curl -s -m 10 "$url_front/v2/models/sentiment.scores" )
grep -q '"name":"sentiment.scores"' <<<"$out" || fail "v2 metadata of a remote runner: $out"
ok "v2 metadata of a remote runner through the front end"

# 200 requests, 16 at a time, every one answered with its own rows.
seq 200 | xargs -P 16 -I{} sh -c "curl -s -m 10 '$url_front/predict' -H 'Content-Type: application/json' -d '[[{}]]'" > "$tmp/answers"
bad=$(seq 200 | awk '{ print "[[" 2*$1 ".0]]" }' | sort > "$tmp/want"; sort "$tmp/answers" | comm -3 - "$tmp/want" | wc -l)
[ "$bad" = 0 ] || fail "$bad of 200 concurrent answers are not their callers' own: $(sort "$tmp/answers" | comm -3 - "$tmp/want" | head -3)"
ok "200 concurrent callers through the front end each get their own rows"
count() { curl -s -m 5 "$1/metrics" | awk '$1 ~ /^benchtop_runner_requests_total\{.*runner="sim"/ && /status="ok"/ { s += $2 } END { print s + 0 }'; }
ca=$(count "$url_a")
cb=$(count "$url_b")
[ "$ca" -gt 0 ] && [ "$cb" -gt 0 ] || fail "calls not spread over both servers: a $ca, b $cb"
ok "calls spread over both runner servers (a $ca, b $cb)"

kill -9 "$pid_b"
# The front end finds out by its probe (or by the first call sent there,
# which fails naming b, as a call that may have run must): wait for it.
for _ in $(seq 100); do
	grep -q "remote endpoint taken out.*endpoint=$grpc_b" "$tmp/front.log" && break
	sleep 0.05
done
grep -q "remote endpoint taken out.*endpoint=$grpc_b" "$tmp/front.log" || fail "server b killed, but the front end never took it out"
ok "server b killed: the front end takes it out"
for i in $(seq 40); do
	code=$(curl -s -o /dev/null -w '%{http_code}' -m 10 "$url_front/predict" -H 'Content-Type: application/json' -d '[[1]]')
	[ "$code" = 200 ] || fail "call $i after server b was killed: $code"
done
ok "server b killed: 40 calls in a row still answered, through a"

kill -9 "$pid_a"
# Every call now gets a 503 with Retry-After: the first may find a dead
# already by sending to it (and name that one endpoint); once the probes
# have taken both out, the 503 names each.
named=
for _ in $(seq 50); do
	body=$(curl -s -m 10 -D "$tmp/headers" "$url_front/predict" -H 'Content-Type: application/json' -d '[[1]]')
	head -1 "$tmp/headers" | grep -q ' 503' || fail "both servers killed: $(head -1 "$tmp/headers") $body"
	grep -qi '^retry-after:' "$tmp/headers" || fail "a 503 without Retry-After: $body"
	if grep -q "$grpc_a" <<<"$body" && grep -q "$grpc_b" <<<"$body"; then
		named=1
		break
	fi
	sleep 0.1
done
[ -n "$named" ] || fail "after 5 s the 503 still does not name both endpoints: $body"
ok "both servers down: 503 with Retry-After, naming each endpoint"

start a2 --config "$tmp/servers.yaml" --runners sim,sentiment --port 0 --grpc-port "${grpc_a##*:}"
for _ in $(seq 100); do
	code=$(curl -s -o /dev/null -w '%{http_code}' -m 10 "$url_front/predict" -H 'Content-Type: application/json' -d '[[1]]')
	[ "$code" = 200 ] && break
	sleep 0.1
done
[ "$code" = 200 ] || fail "server a back on its address, but the front end still answers $code"
ok "server a back: probed back in, calls answered again"

kill -TERM "$pid_front"
code=0
wait "$pid_front" || code=$?
[ "$code" = 0 ] || fail "front end exit status $code after SIGTERM"
ok "front end exits 0 after SIGTERM"
echo "e2e-scaleout: all $passed checks passed"
