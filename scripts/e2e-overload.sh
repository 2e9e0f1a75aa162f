#!/usr/bin/env bash
# End to end: what `benchtop serve` refuses under load and abuse, driven over
# real sockets like a client would. Each section starts its own server (a
# temp config, a free port on 127.0.0.1) with start_server and stops it with
# stop_server; add a section the same way. Usage:
# scripts/e2e-overload.sh [path/to/benchtop]
set -euo pipefail
bin=${1:-bin/benchtop}
tmp=$(mktemp -d)
pid=
log=/dev/null
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
	jobs -p | xargs -r kill 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "e2e-overload: FAIL: $*" >&2; echo "--- server log:" >&2; cat "$log" >&2; exit 1; }
passed=0
. "$(dirname "$0")/e2e-lib.sh"
ok() { passed=$((passed + 1)); echo "ok   $*"; }

# start_server NAME YAML: run `benchtop serve` on YAML (written to
# $tmp/NAME.yaml) on a free port. Sets url, host, port, pid and log
# ($tmp/NAME.log). One server at a time: stop_server before the next.
start_server() {
	local name=$1
	log=$tmp/$name.log
	printf '%s\n' "$2" > "$tmp/$name.yaml"
	"$bin" serve --config "$tmp/$name.yaml" --port 0 2> "$log" &
	pid=$!
	local line
	line=$(wait_serving "$log" "$pid")
	url=$(field url "$line")
	local hp=${url#http://}
	host=${hp%:*}
	port=${hp##*:}
	echo "== $name: serving at $url"
}

# stop_server: SIGTERM, and the process must exit 0.
stop_server() {
	kill -TERM "$pid"
	local code=0
	wait "$pid" || code=$?
	pid=
	[ "$code" = 0 ] || fail "exit status $code after SIGTERM, want 0"
}

# expect STATUS BODY-SUBSTRING curl-args...
expect() {
	local want=$1 substr=$2; shift 2
	local out status body
	out=$(curl -s -m 10 -w '\n%{http_code}' "$@") || fail "curl $* failed"
	status=${out##*$'\n'}
	body=${out%$'\n'*}
	[ "$status" = "$want" ] || fail "curl $*: status $status, want $want: $body"
	[[ "$body" == *"$substr"* ]] || fail "curl $*: body $body lacks $substr"
	ok "$want ${*: -1} ${substr:0:50}"
}

# metric NAME-WITH-LABELS: its value in /metrics, or empty.
metric() {
	curl -s -m 5 "$url/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}

# slow_client OUT LENGTH [SECONDS]: POST /predict declaring LENGTH bytes,
# then send one byte every 0.5 s until the server answers and hangs up, or
# for at most SECONDS (default 30), then hang up. The answer goes to OUT.
# Plain bash (/dev/tcp): no client library smooths the slowness away. Run it
# in the background (&): it ignores SIGPIPE for itself.
slow_client() {
	local out=$1 length=$2 seconds=${3:-30} fd reader
	trap '' PIPE
	exec {fd}<>"/dev/tcp/$host/$port"
	printf 'POST /predict HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %s\r\n\r\n[[' "$host" "$length" >&"$fd"
	cat <&"$fd" > "$out" &
	reader=$!
	local end=$((SECONDS + seconds))
	while [ "$SECONDS" -lt "$end" ] && kill -0 "$reader" 2>/dev/null; do
		sleep 0.5
		printf 1 >&"$fd" 2>/dev/null || break
	done
	kill "$reader" 2>/dev/null || true
	wait "$reader" 2>/dev/null || true
	exec {fd}>&-
}

runners_yaml='runners:
  - {name: sim, runnable: sim, init: {fixed_ms: 1, per_row_ms: 0.01}, workers: 1}
  - {name: echo, runnable: echo, workers: 1}
apis:
  - {name: predict, runner: sim, method: predict, input: ndarray, output: ndarray}
  - {name: echo-text, runner: echo, method: echo_text, input: text, output: text}'

# --- Slow bodies: cut off at server.body_timeout with a 408 that says so,
# while the server keeps answering everyone else.
start_server slow-bodies "server: {body_timeout: 2s}
$runners_yaml"
grep -q 'msg="open-file limit".*max_connections=' "$log" || fail "the open-file limit and connection cap are not logged"
ok "open-file limit and connection cap logged"
start=$(date +%s)
slow=()
for i in 1 2 3; do
	slow_client "$tmp/slow$i.out" 100000 &
	slow+=($!)
done
# The three are in: each holds its declared 100,000 bytes.
for _ in $(seq 100); do
	[ "$(metric benchtop_http_inflight_body_bytes)" = 300000 ] && break
	sleep 0.05
done
[ "$(metric benchtop_http_inflight_body_bytes)" = 300000 ] || fail "the 3 slow bodies were not all admitted"
expect 200 '"live":true' "$url/livez"
expect 200 '[[2.0]]' -X POST "$url/predict" -H 'Content-Type: application/json' -d '[[1]]'
wait "${slow[@]}"
took=$(($(date +%s) - start))
for i in 1 2 3; do
	head -1 "$tmp/slow$i.out" | grep -q '^HTTP/1.1 408' || fail "slow client $i got: $(cat "$tmp/slow$i.out")"
	grep -q 'server.body_timeout' "$tmp/slow$i.out" || fail "slow client $i: the 408 does not name server.body_timeout: $(cat "$tmp/slow$i.out")"
	grep -q 'after 2s' "$tmp/slow$i.out" || fail "slow client $i: the 408 does not say how long it had: $(cat "$tmp/slow$i.out")"
done
[ "$took" -le 8 ] || fail "slow clients took ${took}s to be cut off at a 2s body_timeout"
ok "3 slow-body clients got 408 after ~2s (${took}s in all)"
[ "$(metric 'benchtop_http_refused_total{reason="body_timeout"}')" = 3 ] || fail "refused{body_timeout} is not 3"
ok "benchtop_http_refused_total{reason=\"body_timeout\"} 3"
stop_server

# --- In-flight bytes: past server.max_inflight_mb a request is refused at
# once (503 + Retry-After); a body larger than the whole bound is a 413.
start_server inflight "server: {max_inflight_mb: 1}
$runners_yaml"
slow_client "$tmp/holder.out" 900000 5 & # holds 900 kB for 5 s
holder=$!
for _ in $(seq 100); do
	[ "$(metric benchtop_http_inflight_body_bytes)" = 900000 ] && break
	sleep 0.05
done
[ "$(metric benchtop_http_inflight_body_bytes)" = 900000 ] || fail "the slow 900 kB body was not counted in flight"
head -c 200000 /dev/zero | tr '\0' ' ' > "$tmp/200k.json"
printf '[[1]]' >> "$tmp/200k.json"
out=$(curl -s -m 5 -D - -o "$tmp/503.out" -X POST "$url/predict" -H 'Content-Type: application/json' --data-binary @"$tmp/200k.json") ||
	fail "curl for the 503 failed"
[[ "$out" == "HTTP/1.1 503"* ]] || fail "a 200 kB body past a 1 MiB bound with 900 kB held: $out $(cat "$tmp/503.out")"
grep -qi '^Retry-After: [0-9]' <<< "$out" || fail "503 without Retry-After: $out"
grep -q 'server.max_inflight_mb' "$tmp/503.out" || fail "the 503 does not name server.max_inflight_mb: $(cat "$tmp/503.out")"
ok "503 + Retry-After past server.max_inflight_mb"
expect 200 '"live":true' "$url/livez"
grep -q 'level=INFO msg="1 request refused as overloaded: server busy' "$log" || fail "the refusal is not summarised at INFO"
if grep -q 'level=ERROR.*status=503' "$log"; then fail "a 503 logged at ERROR"; fi
ok "the 503 is summarised at INFO, not logged at ERROR"
wait "$holder"
[ "$(metric benchtop_http_inflight_body_bytes)" = 0 ] || fail "the slow body's bytes were not released when it ended"
ok "released when the request ended"
head -c 2000000 /dev/zero | tr '\0' ' ' > "$tmp/2m.json"
expect 413 'server.max_inflight_mb' -X POST "$url/predict" -H 'Content-Type: application/json' --data-binary @"$tmp/2m.json"
stop_server

# --- Host and Origin: bound to loopback, a DNS-rebinding Host is refused,
# and so is a web page's cross-origin POST; curl and same-origin pages work.
start_server host-origin "$runners_yaml"
expect 200 '"live":true' "$url/livez"
expect 200 '"live":true' -H "Host: localhost:$port" "$url/livez"
expect 403 'server.allowed_hosts' -H "Host: rebind.evil.example:$port" "$url/metrics"
expect 403 'server.allowed_origins' -X POST "$url/echo-text" -H 'Origin: http://evil.example' -H 'Content-Type: text/plain' -d 'hi'
expect 200 'hi' -X POST "$url/echo-text" -H "Origin: $url" -H 'Content-Type: text/plain' -d 'hi'
expect 200 'hi' -X POST "$url/echo-text" -H 'Content-Type: text/plain' -d 'hi'
stop_server

# --- Runner admission (batcher): a slow request does not lock a method
# out; a request too large to meet max_latency is refused at once; under
# twice the load a runner serves, refusals come at once, are counted by
# cause and summarised, and nothing is logged at ERROR.
start_server admission 'runners:
  - {name: sim, runnable: sim, init: {fixed_ms: 2, per_row_ms: 0.1}, workers: 1,
     batching: {max_batch_size: 64, max_latency_ms: 100}}
  - {name: sentiment, runnable: sentiment, workers: 1, batching: {max_latency_ms: 100}}
apis:
  - {name: predict, runner: sim, method: predict, input: ndarray, output: ndarray}
  - {name: analysis, runner: sentiment, method: is_positive, input: text, output: json}'
for t in 'I love it' 'so bad' 'fine' 'great stuff' 'love love'; do
	expect 200 '' -X POST "$url/analysis" -H 'Content-Type: text/plain' -d "$t"
done
# One text of 3 MB takes far longer than max_latency: it is served (the
# method was idle), and the short texts after it are too.
head -c 3000000 /dev/zero | tr '\0' 'l' > "$tmp/big.txt"
expect 200 '' -X POST "$url/analysis" -H 'Content-Type: text/plain' --data-binary @"$tmp/big.txt"
for t in 'I love it' 'so bad' 'fine'; do
	expect 200 '' -X POST "$url/analysis" -H 'Content-Type: text/plain' -d "$t"
done
ok "no lock-out after a slow request"
# 100,000 rows cannot meet 100 ms on one sim worker (~13 s): refused at once.
for n in 1 4 16 64 2 8 32; do
	printf '[%s[1]]' "$(yes '[1],' | head -n $((n - 1)) | tr -d '\n')" > "$tmp/rows$n.json"
	expect 200 '' -X POST "$url/predict" -H 'Content-Type: application/json' --data-binary @"$tmp/rows$n.json"
done
printf '[%s[1]]' "$(yes '[1],' | head -n 99999 | tr -d '\n')" > "$tmp/100k.json"
t0=$(date +%s%N)
out=$(curl -s -m 10 -D - -o "$tmp/100k.out" -X POST "$url/predict" -H 'Content-Type: application/json' --data-binary @"$tmp/100k.json")
ms=$((($(date +%s%N) - t0) / 1000000))
[[ "$out" == "HTTP/1.1 503"* ]] || fail "100,000 rows: $out $(cat "$tmp/100k.out")"
grep -q 'max_latency 100ms' "$tmp/100k.out" || fail "the 503 does not name the bound: $(cat "$tmp/100k.out")"
[ "$ms" -lt 2000 ] || fail "100,000 rows refused after ${ms}ms, want at once"
ok "100,000 rows refused in ${ms}ms: $(cat "$tmp/100k.out")"
expect 200 '[[2.0]]' -X POST "$url/predict" -H 'Content-Type: application/json' -d '[[1]]'
# Twice what one sim worker serves (64 rows / 8.4 ms = 7,600 rows/s), one
# row per request, for 3 s.
"$bin" bench --url "$url/predict" --input "$tmp/rows1.json" --rate 15000 --warmup 1s --window 1s --max-time 3s -o json > "$tmp/bench.json" 2> "$tmp/bench.err" ||
	fail "bench: $(cat "$tmp/bench.err")"
predicted=$(metric 'benchtop_runner_refusals_total{cause="predicted",method="predict",runner="sim"}')
[ -n "$predicted" ] && [ "${predicted%%.*}" -gt 0 ] 2>/dev/null || fail "no refusals counted as predicted under 2x load (got '$predicted'): $(cat "$tmp/bench.json")"
ok "refusals by forecast under 2x load: $predicted"
grep -q 'level=WARN.*refusing requests as overloaded (forecast' "$log" || fail "no event says the forecast refuses requests"
ok "the refusals are summarised as an event"
if grep -q 'level=ERROR' "$log"; then fail "ERROR lines under overload: $(grep -m3 level=ERROR "$log")"; fi
ok "no ERROR lines under overload"
expect 200 '[[2.0]]' -X POST "$url/predict" -H 'Content-Type: application/json' -d '[[1]]'
stop_server

echo "e2e-overload: $passed passed, 0 failed"
