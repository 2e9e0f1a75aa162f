"""The sentiment analyser of BentoML's custom-runner guide, as a benchtop
Python worker: a lexicon-based scorer in the manner of VADER, the same one
as benchtop's Go `sentiment` sample (scores agree to the last float32 bit).

Run it from a config:

    runners:
      - name: py-sentiment
        process: {command: [python3, samples/python/sentiment_worker.py]}
        init: {threshold: 0.05}
        workers: 2

Its methods are those of the Go sample: `is_positive` (text), batchable
`scores` (string [N]), and batchable `classify`, of two inputs and two
outputs. It also has two numeric methods for tests and benchmarks: `double`
and `noop`, batchable over float32 [N, K].
"""

import array
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchtop_worker import TEXT, JSON, InvalidInput, Runnable, method, serve, tensor  # noqa: E402

# Valences on VADER's -4..4 scale for common review words.
LEXICON = {
    "good": 1.9, "great": 3.1, "excellent": 2.7, "amazing": 2.8, "awesome": 3.1, "love": 3.2, "loved": 2.9,
    "like": 1.5, "liked": 1.8, "nice": 1.8, "happy": 2.7, "best": 3.2, "fantastic": 2.6, "wonderful": 2.7,
    "enjoy": 2.2, "enjoyed": 2.3, "fun": 2.3, "perfect": 2.7, "brilliant": 2.8, "beautiful": 2.9, "fast": 1.1,
    "helpful": 1.9, "recommend": 1.5, "pleased": 1.9, "glad": 2.0, "superb": 3.1, "delightful": 2.8, "win": 2.8,
    "bad": -2.5, "terrible": -2.1, "awful": -2.0, "horrible": -2.5, "hate": -2.7, "hated": -3.2, "worst": -3.1,
    "poor": -2.1, "boring": -1.3, "sad": -2.1, "angry": -2.3, "disappointing": -2.2, "disappointed": -1.9,
    "slow": -1.0, "broken": -2.1, "ugly": -2.3, "useless": -1.8, "waste": -1.8, "annoying": -1.7, "fail": -2.5,
    "failed": -2.3, "wrong": -2.1, "problem": -1.7, "crash": -1.7, "crashed": -1.7, "bug": -1.2, "buggy": -1.9,
    "mediocre": -1.0, "dull": -1.7, "expensive": -0.9, "pain": -2.3, "lose": -1.9, "lost": -1.3,
}

NEGATIONS = {
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "cannot", "without", "isnt", "wasnt",
    "dont", "doesnt", "didnt", "cant", "wont", "aint", "arent", "shouldnt", "wouldnt",
}

BOOSTERS = {
    "very": 0.293, "really": 0.293, "extremely": 0.293, "so": 0.293, "incredibly": 0.293, "absolutely": 0.293,
    "totally": 0.293, "super": 0.293, "quite": 0.1, "slightly": -0.293, "somewhat": -0.293, "barely": -0.293,
    "kinda": -0.293, "little": -0.293,
}


def words(text):
    """Lower-case runs of letters and apostrophes."""
    out, cur = [], []
    for ch in text.lower():
        if ch.isalpha() or ch == "'":
            cur.append(ch)
        elif cur:
            out.append("".join(cur))
            cur = []
    if cur:
        out.append("".join(cur))
    return out


def compound(text):
    """The text's sentiment in [-1, 1]: word valences, flipped after a
    negation within three words, scaled by intensifiers and exclamation
    marks, normalised as VADER does (x / sqrt(x^2 + 15))."""
    ws = words(text)
    total = 0.0
    for i, w in enumerate(ws):
        v = LEXICON.get(w.replace("'", ""))
        if v is None:
            continue
        for back in range(1, 4):
            if i - back < 0:
                break
            prev = ws[i - back].replace("'", "")
            b = BOOSTERS.get(prev)
            if b is not None and back == 1:
                v = v + b if v > 0 else v - b
            if prev in NEGATIONS or (prev.endswith("nt") and len(prev) > 3):
                v *= -0.74
                break
        total += v
    if total != 0:
        bangs = min(text.count("!"), 4) * 0.292
        total = total + bangs if total > 0 else total - bangs
    return total / math.sqrt(total * total + 15)


class SentimentAnalyzer(Runnable):
    def __init__(self, threshold=0.05):
        if not -1 <= threshold <= 1:
            raise ValueError("threshold %r is outside the score range [-1, 1]" % threshold)
        self.threshold = threshold

    @method(input=TEXT, output=JSON)
    def is_positive(self, text):
        """text → true when its compound score reaches the threshold"""
        if not text.strip():
            raise InvalidInput("text is empty: send a sentence to analyse")
        return compound(text) >= self.threshold

    @method(batchable=True, batch_dim=0, input=tensor("string", [-1]), output=tensor("float32", [-1]))
    def scores(self, texts):
        """string [N] → float32 [N] compound scores in [-1, 1]"""
        return array.array("f", [compound(t) for t in texts.data])

    @method(batchable=True, batch_dim=0,
            inputs={"texts": tensor("string", [-1]),
                    "threshold": tensor("float32", [], unbatched=True, optional=True)},
            outputs={"positive": tensor("bool", [-1]), "scores": tensor("float32", [-1])})
    def classify(self, texts, threshold):
        """texts string [N] and, optionally, a threshold float32 scalar for the whole request (the runner's when absent) → positive bool [N] and scores float32 [N]"""
        # threshold is unbatched: one value for every text of the batch, and
        # benchtop batches together only requests that send the same one.
        t = self.threshold if threshold is None else threshold.tolist()
        if not -1 <= t <= 1:
            raise InvalidInput("threshold %r is outside the score range [-1, 1]" % t)
        scores = [compound(text) for text in texts.data]
        return [c >= t for c in scores], array.array("f", scores)

    @method(batchable=True, batch_dim=0, input=tensor("float32", [-1, -1]), output=tensor("float32", [-1, -1]))
    def double(self, x):
        """float32 [N, K] → float32 [N, K], each element × 2"""
        return type(x)("float32", x.shape, array.array("f", [v * 2 for v in x.data]))

    @method(batchable=True, batch_dim=0, input=tensor("float32", [-1, -1]), output=tensor("float32", [-1, -1]))
    def noop(self, x):
        """float32 [N, K] → the same tensor; measures the protocol's own cost"""
        return x


if __name__ == "__main__":
    serve(SentimentAnalyzer)
