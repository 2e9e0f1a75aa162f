"""Serve a Python runnable to benchtop as a worker process.

benchtop starts one process per worker and talks to it over stdin and stdout
with the benchtop worker protocol (docs/WORKER_PROTOCOL.md). This module is
the whole Python side of it, standard library only::

    from benchtop_worker import Runnable, Tensor, method, tensor, serve

    class Doubler(Runnable):
        def __init__(self, factor=2.0):          # the runner's init params, by name
            self.factor = factor

        @method(batchable=True, batch_dim=0,
                input=tensor("float32", [-1, 4]), output=tensor("float32", [-1, 4]))
        def predict(self, x):                    # x: a Tensor of many callers' rows
            return Tensor("float32", x.shape, [v * self.factor for v in x.data])
            # or, with numpy installed: return x.numpy() * self.factor

    if __name__ == "__main__":
        serve(Doubler)

A method of several inputs names them, and gets one argument per input; it
returns a tuple, or a dict keyed by output name::

    @method(batchable=True,
            inputs={"input_ids": tensor("int64", [-1, -1]),
                    "attention_mask": tensor("int64", [-1, -1])},
            outputs={"label": tensor("int64", [-1]),
                     "probabilities": tensor("float32", [-1, 2])})
    def predict(self, input_ids, attention_mask):
        ...
        return labels, probabilities     # or {"label": ..., "probabilities": ...}

Importing this module under benchtop moves fd 1 (stdout) onto stderr, so that
print() and C libraries that write to stdout cannot corrupt the protocol:
their output reaches benchtop's log instead.
"""

from __future__ import annotations

import array
import inspect
import io
import json
import os
import struct
import sys
import traceback

__all__ = [
    "JSON",
    "TEXT",
    "ANY",
    "InvalidInput",
    "Runnable",
    "Spec",
    "Tensor",
    "context",
    "method",
    "serve",
    "tensor",
]

# The worker protocol versions this module speaks. Protocol 2 brought methods
# of several named inputs and outputs; a method of one input and one output
# travels as in protocol 1, so a benchtop of protocol 1 is served too while
# every method is of that kind.
PROTOCOL = 2
MIN_PROTOCOL = 1

_MAGIC = b"\x89BTW"
_HEADER = struct.Struct("<4sBBHII")  # magic, type, flags, reserved, id, length
_VALUE_HEAD = struct.Struct("<BBBBI")  # kind, dtype, rank, reserved, reserved
_HELLO, _READY, _CALL, _RESULT, _ERROR, _SHUTDOWN = 1, 2, 3, 4, 5, 6
_KIND_TENSOR, _KIND_TEXT, _KIND_JSON, _KIND_TUPLE = 1, 2, 3, 4
_ZEROS = bytes(8)

# dtype name -> (wire code, memoryview format, bytes per element)
_DTYPES = {
    "float32": (1, "f", 4),
    "float64": (2, "d", 8),
    "int32": (3, "i", 4),
    "int64": (4, "q", 8),
    "uint8": (5, "B", 1),
    "bool": (6, "?", 1),
    "string": (7, None, 0),
}
_DTYPE_OF_CODE = {code: name for name, (code, _, _) in _DTYPES.items()}
# array.array has no bool type code; bools are stored as bytes 0 and 1.
_ARRAY_CODE = {"float32": "f", "float64": "d", "int32": "i", "int64": "q", "uint8": "B", "bool": "B"}
_DTYPE_OF_ARRAY = {"f": "float32", "d": "float64", "i": "int32", "q": "int64", "B": "uint8"}

if sys.byteorder != "little":
    raise ImportError("benchtop_worker: the worker protocol carries little-endian tensors; this host is big-endian")
if struct.calcsize("i") != 4 or struct.calcsize("q") != 8:
    raise ImportError("benchtop_worker: this Python's C int is not 32 bits")

try:  # optional: Tensor.numpy() and numpy results when numpy is installed
    import numpy as _np
except ImportError:  # pragma: no cover - depends on the environment
    _np = None


class InvalidInput(Exception):
    """Raise it from a method when the input is bad: benchtop answers the
    caller with 400 and this message, and the worker keeps serving."""


# --------------------------------------------------------------------------
# Tensors


