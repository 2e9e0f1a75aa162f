#!/usr/bin/env bash
# The performance report: runs a fixed suite and writes docs/PERFORMANCE.md
# with the machine, the commands and their results, so anyone can reproduce
# it. One run is not a result on a shared machine: every go test benchmark
# runs BENCH_COUNT times (-count, default 5), each run measuring both sides
# of its ratios in alternation, and the report gives every metric's median
# and [min–max] over the runs (scripts/benchstat), the raw runs folded below.
# A benchmark that fails fails the report: the script names it, exits 1 and
# leaves $OUT (default docs/PERFORMANCE.md) as it was.
# SOAK_SECONDS (default 600) sets the memory soak length. Usage: make bench
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-docs/PERFORMANCE.md}
soak=${SOAK_SECONDS:-600}
count=${BENCH_COUNT:-5}
case $count in '' | *[!0-9]* | 0*)
	echo "bench: BENCH_COUNT must be a positive whole number, not '$count'" >&2
	exit 2
	;;
esac
bin=bin/benchtop
go build -o "$bin" .
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true' EXIT
go build -o "$tmp/benchstat" ./scripts/benchstat
failed=()

section() { printf '\n## %s\n\n' "$1" >> "$tmp/report"; }
# shown CMD...: the command as one could paste it into a shell.
shown() {
	local a s=
	for a; do
		if [[ $a =~ ^[A-Za-z0-9_./=:,+@-]+$ ]]; then s+=" $a"; else s+=" '$a'"; fi
	done
	printf '%s' "${s# }"
}
# record TITLE CMD...: runs CMD, its output into $tmp/TITLE.log. A failure
# is noted and shown, not fatal, so that the end can name every one.
record() {
	echo "bench: $1" >&2
	if ! "${@:2}" > "$tmp/$1.log" 2>&1; then
		failed+=("$1")
		echo "bench: $1 FAILED: $(shown "${@:2}")" >&2
		tail -n 30 "$tmp/$1.log" | sed 's/^/    /' >&2
	fi
}
# raw LOG: the output without go test's preamble and trailer.
raw() { grep -vE '^(goos|goarch|pkg|cpu|PASS|ok )' "$1" || [ $? -eq 1 ]; }
# run TITLE CMD...: one run of CMD, shown as it printed.
run() {
	record "$@"
	{
		printf '```\n$ %s\n' "$(shown "${@:2}")"
		raw "$tmp/$1.log"
		printf '```\n'
	} >> "$tmp/report"
}
# gobench TITLE PATTERN BENCHTIME PKG: the benchmarks BENCH_COUNT times,
# summarised as median [min–max], the runs themselves folded below.
gobench() {
	local cmd=(go test -run '^$' -bench "$2" -benchtime="$3" -count="$count" "$4")
	record "$1" "${cmd[@]}"
	printf '`$ %s`\n\n' "$(shown "${cmd[@]}")" >> "$tmp/report"
	if ! "$tmp/benchstat" "$tmp/$1.log" >> "$tmp/report" 2>/dev/null; then
		echo "(no benchmark result)" >> "$tmp/report"
		if [[ " ${failed[*]} " != *" $1 "* ]]; then # it passed, but ran nothing
			failed+=("$1")
			echo "bench: $1 FAILED: no benchmark result from $(shown "${cmd[@]}")" >&2
		fi
	fi
	{
		printf '\n<details><summary>The %s runs</summary>\n\n```\n' "$count"
		raw "$tmp/$1.log"
		printf '```\n\n</details>\n'
	} >> "$tmp/report"
}

{
	echo "# Performance"
	echo
	echo "Written by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%d). Each \`go test\`"
	echo "benchmark ran $count times (\`-count=$count\`); every figure in its table is the median"
	echo "over those runs, with [min–max] beside it. Ratios compare two sides measured"
	echo "in alternation within one run; compare ratios, not absolute numbers across"
	echo "machines. The \`benchtop bench\` tables are one run each."
	echo
	echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) × $(nproc)"
	echo "- Memory: $(free -h | awk '/Mem:/ {print $2}')"
	echo "- Go: $(go version | cut -d' ' -f3)"
	echo "- Kernel: $(uname -r)"
} > "$tmp/report"

