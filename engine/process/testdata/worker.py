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
