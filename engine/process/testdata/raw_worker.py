"""A worker of protocol 1 written from docs/WORKER_PROTOCOL.md alone, without
the SDK, the way one would in another language, and left as it was when
protocol 2 came: it must keep working. Its init params choose a
misbehaviour:

  lie           declares other methods than it did to the probe
  exit_at_init  exits with status 3 instead of answering HELLO (not a probe)
  banner        prints a banner on stdout before the handshake

and `double` prints to stdout (breaking the protocol) when a row holds -3000.
"""

import array
import json
import struct
import sys

MAGIC = b"\x89BTW"
HEADER = struct.Struct("<4sBBHII")
HELLO, READY, CALL, RESULT, ERROR, SHUTDOWN = 1, 2, 3, 4, 5, 6

stdin, stdout = sys.stdin.buffer, sys.stdout.buffer


def read_exact(n):
    data = stdin.read(n)
    if len(data) != n:
        sys.exit(0)  # EOF: benchtop is gone
    return data


def read_frame():
    magic, typ, flags, reserved, ident, length = HEADER.unpack(read_exact(HEADER.size))
    assert magic == MAGIC and flags == 0 and reserved == 0, "bad header"
    return typ, ident, read_exact(length)


def write_frame(typ, ident, payload):
    stdout.write(HEADER.pack(MAGIC, typ, 0, 0, ident, len(payload)) + payload)
    stdout.flush()


def spec(kind, dtype, shape):
    return {"kind": kind, "dtype": dtype, "shape": shape}


def methods(name):
    return [{"name": name, "batchable": True, "batch_dim": 0,
             "input": spec("tensor", "float32", [-1, -1]), "output": spec("tensor", "float32", [-1, -1])}]


def main():
    typ, _, payload = read_frame()
    assert typ == HELLO
    hello = json.loads(payload)
    assert hello["protocol"] == 1, "this worker speaks protocol 1 only"
    init = hello["init"]
    if init.get("banner"):
        print("Loading the model, please wait...", flush=True)
    if init.get("exit_at_init") and not hello["probe"]:
        print("cannot load model weights: /nope/model.bin: no such file", file=sys.stderr, flush=True)
        sys.exit(3)
    name = "triple" if init.get("lie") and not hello["probe"] else "double"
    write_frame(READY, 0, json.dumps({"protocol": 1, "methods": methods(name)}).encode())
    while True:
        typ, ident, payload = read_frame()
        if typ == SHUTDOWN:
            return
        (name_len,) = struct.unpack_from("<I", payload, 0)
        off = (4 + name_len + 7) & ~7
        kind, dtype, rank, _, _ = struct.unpack_from("<BBBBI", payload, off)
        shape = struct.unpack_from("<%dq" % rank, payload, off + 8)
        x = array.array("f", payload[off + 8 + 8 * rank:])
        if -3000.0 in x:
            print("debug: got a batch of shape", shape, flush=True)
        y = array.array("f", [v * 2 for v in x])
        head = struct.pack("<BBBBI", 1, 1, rank, 0, 0) + struct.pack("<%dq" % rank, *shape)
        write_frame(RESULT, ident, head + y.tobytes())


main()