section "Batching on sim (2 ms + 0.1 ms per row, max batch 64, one worker; ideal 7,619 rows/s)"
gobench engine 'Sim256Callers|SimOneCaller|EngineOverhead' 2s ./engine/
section "Policies across load (open-loop Poisson, 10% to 100% of saturation; latency from intended send time)"
gobench policies 'PolicySweep' 1x ./engine/
section "Overload: twice the saturating load on sim (open-loop Poisson; one-row and 1-32-row requests; max_latency 100 ms)"
gobench overload 'Overload2x' 1x ./engine/
section "One sweep with benchtop bench (closed loop, in process, adaptive; two-row requests)"
run sweep "$bin" bench --concurrency 1,16,64,256
section "Policies side by side with benchtop bench (closed loop, in process)"
run compare "$bin" bench --runner sim --method predict --concurrency 1,8,32,128 --compare policy=none,fixed,adaptive --max-time 6s
section "HTTP (sim at 128 connections and at one; echo API vs a bare net/http handler doing the same JSON work)"
gobench http 'HTTPSim128Connections' 20000x ./server/
gobench http1 'HTTPSimOneConnection' 2000x ./server/
gobench httpclosed 'HTTPSimClosedLoop' 1x ./server/
gobench noop 'EchoAPIVsBareHandler' 1x ./server/
section "Binary tensors over HTTP: echo of float32 [64, 256] as an ndarray, v2 JSON and v2 binary (8 connections); tensor bytes/s against a one-core memcpy"
gobench v2binary 'V2Binary' 3s ./server/
section "KServe v2 over gRPC: sim at 128 streams (4 connections) and at one; a float32 [64, 256] tensor echoed raw over gRPC vs as v2 JSON over HTTP"
gobench grpc 'GRPCSim128Streams' 20000x ./server/
gobench grpc1 'GRPCSimOneStream' 2000x ./server/
gobench grpcecho 'EchoTensorGRPCVsJSON' 1x ./server/
section "Remote runners: 64 callers through a front end to a runner server (both on this machine), coalesced vs one call per request vs in process"
gobench remote 'RemoteCoalescing' 1x ./engine/remote/
section "Services: a two-step echo pipeline vs calling the two runners directly"
gobench pipeline 'PipelineOverhead' 50000x ./engine/
if [ -f .cache/onnxruntime/libonnxruntime.so.1 ]; then
	section "ONNX (mlp-large [N,256] → 1024 → 1024 → 10, and the two-input text-classifier) through the engine vs ONNX Runtime directly"
	gobench onnx . 3s ./engine/onnx/
fi
if command -v python3 >/dev/null; then
	section "Worker processes: protocol round trip vs an in-process copy (no-op, 64 × 256 and 1 × 4 float32)"
	gobench process . 2000x ./engine/process/
fi

section "Memory: RSS after warm-up and after a ${soak} s soak (sim over HTTP, 64 connections)"
"$bin" serve --port 0 2> "$tmp/serve.log" &
pid=$!
url=
for _ in $(seq 100); do
	url=$(grep -o 'url=http://[0-9.:]*' "$tmp/serve.log" | head -1 | cut -d= -f2 || true)
	[ -n "$url" ] && break
	sleep 0.1
done
if [ -z "$url" ]; then
	failed+=(soak)
	echo "bench: soak FAILED: benchtop serve did not say its URL:" >&2
	sed 's/^/    /' "$tmp/serve.log" >&2
else
	rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo '?'; }
	record warmup "$bin" bench --url "$url/predict" --concurrency 64 --max-time 20s -o csv
	warm=$(rss)
	# Three windows of a third each: the level cannot end early as "stable".
	record soak "$bin" bench --url "$url/predict" --concurrency 64 --warmup 1s --window "$((soak / 3))s" --max-time "${soak}s" -o table
	soaked=$(rss)
	{
		printf '```\n'
		cat "$tmp/soak.log"
		printf '```\n\n'
		printf 'RSS after warm-up: %s KiB; after the soak: %s KiB; ratio %s.\n' "$warm" "$soaked" \
			"$(awk -v a="$warm" -v b="$soaked" 'BEGIN {printf "%.2f", b / a}')"
	} >> "$tmp/report"
fi
if ! kill "$pid" 2>/dev/null; then
	failed+=(serve)
	echo "bench: serve FAILED: benchtop serve exited before the end of the soak" >&2
fi
wait "$pid" 2>/dev/null || true # it ends by our signal
pid=

if [ ${#failed[@]} -gt 0 ]; then
	keep=${TMPDIR:-/tmp}/benchtop-bench-failed.md
	cp "$tmp/report" "$keep"
	echo "bench: FAILED: ${failed[*]}; $out is unchanged (the partial report is in $keep)" >&2
	exit 1
fi
mv "$tmp/report" "$out"
echo "bench: wrote $out" >&2
