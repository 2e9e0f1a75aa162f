#!/usr/bin/env bash
# The performance report: runs a fixed suite and writes docs/PERFORMANCE.md
# with the machine, the commands and their output, so anyone can reproduce
# it. Figures are ratios measured in one run: the machine may be shared.
# SOAK_SECONDS (default 600) sets the memory soak length. Usage: make bench
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-docs/PERFORMANCE.md}
soak=${SOAK_SECONDS:-600}
bin=bin/benchtop
go build -o "$bin" .
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true' EXIT

section() { printf '\n## %s\n\n' "$1" >> "$tmp/report"; }
run() { # run TITLE CMD...: records the command and its output
	printf '```\n$ %s\n' "${*:2}" >> "$tmp/report"
	echo "bench: $1" >&2
	"${@:2}" 2>&1 | grep -vE '^(goos|goarch|pkg|cpu|PASS|ok )' >> "$tmp/report" || true
	printf '```\n' >> "$tmp/report"
}

{
	echo "# Performance"
	echo
	echo "Written by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%d). One run on one machine;"
	echo "compare ratios within a run, not absolute numbers across machines."
	echo
	echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) × $(nproc)"
	echo "- Memory: $(free -h | awk '/Mem:/ {print $2}')"
	echo "- Go: $(go version | cut -d' ' -f3)"
	echo "- Kernel: $(uname -r)"
} > "$tmp/report"

section "Batching on sim (2 ms + 0.1 ms per row, max batch 64, one worker; ideal 7,619 rows/s)"
run engine go test -run '^$' -bench 'Sim256Callers|SimOneCaller|EngineOverhead' -benchtime=2s ./engine/
section "Policies across load (open-loop Poisson, 10% to 100% of saturation; latency from intended send time)"
run policies go test -run '^$' -bench 'PolicySweep' -benchtime=1x ./engine/
section "Overload: twice the saturating load on sim (open-loop Poisson; one-row and 1-32-row requests; max_latency 100 ms)"
run overload go test -run '^$' -bench 'Overload2x' -benchtime=1x ./engine/
section "Policies side by side with benchtop bench (closed loop, in process)"
run compare "$bin" bench --runner sim --method predict --concurrency 1,8,32,128 --compare policy=none,fixed,adaptive --max-time 6s
section "HTTP (sim at 128 connections and at one; echo API vs a bare net/http handler doing the same JSON work)"
run http go test -run '^$' -bench 'HTTPSim128Connections' -benchtime=20000x ./server/
run http1 go test -run '^$' -bench 'HTTPSimOneConnection' -benchtime=2000x ./server/
run httpclosed go test -run '^$' -bench 'HTTPSimClosedLoop' -benchtime=1x ./server/
run noop go test -run '^$' -bench 'EchoAPIVsBareHandler' -benchtime=1x ./server/
if [ -f .cache/onnxruntime/libonnxruntime.so.1 ]; then
	section "ONNX MLP (large: [N,256] → 1024 → 1024 → 10) through the engine vs ONNX Runtime directly"
	run onnx go test -run '^$' -bench . -benchtime=3s ./engine/onnx/
fi
if command -v python3 >/dev/null; then
	section "Worker processes: protocol round trip vs in process (no-op, 64 × 256 float32)"
	run process go test -run '^$' -bench . -benchtime=2000x ./engine/process/
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
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
"$bin" bench --url "$url/predict" --concurrency 64 --max-time 20s -o csv > /dev/null 2>&1 || true
warm=$(rss)
# Three windows of a third each: the level cannot end early as "stable".
"$bin" bench --url "$url/predict" --concurrency 64 --warmup 1s --window "$((soak / 3))s" --max-time "${soak}s" -o table > "$tmp/soak.txt" 2>&1 || true
soaked=$(rss)
{
	printf '```\n'
	cat "$tmp/soak.txt"
	printf '```\n\n'
	printf 'RSS after warm-up: %s KiB; after the soak: %s KiB; ratio %s.\n' "$warm" "$soaked" \
		"$(awk -v a="$warm" -v b="$soaked" 'BEGIN {printf "%.2f", b / a}')"
} >> "$tmp/report"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=

mv "$tmp/report" "$out"
echo "bench: wrote $out" >&2
