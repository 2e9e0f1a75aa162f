"""A worker of protocol 2 written from docs/WORKER_PROTOCOL.md alone, without
the SDK: one batchable method of two inputs and two outputs,

  pair(a float32[N, K], b float32[N, K]) -> sum float32[N, K], argmax int64[N]

where sum is a + b and argmax the index of each row's largest sum. A first
element of a chooses a misbehaviour, for the host to catch:

  -1  answers a tuple of three values
  -2  answers the sum alone, not a tuple
  -3  answers argmax as float32
  -4  answers argmax one row short

Its init params choose how it answers HELLO:

  answer_protocol  the version its READY names (default: 2)
  lists_in_v1      READY of protocol 1 that still declares lists
"""

import array
import json
import struct
import sys

MAGIC = b"\x89BTW"
HEADER = struct.Struct("<4sBBHII")
HELLO, READY, CALL, RESULT, ERROR, SHUTDOWN = 1, 2, 3, 4, 5, 6
TENSOR, TUPLE = 1, 4
FLOAT32, INT64 = 1, 4

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


def pad8(b):
    return b + bytes(-len(b) % 8)


def read_tuple(payload, off):
    """The values of a tuple at off, as byte strings."""
    kind, _, _, _, count = struct.unpack_from("<BBBBI", payload, off)
    assert kind == TUPLE, "want a tuple"
    lens = struct.unpack_from("<%dQ" % count, payload, off + 8)
    pos, values = off + 8 + 8 * count, []
    for n in lens:
        values.append(payload[pos:pos + n])
        pos += n + (-n % 8)
    return values


def read_f32(value):
    """A float32 tensor's shape and elements."""
    kind, dtype, rank, _, _ = struct.unpack_from("<BBBBI", value, 0)
    assert kind == TENSOR and dtype == FLOAT32
    shape = struct.unpack_from("<%dq" % rank, value, 8)
    return shape, array.array("f", value[8 + 8 * rank:])


def tensor(dtype, shape, data):
    head = struct.pack("<BBBBI", TENSOR, dtype, len(shape), 0, 0) + struct.pack("<%dq" % len(shape), *shape)
    return head + data.tobytes()


def tuple_of(*values):
    head = struct.pack("<BBBBI", TUPLE, 0, 0, 0, len(values)) + struct.pack("<%dQ" % len(values), *map(len, values))
    return head + b"".join(pad8(v) for v in values)


def f32(name):
    return {"name": name, "kind": "tensor", "dtype": "float32", "shape": [-1, -1]}


def pair(a, b):
    (n, k), x = read_f32(a)
    _, y = read_f32(b)
    s = array.array("f", [u + v for u, v in zip(x, y)])
    best = array.array("q", [max(range(k), key=lambda j: s[i * k + j]) for i in range(n)])
    how = x[0] if len(x) else 0
    sums = tensor(FLOAT32, (n, k), s)
    if how == -1:
        return tuple_of(sums, tensor(INT64, (n,), best), sums)
    if how == -2:
        return sums
    if how == -3:
        return tuple_of(sums, tensor(FLOAT32, (n,), array.array("f", best)))
    if how == -4:
        return tuple_of(sums, tensor(INT64, (n - 1,), best[:-1]))
    return tuple_of(sums, tensor(INT64, (n,), best))


def main():
    typ, _, payload = read_frame()
    assert typ == HELLO
    hello = json.loads(payload)
    init = hello["init"]
    version = init.get("answer_protocol", 2)
    if init.get("lists_in_v1"):
        version = 1
    method = {"name": "pair", "batchable": True, "batch_dim": 0,
              "inputs": [f32("a"), f32("b")],
              "outputs": [f32("sum"), {"name": "argmax", "kind": "tensor", "dtype": "int64", "shape": [-1]}]}
    write_frame(READY, 0, json.dumps({"protocol": version, "methods": [method]}).encode())
    while True:
        typ, ident, payload = read_frame()
        if typ == SHUTDOWN:
            return
        (name_len,) = struct.unpack_from("<I", payload, 0)
        a, b = read_tuple(payload, (4 + name_len + 7) & ~7)
        write_frame(RESULT, ident, pair(a, b))


main()
