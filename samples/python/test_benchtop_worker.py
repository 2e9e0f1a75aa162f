"""Unit tests of the SDK's own helpers (the protocol itself is tested from
Go, against real workers): python3 -m unittest test_benchtop_worker"""

import array
import unittest

import benchtop_worker as bw


def roundtrip(value, spec):
    encoded = bytearray(b"".join(bytes(p) for p in bw._encode(value, spec)))
    return bw._decode(encoded, 0)


class TensorTest(unittest.TestCase):
    def test_from_list_infers_shape_and_dtype(self):
        cases = [
            ([[1, 2, 3], [4, 5, 6]], "int64", (2, 3)),
            ([1.5, 2], "float64", (2,)),
            ([[True], [False]], "bool", (2, 1)),
            (["a", "b"], "string", (2,)),
            ([], "float64", (0,)),
            (7, "int64", ()),
        ]
        for values, dtype, shape in cases:
            with self.subTest(values=values):
                t = bw.Tensor.from_list(values)
                self.assertEqual((t.dtype, t.shape), (dtype, shape))
                self.assertEqual(t.tolist(), values)

    def test_ragged_lists_are_refused(self):
        for values in ([[1, 2], [3]], [[1, 2], 3], [1, [2]]):
            with self.subTest(values=values), self.assertRaises(ValueError):
                bw.Tensor.from_list(values)

    def test_constructor_checks_sizes(self):
        with self.assertRaises(ValueError):
            bw.Tensor("float32", [2, 2], [1.0, 2.0, 3.0])
        with self.assertRaises(ValueError):
            bw.Tensor("float32", [2], b"\x00" * 7)
        with self.assertRaises(ValueError):
            bw.Tensor("nope", [1], [1])
        with self.assertRaises(ValueError):
            bw.Tensor("bool", [1], b"\x02")

    def test_views_and_copies(self):
        t = bw.Tensor("float32", [2, 2], array.array("f", [1, 2, 3, 4]))
        self.assertEqual(t.data.tolist(), [1, 2, 3, 4])
        self.assertEqual(t.array(), array.array("f", [1, 2, 3, 4]))
        self.assertEqual((len(t), t.size), (2, 4))
        self.assertEqual(repr(t), "Tensor(float32[2, 2])")
        if bw._np is None:
            with self.assertRaises(RuntimeError):
                t.numpy()


class EncodeTest(unittest.TestCase):
    def test_tensors_roundtrip(self):
        cases = [
            (bw.Tensor("float32", [2, 2], [1.5, -2, 0, 3]), "float32"),
            (bw.Tensor("int32", [3], [-(2**31), 0, 2**31 - 1]), "int32"),
            (bw.Tensor("uint8", [1, 3], [0, 128, 255]), "uint8"),
            (bw.Tensor("bool", [2], [True, False]), "bool"),
            (bw.Tensor("string", [3], ["", "héllo", "日本"]), "string"),
        ]
        for t, dtype in cases:
            with self.subTest(dtype=dtype):
                got = roundtrip(t, bw.tensor(dtype))
                self.assertEqual((got.dtype, got.shape, got.tolist()), (t.dtype, t.shape, t.tolist()))

    def test_results_convert_to_the_declared_kind(self):
        self.assertEqual(roundtrip([[1, 2]], bw.tensor("float32")).dtype, "float32")
        self.assertEqual(roundtrip(array.array("f", [1, 2]), bw.tensor()).tolist(), [1.0, 2.0])
        self.assertEqual(roundtrip("text ✓", bw.TEXT), "text ✓")
        self.assertEqual(roundtrip({"a": [1, None]}, bw.JSON), {"a": [1, None]})
        self.assertEqual(roundtrip("inferred text", bw.ANY), "inferred text")
        self.assertEqual(roundtrip({"k": 1}, bw.ANY), {"k": 1})

    def test_wrong_results_say_what_to_return(self):
        with self.assertRaisesRegex(TypeError, "return a str"):
            bw._encode(42, bw.TEXT)
        with self.assertRaisesRegex(TypeError, "where a tensor is declared"):
            bw._encode(object(), bw.tensor("float32"))
        with self.assertRaises(ValueError):
            bw._encode(float("nan"), bw.JSON)


class MethodTest(unittest.TestCase):
    def test_declarations(self):
        class R(bw.Runnable):
            @bw.method(batchable=True, batch_dim=(0, 1), input=bw.tensor("float32", [-1, 4]))
            def b(self, x):
                """first line of the doc

                more"""

            @bw.Runnable.method
            def a(self, x):
                pass

        methods = bw._methods_of(R)
        self.assertEqual(list(methods), ["b", "a"])
        b = methods["b"][1].wire()
        self.assertEqual(b["doc"], "first line of the doc")
        self.assertEqual((b["batch_dim"], b["output_batch_dim"]), (0, 1))
        self.assertEqual(b["input"], {"kind": "tensor", "dtype": "float32", "shape": [-1, 4]})
        self.assertEqual(b["output"], {"kind": "tensor"})
        self.assertEqual(methods["a"][1].wire()["input"], {"kind": "any"})

    def test_batchable_needs_tensors_or_json(self):
        with self.assertRaises(TypeError):
            bw.method(batchable=True, input=bw.TEXT)(lambda self, x: x)

    def test_init_params_must_fit(self):
        class R(bw.Runnable):
            def __init__(self, threshold=0.5):
                self.threshold = threshold

        self.assertEqual(bw._construct(R, {"threshold": 0.1}).threshold, 0.1)
        with self.assertRaisesRegex(TypeError, "treshold"):
            bw._construct(R, {"treshold": 0.1})


if __name__ == "__main__":
    unittest.main()
