# Sourced by the end-to-end scripts; they define fail.

# wait_serving LOG PID: waits (up to 15 s) for the `benchtop serving` line
# that the process PID writes to LOG once its runners are ready, and prints
# it; fails if the process exits first or the line never comes.
wait_serving() {
	local line=
	for _ in $(seq 300); do
		line=$(grep -m1 'benchtop serving' "$1" || true)
		[ -n "$line" ] && break
		kill -0 "$2" 2>/dev/null || fail "benchtop serve exited at start ($1)"
		sleep 0.05
	done
	[ -n "$line" ] || fail "no 'benchtop serving' line in $1"
	printf '%s\n' "$line"
}

# field NAME LINE: the value of NAME= in a log line (url, grpc).
field() { grep -o "$1=[^ ]*" <<<"$2" | head -1 | cut -d= -f2 | tr -d '"'; }
