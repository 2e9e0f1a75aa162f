"""A worker that dies before its handshake, as one missing a driver does."""

import sys

print("fatal: CUDA driver not found", file=sys.stderr)
sys.exit(3)
