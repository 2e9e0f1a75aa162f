"""A test worker built on the SDK: every method exercises one path of the
protocol or one way a worker can misbehave."""

import array
import os
import signal
import subprocess
import sys
import time

from benchtop_worker import JSON, TEXT, InvalidInput, Runnable, Tensor, context, method, serve, tensor

CRASH, HANG = -1000.0, -2000.0


class TestWorker(Runnable):
    def __init__(self, fail_init=False, stubborn=False):
        if fail_init:
            raise FileNotFoundError("model file /nonexistent/model.bin not found")
        self.stubborn = stubborn
        self.children = []

    @method(batchable=True, input=tensor("float32", [-1, -1]), output=tensor("float32", [-1, -1]))
    def double(self, x):
        """float32 [N, K] → each element × 2; a row holding -1000 kills the worker, -2000 hangs it"""
        values = x.data
        if CRASH in values:
            print("dying on purpose, pid %d" % os.getpid(), file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        if HANG in values:
            print("hanging on purpose", file=sys.stderr, flush=True)
            time.sleep(3600)
        return Tensor("float32", x.shape, array.array("f", [v * 2 for v in values]))

    @method(batchable=True)
    def echo(self, x):
        return x

    @method(input=TEXT, output=TEXT)
    def echo_text(self, s):
        return s

    @method(input=JSON, output=JSON)
    def echo_json(self, v):
        return v

    @method(batchable=True, input=JSON, output=JSON)
    def wrap_rows(self, rows):
        return [{"row": r} for r in rows]

    @method(input=JSON, output=JSON)
    def fail(self, how):
        if how == "invalid":
            raise InvalidInput("the input is bad: send a positive number")
        if how == "nan":
            return float("nan")
        raise ValueError("boom")

    @method(input=JSON, output=tensor("float32", [-1]))
    def wrong_output(self, _):
        return Tensor("int64", [2], [1, 2])

    @method(batchable=True,
            inputs={"x": tensor("float32", [-1, -1]), "ids": tensor("int64", [-1])},
            outputs={"scaled": tensor("float32", [-1, -1]), "next_ids": tensor("int64", [-1])})
    def pair(self, x, ids):
        """x float32 [N, K] and ids int64 [N] → x × 3 and ids + 1; returns a dict"""
        return {"next_ids": [i + 1 for i in ids.data],
                "scaled": Tensor("float32", x.shape, array.array("f", [v * 3 for v in x.data]))}

    @method(inputs={"a": JSON, "b": JSON}, output=JSON)
    def minus(self, b, a):
        """a − b: its parameters come in another order than its inputs, so it is called by keyword"""
        return a - b

    @method(inputs={"maybe": tensor("float32", optional=True)}, output=JSON)
    def present(self, maybe):
        return None if maybe is None else maybe.tolist()

    @method(input=JSON, outputs={"label": tensor("int64", [-1]), "score": tensor("float32", [-1])})
    def outputs_as(self, how):
        """returns its two outputs as it is told, right or wrong"""
        return {
            "tuple": lambda: ([1], [0.5]),
            "dict": lambda: {"score": [0.5], "label": [1]},
            "list": lambda: [[1], [0.5]],
            "three": lambda: ([1], [0.5], [2]),
            "misnamed": lambda: {"label": [1], "scores": [0.5]},
            "dtype": lambda: (Tensor("float32", [1], [1.0]), [0.5]),
        }[how]()

    @method(input=JSON, output=JSON)
    def shout(self, text):
        print(text)  # stdout: the SDK sends it to stderr
        sys.stdout.flush()
        return os.getpid()

    @method(input=JSON, output=JSON)
    def pid(self, _):
        return os.getpid()

    @method(input=JSON, output=JSON)
    def env(self, names):
        return {
            "env": {n: os.environ.get(n) for n in names},
            "context": {"runner": context.runner, "worker": context.worker, "threads": context.threads, "gpus": context.gpus},
        }

    @method(input=JSON, output=JSON)
    def spawn(self, _):
        p = subprocess.Popen(["sleep", "600"])
        self.children.append(p)
        return p.pid

    def close(self):
        if self.stubborn:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(3600)


if __name__ == "__main__":
    serve(TestWorker)