def _prod(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _nest(flat, shape):
    """Nested lists of shape from a flat row-major list."""
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return flat
    step = _prod(shape[1:])
    return [_nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def _shape_of(values):
    """The shape nested lists claim along their first elements."""
    shape = []
    while isinstance(values, (list, tuple)):
        shape.append(len(values))
        if not values:
            break
        values = values[0]
    return shape


def _flatten(values, shape, depth, out):
    """Appends the elements of nested lists to out, checking they fill shape."""
    if depth == len(shape):
        if isinstance(values, (list, tuple)):
            raise ValueError("ragged nested list: every row must have the same depth")
        out.append(values)
        return
    if not isinstance(values, (list, tuple)) or len(values) != shape[depth]:
        raise ValueError("ragged nested list: every row must have the same length")
    for v in values:
        _flatten(v, shape, depth + 1, out)


class Tensor:
    """A dtype, a shape and row-major elements, as benchtop's tensors are.

    Numeric and bool tensors wrap raw little-endian bytes without copying:
    ``t.data`` is a typed memoryview of them, ``t.tolist()`` nested lists,
    ``t.array()`` a flat array.array copy, ``t.numpy()`` a numpy view when
    numpy is installed. String tensors hold a flat list of str.
    """

    __slots__ = ("dtype", "shape", "_buf")

    def __init__(self, dtype, shape, data):
        """Build a tensor of dtype and shape from flat data: bytes-like raw
        little-endian elements, an array.array, or an iterable of numbers
        (or of str for dtype "string")."""
        if dtype not in _DTYPES:
            raise ValueError("unknown dtype %r: want one of %s" % (dtype, ", ".join(_DTYPES)))
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise ValueError("shape %r has a negative dim" % (shape,))
        n = _prod(shape)
        self.dtype = dtype
        self.shape = shape
        if dtype == "string":
            strs = list(data)
            if len(strs) != n:
                raise ValueError("%d strings for shape %r, want %d" % (len(strs), shape, n))
            for s in strs:
                if not isinstance(s, str):
                    raise TypeError("a string tensor holds str, got %s" % type(s).__name__)
            self._buf = strs
            return
        size = _DTYPES[dtype][2]
        if isinstance(data, (bytes, bytearray, memoryview)):
            buf = memoryview(data).cast("B")
        elif isinstance(data, array.array) and data.typecode == _ARRAY_CODE[dtype]:
            buf = memoryview(data).cast("B")
        else:
            values = list(data)
            if dtype == "bool":
                values = [1 if v else 0 for v in values]
            buf = memoryview(array.array(_ARRAY_CODE[dtype], values)).cast("B")
        if buf.nbytes != n * size:
            raise ValueError("%d bytes of %s for shape %r, want %d" % (buf.nbytes, dtype, shape, n * size))
        if dtype == "bool" and any(b > 1 for b in buf):
            raise ValueError("bool elements must be bytes 0 or 1")
        self._buf = buf

    @classmethod
    def _wrap(cls, dtype, shape, buf):
        t = object.__new__(cls)
        t.dtype, t.shape, t._buf = dtype, shape, buf
        return t

    @classmethod
    def from_list(cls, values, dtype=None):
        """A tensor from (nested) lists; the shape follows the nesting. The
        dtype is inferred when not given: bool, int64, float64 or string."""
        flat, shape = [], _shape_of(values)
        _flatten(values, shape, 0, flat)
        if dtype is None:
            dtype = _infer_dtype(flat)
        return cls(dtype, shape, flat)

    @classmethod
    def from_numpy(cls, a):
        """A tensor from a numpy array (its data is copied if not contiguous)."""
        if a.dtype.kind in "USO":
            return cls("string", a.shape, [str(x) for x in a.reshape(-1).tolist()])
        name = a.dtype.name
        if name not in _DTYPES:
            raise TypeError("numpy dtype %s has no benchtop dtype: convert to one of %s" % (name, ", ".join(_DTYPES)))
        a = _np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
        return cls._wrap(name, tuple(a.shape), memoryview(a.reshape(-1).view(_np.uint8)))

    @property
    def data(self):
        """The elements as a flat, typed memoryview (no copy); a list of str
        for a string tensor."""
        if self.dtype == "string":
            return self._buf
        return self._buf.cast(_DTYPES[self.dtype][1])

    def array(self):
        """The elements as a new flat array.array (bools as bytes 0/1)."""
        if self.dtype == "string":
            raise TypeError("a string tensor has no array form: use tolist()")
        return array.array(_ARRAY_CODE[self.dtype], self._buf.tobytes())

    def tolist(self):
        """The elements as nested lists, like numpy's tolist()."""
        flat = list(self._buf) if self.dtype == "string" else self.data.tolist()
        return _nest(flat, self.shape)

    def numpy(self):
        """A numpy array viewing the same memory (requires numpy)."""
        if _np is None:
            raise RuntimeError("numpy is not installed: use tolist(), data or array()")
        if self.dtype == "string":
            return _np.array(self._buf, dtype=object).reshape(self.shape)
        return _np.frombuffer(self._buf, dtype=_np.dtype(self.dtype).newbyteorder("<")).reshape(self.shape)

    @property
    def size(self):
        return _prod(self.shape)

    def __len__(self):
        if not self.shape:
            raise TypeError("a scalar tensor has no length")
        return self.shape[0]

    def __repr__(self):
        return "Tensor(%s%s)" % (self.dtype, list(self.shape))


def _infer_dtype(flat):
    if flat and all(isinstance(v, bool) for v in flat):
        return "bool"
    if any(isinstance(v, str) for v in flat):
        return "string"
    if flat and all(isinstance(v, int) for v in flat):
        return "int64"
    return "float64"


# --------------------------------------------------------------------------
# Method signatures


class Spec:
    """One input or output of a method: a tensor (with an optional dtype and
    shape, -1 for any size), text, JSON, or anything; with a name where a
    method has several; unbatched for a value of a batchable method that is
    not cut into callers' rows (passed once per batch, or returned whole to
    each caller); optional for an input callers may leave out (the method
    then gets None)."""

    __slots__ = ("kind", "dtype", "shape", "name", "unbatched", "optional")

    def __init__(self, kind=None, dtype=None, shape=None, *, name=None, unbatched=False, optional=False):
        if kind not in (None, "tensor", "text", "json"):
            raise ValueError("kind %r: want tensor, text, json or None (any)" % (kind,))
        if dtype is not None and dtype not in _DTYPES:
            raise ValueError("unknown dtype %r: want one of %s" % (dtype, ", ".join(_DTYPES)))
        if kind != "tensor" and (dtype is not None or shape is not None):
            raise ValueError("only a tensor has a dtype and a shape")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError("name %r: want a non-empty str" % (name,))
        self.kind = kind
        self.dtype = dtype
        self.shape = None if shape is None else [int(d) for d in shape]
        self.name = name
        self.unbatched = bool(unbatched)
        self.optional = bool(optional)

    def _named(self, name):
        """A copy called name (the shared TEXT, JSON and ANY stay unnamed)."""
        return Spec(self.kind, self.dtype, self.shape, name=name, unbatched=self.unbatched, optional=self.optional)

    def _needs_protocol2(self):
        return bool(self.name or self.unbatched or self.optional)

    def wire(self):
        d = {}
        if self.name:
            d["name"] = self.name
        d["kind"] = self.kind or "any"
        if self.dtype is not None:
            d["dtype"] = self.dtype
        if self.shape is not None:
            d["shape"] = self.shape
        if self.unbatched:
            d["unbatched"] = True
        if self.optional:
            d["optional"] = True
        return d

    def __repr__(self):
        flags = "".join(", %s=True" % f for f in ("unbatched", "optional") if getattr(self, f))
        name = ", name=%r" % self.name if self.name else ""
        return "Spec(%r, %r, %r%s%s)" % (self.kind, self.dtype, self.shape, name, flags)


def tensor(dtype=None, shape=None, *, name=None, unbatched=False, optional=False):
    """A tensor spec, e.g. tensor("float32", [-1, 4]); None means any dtype
    or shape, [] a scalar. unbatched and optional as in Spec."""
    return Spec("tensor", dtype, shape, name=name, unbatched=unbatched, optional=optional)


TEXT = Spec("text")
JSON = Spec("json")
ANY = Spec()


class _Method:
    __slots__ = ("name", "doc", "batchable", "batch_dim", "output_batch_dim", "inputs", "outputs",
                 "listed_inputs", "listed_outputs", "by_keyword")

    def wire(self):
        d = {
            "name": self.name,
            "doc": self.doc,
            "batchable": self.batchable,
            "batch_dim": self.batch_dim,
            "output_batch_dim": self.output_batch_dim,
        }
        # A method declared with input=/output= keeps protocol 1's one-slot
        # form, so that a benchtop of protocol 1 can serve it.
        if self.listed_inputs:
            d["inputs"] = [s.wire() for s in self.inputs]
        else:
            d["input"] = self.inputs[0].wire()
        if self.listed_outputs:
            d["outputs"] = [s.wire() for s in self.outputs]
        else:
            d["output"] = self.outputs[0].wire()
        return d

    def needs_protocol2(self):
        return self.listed_inputs or self.listed_outputs or any(s._needs_protocol2() for s in self.inputs + self.outputs)

    def output_names(self):
        return ", ".join(s.name or "output" for s in self.outputs)


def method(fn=None, *, batchable=False, batch_dim=0, input=None, output=None, inputs=None, outputs=None,
           name=None, doc=None):
    """Declare a runnable method, as bentoml.Runnable.method does.

    batchable: benchtop may concatenate many callers' inputs along batch_dim
    into one call and split the outputs back along the output batch dim.
    batch_dim: an int, or a pair (input dim, output dim) as in BentoML.
    input, output: the Spec of a method's one argument and one result
    (tensor(...), TEXT, JSON, ANY). A batchable method defaults to tensors of
    any dtype and shape, others to ANY.
    inputs: several arguments, one Spec each, as a dict {name: Spec} or a
    list of Specs named after the function's parameters; the method is
    called with one argument per input (None for an absent optional one).
    outputs: several results, as a dict {name: Spec} or a list of named
    Specs; the method returns a tuple of them in that order, or a dict keyed
    by output name.
    """

    def wrap(f):
        m = _Method()
        m.name = name or f.__name__
        first_line = (inspect.getdoc(f) or "").strip().splitlines()
        m.doc = doc if doc is not None else (first_line[0] if first_line else "")
        m.batchable = bool(batchable)
        if isinstance(batch_dim, (tuple, list)):
            m.batch_dim, m.output_batch_dim = int(batch_dim[0]), int(batch_dim[1])
        else:
            m.batch_dim = m.output_batch_dim = int(batch_dim)
        default = tensor() if batchable else ANY
        if input is not None and inputs is not None:
            raise TypeError("method %r: give input= (one argument) or inputs= (several), not both" % m.name)
        if output is not None and outputs is not None:
            raise TypeError("method %r: give output= (one result) or outputs= (several), not both" % m.name)
        m.listed_inputs, m.listed_outputs, m.by_keyword = inputs is not None, outputs is not None, False
        if inputs is None:
            m.inputs = [input if input is not None else default]
        else:
            m.inputs, m.by_keyword = _input_specs(f, m.name, inputs, default)
        if outputs is None:
            m.outputs = [output if output is not None else default]
        else:
            m.outputs = _output_specs(m.name, outputs, default)
        _check_method(m)
        f.__benchtop_method__ = m
        return f

    return wrap(fn) if fn is not None else wrap


def _input_specs(f, mname, inputs, default):
    """The named input Specs of f, and whether f must be called by keyword
    (its parameters are not the inputs, in order)."""
    params = list(inspect.signature(f).parameters.values())[1:]  # after self
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if isinstance(inputs, dict):
        specs = [(s if s is not None else default)._named(n) for n, s in inputs.items()]
    elif isinstance(inputs, (list, tuple)):
        specs = []
        for i, s in enumerate(inputs):
            s = s if s is not None else default
            if s.name is None:
                if i >= len(positional):
                    raise TypeError("method %r: input %d has no name, and %s%s has no parameter %d to name it after"
                                    % (mname, i, f.__name__, inspect.signature(f), i + 1))
                s = s._named(positional[i])
            specs.append(s)
    else:
        raise TypeError("method %r: inputs= takes a dict {name: spec} or a list of specs, not %s"
                        % (mname, type(inputs).__name__))
    names = [s.name for s in specs]
    _check_unique(mname, "input", names)
    try:
        inspect.signature(f).bind(None, **{n: None for n in names})
    except TypeError as e:
        raise TypeError("method %r declares inputs (%s), but %s%s cannot take them as arguments of those names: %s"
                        % (mname, ", ".join(names), f.__name__, inspect.signature(f), e)) from None
    return specs, names != positional[:len(names)]


def _output_specs(mname, outputs, default):
    if isinstance(outputs, dict):
        specs = [(s if s is not None else default)._named(n) for n, s in outputs.items()]
    elif isinstance(outputs, (list, tuple)):
        specs = [s if s is not None else default for s in outputs]
        if len(specs) > 1 and any(s.name is None for s in specs):
            raise TypeError("method %r: name every one of its %d outputs (tensor(..., name=...), or outputs={name: spec})"
                            % (mname, len(specs)))
    else:
        raise TypeError("method %r: outputs= takes a dict {name: spec} or a list of named specs, not %s"
                        % (mname, type(outputs).__name__))
    _check_unique(mname, "output", [s.name for s in specs])
    return specs


def _check_unique(mname, what, names):
    seen = set()
    for n in names:
        if n in seen:
            raise TypeError("method %r: two %ss are named %r" % (mname, what, n))
        seen.add(n)


def _check_method(m):
    """The checks benchtop makes of a method, made at class definition so
    that a mistake points at the decorator, not at a failed handshake."""
    for what, specs in (("input", m.inputs), ("output", m.outputs)):
        for s in specs:
            label = s.name or what
            if s.optional and what == "output":
                raise TypeError("method %r: output %r is optional; only inputs may be" % (m.name, label))
            if s.unbatched and not m.batchable:
                raise TypeError("method %r: %s %r is unbatched, but the method is not batchable: every value is passed whole"
                                % (m.name, what, label))
            if m.batchable and not s.unbatched and s.kind not in ("tensor", "json"):
                raise TypeError("method %r is batchable, so its batched %s %r must be a tensor or a JSON array, not %s "
                                "(or mark it unbatched)" % (m.name, what, label, s.kind or "any"))
    if m.batchable and all(s.unbatched for s in m.inputs):
        raise TypeError("method %r is batchable but has no batched input to count its rows by" % m.name)


class Runnable:
    """Base class of a runnable served by serve(), mirroring bentoml.Runnable.

    __init__ receives the runner's init params (the config's `init:` map) as
    keyword arguments; methods are declared with @method (or
    @Runnable.method). close() is called once at shutdown.
    """

    method = staticmethod(method)

    def close(self):
        """Release what __init__ acquired; called once when the worker stops."""


class _Context:
    """Where this worker runs, from benchtop's HELLO: runner name, worker
    index, CPU threads it may use, GPU ids assigned to it (visible as
    devices 0..n-1 through CUDA_VISIBLE_DEVICES), and whether this process
    is only a probe reading the methods (then __init__ is never called)."""

    __slots__ = ("runner", "worker", "threads", "gpus", "probe")

    def __init__(self):
        self.runner, self.worker, self.threads, self.gpus, self.probe = "", -1, 1, [], False

    def __repr__(self):
        return "context(runner=%r, worker=%r, threads=%r, gpus=%r, probe=%r)" % (
            self.runner, self.worker, self.threads, self.gpus, self.probe)


context = _Context()


def _methods_of(cls):
    """name -> (attribute, _Method), in declaration order, bases first."""
    found = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            m = getattr(value, "__benchtop_method__", None)
            if isinstance(m, _Method):
                found[m.name] = (attr, m)
    return found


# --------------------------------------------------------------------------
# Values on the wire


def _decode(payload, off):
    kind, code, rank, r0, r1 = _VALUE_HEAD.unpack_from(payload, off)
    if r0 or r1:
        raise _ProtocolError("value header has reserved bytes set")
    off += _VALUE_HEAD.size
    if kind == _KIND_TEXT:
        return bytes(payload[off:]).decode("utf-8", "surrogateescape")
    if kind == _KIND_JSON:
        return json.loads(bytes(payload[off:]))
    if kind != _KIND_TENSOR or code not in _DTYPE_OF_CODE:
        raise _ProtocolError("value of kind %d, dtype %d" % (kind, code))
    dtype = _DTYPE_OF_CODE[code]
    shape = struct.unpack_from("<%dq" % rank, payload, off)
    body = memoryview(payload)[off + 8 * rank:]
    if dtype != "string":
        return Tensor._wrap(dtype, shape, body)
    n = _prod(shape)
    lens = struct.unpack_from("<%dI" % n, body, 0)
    pos = 4 * n
    strs = []
    for length in lens:
        strs.append(str(body[pos:pos + length], "utf-8", "surrogateescape"))
        pos += length
    return Tensor._wrap("string", shape, strs)


def _decode_inputs(payload, off, n):
    """The n inputs of a CALL, from off: the value itself when n is 1 (None
    when empty, an absent optional input), else a tuple's values."""
    if n == 1:
        return [_decode(payload, off) if off < len(payload) else None]
    kind, r0, r1, r2, count = _VALUE_HEAD.unpack_from(payload, off)
    if kind != _KIND_TUPLE or r0 or r1 or r2:
        raise _ProtocolError("a method of %d inputs got a value of kind %d, want a tuple (4)" % (n, kind))
    if count != n:
        raise _ProtocolError("a method of %d inputs got a tuple of %d values" % (n, count))
    lens = struct.unpack_from("<%dQ" % count, payload, off + 8)
    pos = off + 8 + 8 * count
    view = memoryview(payload)
    values = []
    for length in lens:
        values.append(_decode(view[:pos + length], pos) if length else None)
        pos += (length + 7) & ~7
    return values


def _as_tensor(value, dtype):
    if isinstance(value, Tensor):
        return value
    if _np is not None and isinstance(value, _np.ndarray):
        if dtype is not None and value.dtype.kind not in "USO" and value.dtype.name != dtype:
            value = value.astype(dtype)
        return Tensor.from_numpy(value)
    if isinstance(value, array.array):
        return Tensor(dtype or _DTYPE_OF_ARRAY.get(value.typecode) or "float64", [len(value)], value)
    if isinstance(value, (list, tuple)):
        return Tensor.from_list(value, dtype)
    raise TypeError("returned %s where a tensor is declared: return a Tensor, a list, an array.array or a numpy array"
                    % type(value).__name__)


def _encode(value, spec):
    """The buffers of an encoded value, for os.writev."""
    kind = spec.kind
    if kind is None:
        if isinstance(value, str):
            kind = "text"
        elif isinstance(value, (Tensor, array.array)) or (_np is not None and isinstance(value, _np.ndarray)):
            kind = "tensor"
        else:
            kind = "json"
    if kind == "text":
        if not isinstance(value, str):
            raise TypeError("returned %s where text is declared: return a str" % type(value).__name__)
        return [_VALUE_HEAD.pack(_KIND_TEXT, 0, 0, 0, 0), value.encode("utf-8", "surrogateescape")]
    if kind == "json":
        body = json.dumps(value, allow_nan=False, separators=(",", ":")).encode("utf-8")
        return [_VALUE_HEAD.pack(_KIND_JSON, 0, 0, 0, 0), body]
    t = _as_tensor(value, spec.dtype)
    if t.dtype != spec.dtype and spec.dtype is not None:
        raise TypeError("returned a tensor of %s where %s is declared: convert it (numpy: .astype(%r))"
                        % (t.dtype, spec.dtype, spec.dtype))
    rank = len(t.shape)
    head = _VALUE_HEAD.pack(_KIND_TENSOR, _DTYPES[t.dtype][0], rank, 0, 0) + struct.pack("<%dq" % rank, *t.shape)
    if t.dtype != "string":
        return [head, t._buf]
    encoded = [s.encode("utf-8", "surrogateescape") for s in t._buf]
    return [head, struct.pack("<%dI" % len(encoded), *map(len, encoded)), b"".join(encoded)]


def _nbytes(part):
    return part.nbytes if isinstance(part, memoryview) else len(part)


def _encode_outputs(result, m):
    """The buffers of a method's outputs: the value itself for one output,
    else a tuple of them, from a tuple or a dict keyed by output name."""
    if len(m.outputs) == 1:
        return _encode(result, m.outputs[0])
    values = _outputs_of(result, m)
    encoded, lens = [], []
    for value, spec in zip(values, m.outputs):
        try:
            parts = _encode(value, spec)
        except (TypeError, ValueError) as e:
            raise type(e)("output %r: %s" % (spec.name, e)) from None
        encoded.append(parts)
        lens.append(sum(_nbytes(p) for p in parts))
    out = [_VALUE_HEAD.pack(_KIND_TUPLE, 0, 0, 0, len(values)) + struct.pack("<%dQ" % len(lens), *lens)]
    for parts, length in zip(encoded, lens):
        out.extend(parts)
        if length % 8:
            out.append(_ZEROS[:-length % 8])
    return out


def _outputs_of(result, m):
    """result as a list in output order, or a TypeError saying what to
    return."""
    names = [s.name for s in m.outputs]
    if isinstance(result, dict):
        missing = [n for n in names if n not in result]
        unknown = [k for k in result if k not in names]
        if missing or unknown:
            said = []
            if missing:
                said.append("without %s" % ", ".join(map(repr, missing)))
            if unknown:
                said.append("with %s, which it does not declare" % ", ".join(map(repr, unknown)))
            raise TypeError("method %r returned a dict %s: its outputs are %s"
                            % (m.name, " and ".join(said), m.output_names()))
        return [result[n] for n in names]
    if result is None and not names:
        return []
    if not isinstance(result, tuple):
        raise TypeError("method %r has %d outputs (%s): return a tuple of them in that order, or a dict keyed by "
                        "output name, not %s" % (m.name, len(names), m.output_names(), type(result).__name__))
    if len(result) != len(names):
        raise TypeError("method %r returned %d values, but it has %d outputs (%s): return one per output, in that order"
                        % (m.name, len(result), len(names), m.output_names()))
    return result


# --------------------------------------------------------------------------
# The connection


class _ProtocolError(Exception):
    pass


_stdio = None


def _claim_stdio():
    """Keeps private copies of the protocol's pipes and points fd 0 at
    /dev/null and fd 1 at stderr, so that nothing else in the process (user
    code, C libraries, child processes) can read or write protocol bytes.
    The copies are not inherited by child processes."""
    global _stdio
    if _stdio is None:
        rfd, wfd = os.dup(0), os.dup(1)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(2, 1)
        try:
            sys.stdout.flush()  # what print() buffered so far now goes to stderr
        except (AttributeError, OSError, ValueError):
            pass
        sys.stdout = sys.stderr
        _stdio = (rfd, wfd)
    return _stdio


if os.environ.get("BENCHTOP_WORKER_PROTOCOL"):
    _claim_stdio()


class _Conn:
    def __init__(self, rfd, wfd):
        self._r = io.FileIO(rfd, "rb", closefd=False)
        self._wfd = wfd
        self._head = bytearray(_HEADER.size)
        self._head_view = memoryview(self._head)

    def _fill(self, view):
        got, n = 0, len(view)
        while got < n:
            k = self._r.readinto(view[got:])
            if not k:
                if got == 0 and view.obj is self._head:
                    raise EOFError
                raise _ProtocolError("benchtop closed the pipe in the middle of a frame")
            got += k

    def read(self):
        """The next frame: (type, id, payload bytearray); EOFError at the end."""
        self._fill(self._head_view)
        magic, typ, flags, reserved, ident, length = _HEADER.unpack(self._head)
        if magic != _MAGIC or flags or reserved:
            raise _ProtocolError("bad frame header %r" % bytes(self._head))
        payload = bytearray(length)
        if length:
            self._fill(memoryview(payload))
        return typ, ident, payload

    def write(self, typ, ident, parts):
        parts = [p if isinstance(p, memoryview) else memoryview(p) for p in parts]
        length = sum(p.nbytes for p in parts)
        bufs = [_HEADER.pack(_MAGIC, typ, 0, 0, ident, length)] + parts
        total = length + _HEADER.size
        sent = os.writev(self._wfd, bufs)
        if sent < total:  # a signal interrupted a large write: send the rest
            rest = memoryview(b"".join(bytes(b) for b in bufs))[sent:]
            while rest:
                rest = rest[os.write(self._wfd, rest):]

    def write_json(self, typ, ident, obj):
        self.write(typ, ident, [json.dumps(obj, separators=(",", ":")).encode("utf-8")])


def _error(message, invalid=False):
    return {"message": message, "invalid_input": invalid}


def _construct(cls, init):
    try:
        inspect.signature(cls).bind(**init)
    except TypeError as e:
        raise TypeError("init params %s do not fit %s%s: %s" % (
            json.dumps(init, default=str), cls.__name__, inspect.signature(cls), e)) from None
    return cls(**init)


def serve(runnable_class):
    """Serve runnable_class to benchtop until it says SHUTDOWN. Call it from
    the worker script's main; it does not return until the worker stops."""
    methods = _methods_of(runnable_class)
    if not methods:
        raise TypeError("%s declares no methods: decorate some with @method" % runnable_class.__name__)
    conn = _Conn(*_claim_stdio())
    try:
        code = _serve(conn, runnable_class, methods)
    except _ProtocolError as e:
        print("benchtop_worker: protocol error: %s" % e, file=sys.stderr)
        code = 2
    sys.stderr.flush()
    sys.exit(code)


def _serve(conn, cls, methods):
    try:
        typ, _, payload = conn.read()
    except EOFError:
        return 0
    if typ != _HELLO:
        raise _ProtocolError("expected HELLO, got message type %d" % typ)
    hello = json.loads(bytes(payload))
    version, refusal = _choose_protocol(hello, [m for _, m in methods.values()])
    if refusal:
        conn.write_json(_ERROR, 0, _error(refusal))
        return 2
    context.runner = hello.get("runner", "")
    context.worker = hello.get("worker", -1)
    context.threads = hello.get("threads", 1)
    context.gpus = hello.get("gpus") or []
    context.probe = bool(hello.get("probe"))
    ready = {"protocol": version, "methods": [m.wire() for _, m in methods.values()]}
    if context.probe:
        conn.write_json(_READY, 0, ready)
        _drain(conn)
        return 0
    try:
        instance = _construct(cls, hello.get("init") or {})
    except Exception as e:
        traceback.print_exc()
        conn.write_json(_ERROR, 0, _error("init: %s: %s" % (type(e).__name__, e)))
        return 1
    conn.write_json(_READY, 0, ready)
    bound = {name: _bind(getattr(instance, attr), m) for name, (attr, m) in methods.items()}
    try:
        _loop(conn, bound)
    finally:
        close = getattr(instance, "close", None)
        if close is not None:
            close()
    return 0


def _bind(fn, m):
    """What _loop needs to call m: (fn, m, decode, output). A method of one
    input and one output, the common case, gets the decoder of its one value
    and its output's spec, so that its call builds no argument lists and
    costs what it did before methods had several; any other gets None."""
    if len(m.inputs) != 1 or len(m.outputs) != 1 or m.by_keyword:
        return fn, m, None, None
    return fn, m, (_decode_optional if m.inputs[0].optional else _decode), m.outputs[0]


def _decode_optional(payload, off):
    """A lone optional input: None when the CALL carries nothing."""
    return _decode(payload, off) if off < len(payload) else None


def _choose_protocol(hello, methods):
    """The version to answer READY in, the newest both sides speak, or None
    and the reason there is none."""
    lo = hello.get("protocol")
    hi = hello.get("max_protocol", lo)  # a benchtop of protocol 1 sends no max_protocol
    if not isinstance(lo, int) or not isinstance(hi, int) or hi < lo:
        return None, "HELLO offers protocols %r to %r: want two ints, the oldest and the newest" % (lo, hi)
    version = min(PROTOCOL, hi)
    if version < max(lo, MIN_PROTOCOL):
        side = "benchtop" if hi < MIN_PROTOCOL else "benchtop_worker.py (samples/python of your benchtop)"
        return None, "benchtop speaks protocols %d to %d, this benchtop_worker speaks %d to %d: update %s" % (
            lo, hi, MIN_PROTOCOL, PROTOCOL, side)
    if version < 2:
        needs = [m.name for m in methods if m.needs_protocol2()]
        if needs:
            return None, ("benchtop speaks only protocol %d, and methods %s declare several, named, unbatched or optional "
                          "inputs or outputs, which need protocol 2: update benchtop" % (version, ", ".join(needs)))
    return version, None


def _drain(conn):
    """A probe waits for SHUTDOWN (or EOF) and exits."""
    while True:
        try:
            typ, _, _ = conn.read()
        except EOFError:
            return
        if typ == _SHUTDOWN:
            return


def _loop(conn, bound):
    unpack_name = struct.Struct("<I").unpack_from
    while True:
        try:
            typ, ident, payload = conn.read()
        except EOFError:
            return
        if typ == _SHUTDOWN:
            return
        if typ != _CALL:
            raise _ProtocolError("expected CALL or SHUTDOWN, got message type %d" % typ)
        (name_len,) = unpack_name(payload, 0)
        name = payload[4:4 + name_len].decode("utf-8")
        entry = bound.get(name)
        if entry is None:
            conn.write_json(_ERROR, ident, _error("this worker has no method %r (methods: %s)" % (name, ", ".join(bound))))
            continue
        fn, m, decode, output = entry
        off = (4 + name_len + 7) & ~7
        try:
            if decode is not None:
                parts = _encode(fn(decode(payload, off)), output)
            else:
                args = _decode_inputs(payload, off, len(m.inputs))
                if m.by_keyword:
                    result = fn(**{s.name: a for s, a in zip(m.inputs, args)})
                else:
                    result = fn(*args)
                parts = _encode_outputs(result, m)
        except InvalidInput as e:
            conn.write_json(_ERROR, ident, _error(str(e) or "invalid input", True))
            continue
        except _ProtocolError:
            raise
        except Exception as e:
            traceback.print_exc()
            conn.write_json(_ERROR, ident, _error("%s: %s" % (type(e).__name__, e)))
            continue
        conn.write(_RESULT, ident, parts)
