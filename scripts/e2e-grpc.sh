#!/usr/bin/env bash
# End to end over gRPC: start `benchtop serve` as a process on free ports
# and drive its KServe v2 gRPC service with grpcurl, an outside client that
# knows nothing of benchtop but what server reflection tells it: health,
# live and ready, server and model metadata, inference with typed contents
# and with raw (base64) contents, a multi-input model, and errors with
# their codes and words. Usage: scripts/e2e-grpc.sh [path/to/benchtop]
set -euo pipefail
bin=${1:-bin/benchtop}
grpcurl=$(scripts/install-grpcurl.sh)
tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "e2e-grpc: FAIL: $*" >&2; echo "--- server log:" >&2; cat "$tmp/log" >&2; exit 1; }
passed=0
. "$(dirname "$0")/e2e-lib.sh"
ok() { passed=$((passed + 1)); echo "ok   $*"; }

cat > "$tmp/cfg.yaml" <<YAML
runners:
  - name: sim
    runnable: sim
    init: {fixed_ms: 1, per_row_ms: 0.01}
    workers: 1
  - name: sentiment
    runnable: sentiment
    workers: 1
  - name: echo
    runnable: echo
    workers: 1
YAML

"$bin" serve --config "$tmp/cfg.yaml" --port 0 2> "$tmp/log" &
pid=$!
line=$(wait_serving "$tmp/log" "$pid")
addr=$(field grpc "$line")
[ -n "$addr" ] || fail "no 'grpc=' address in the 'benchtop serving' log line"
echo "serving gRPC at $addr"

# call METHOD [JSON]: grpcurl against the server; output and errors on stdout.
call() {
	local method=$1
	shift
	if [ $# -gt 0 ]; then
		"$grpcurl" -plaintext -max-time 10 -d "$1" "$addr" "$method" 2>&1
	else
		"$grpcurl" -plaintext -max-time 10 "$addr" "$method" 2>&1
	fi
}
expect() { # expect WHAT OUTPUT PATTERN...
	local what=$1 out=$2
	shift 2
	for p in "$@"; do
		grep -qF -- "$p" <<<"$out" || fail "$what: no '$p' in: $out"
	done
	ok "$what"
}

out=$("$grpcurl" -plaintext "$addr" list 2>&1)
expect "reflection lists the services" "$out" inference.GRPCInferenceService grpc.health.v1.Health
out=$("$grpcurl" -plaintext "$addr" describe inference.ModelInferRequest 2>&1)
expect "reflection describes the messages" "$out" "repeated bytes raw_input_contents = 7;"
expect "health check" "$(call grpc.health.v1.Health/Check)" '"status": "SERVING"'
expect "health of one model" "$(call grpc.health.v1.Health/Check '{"service":"sentiment"}')" '"status": "SERVING"'
expect "server live" "$(call inference.GRPCInferenceService/ServerLive)" '"live": true'
expect "server ready" "$(call inference.GRPCInferenceService/ServerReady)" '"ready": true'
expect "server metadata" "$(call inference.GRPCInferenceService/ServerMetadata)" '"name": "benchtop"' '"statistics"'
expect "model ready" "$(call inference.GRPCInferenceService/ModelReady '{"name":"sim"}')" '"ready": true'
out=$(call inference.GRPCInferenceService/ModelMetadata '{"name":"sentiment.classify"}')
expect "model metadata names the inputs" "$out" '"name": "texts"' '"datatype": "BYTES"' '"name": "threshold"'

out=$(call inference.GRPCInferenceService/ModelInfer '{"model_name":"sim","id":"a1","inputs":[{"name":"input","datatype":"FP32","shape":[2,2],"contents":{"fp32_contents":[1,2,3,4]}}]}')
expect "infer with typed contents (sim doubles)" "$out" '"id": "a1"' '"fp32Contents": [' '8'
# float32 [1, 2] = [1.5, -2] little-endian, base64: grpcurl's JSON for bytes.
raw=$(printf '\x00\x00\xc0\x3f\x00\x00\x00\xc0' | base64)
out=$(call inference.GRPCInferenceService/ModelInfer "{\"model_name\":\"echo\",\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,2]}],\"raw_input_contents\":[\"$raw\"]}")
expect "infer with raw contents answers raw" "$out" "\"rawOutputContents\": [" "\"$raw\""
text=$(printf '\x0c\x00\x00\x00I love this!' | base64)
out=$(call inference.GRPCInferenceService/ModelInfer "{\"model_name\":\"sentiment.classify\",\"inputs\":[{\"name\":\"texts\",\"datatype\":\"BYTES\",\"shape\":[1]}],\"raw_input_contents\":[\"$text\"],\"outputs\":[{\"name\":\"positive\"}]}")
expect "multi-input model, raw BYTES, one output asked for" "$out" '"name": "positive"' '"rawOutputContents": [' '"AQ=="'
out=$(call inference.GRPCInferenceService/ModelStatistics '{"name":"sim"}')
expect "statistics count the inferences" "$out" '"inferenceCount": "2"'

out=$(call inference.GRPCInferenceService/ModelInfer '{"model_name":"sim","inputs":[{"name":"input","datatype":"INT64","shape":[1,1],"contents":{"int64_contents":[1]}}]}' || true)
expect "wrong datatype is InvalidArgument, in words" "$out" "Code: InvalidArgument" 'input "input" has datatype INT64, the model takes FP32'
out=$(call inference.GRPCInferenceService/ModelInfer '{"model_name":"nope"}' || true)
expect "unknown model is NotFound, listing the models" "$out" "Code: NotFound" 'unknown model "nope" (models: echo, sentiment, sim'
out=$(call inference.GRPCInferenceService/ModelInfer "{\"model_name\":\"echo\",\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,3]}],\"raw_input_contents\":[\"$raw\"]}" || true)
expect "raw contents that lie about their size" "$out" "Code: InvalidArgument" "raw data is 8 bytes, but FP32 [1, 3] takes 12 bytes"

kill -TERM "$pid"
code=0
wait "$pid" || code=$?
pid=
[ "$code" = 0 ] || fail "exit status $code after SIGTERM, want 0"
ok "exit 0 after SIGTERM"
echo "e2e-grpc: all $passed checks passed"
