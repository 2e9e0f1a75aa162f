"""Unit tests of the SDK's own helpers (the protocol itself is tested from
Go, against real workers). Run them from the repository root or from this
folder,

    python3 -m unittest

or name the file: python3 -m unittest samples/python/test_benchtop_worker.py
"""

import array
import os
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchtop_worker as bw  # noqa: E402


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


def outputs_roundtrip(result, m):
    """result encoded as m's outputs, then decoded as a CALL's inputs would
    be: the tuple format is the same both ways."""
    encoded = bytearray(b"".join(bytes(p) for p in bw._encode_outputs(result, m)))
    return bw._decode_inputs(encoded, 0, len(m.outputs))


def declared(**kwargs):
    """The _Method that @method(**kwargs) declares on a function of two
    arguments, ids and mask."""

    def predict(self, ids, mask=None):
        pass

    return bw.method(**kwargs)(predict).__benchtop_method__


class SeveralTest(unittest.TestCase):
    def test_inputs_by_dict_and_by_parameter_name(self):
        by_dict = declared(batchable=True, inputs={"ids": bw.tensor("int64", [-1, -1]), "mask": bw.tensor("int64", [-1, -1])})
        by_list = declared(batchable=True, inputs=[bw.tensor("int64", [-1, -1]), bw.tensor("int64", [-1, -1])])
        for m in (by_dict, by_list):
            self.assertEqual([s.name for s in m.inputs], ["ids", "mask"])
            self.assertFalse(m.by_keyword)
            self.assertEqual(m.wire()["inputs"][1], {"name": "mask", "kind": "tensor", "dtype": "int64", "shape": [-1, -1]})
            self.assertNotIn("input", m.wire())

    def test_inputs_in_another_order_are_passed_by_keyword(self):
        m = declared(inputs={"mask": bw.JSON, "ids": bw.JSON})
        self.assertTrue(m.by_keyword)

    def test_flags_go_on_the_wire(self):
        m = declared(batchable=True, inputs={"ids": bw.tensor("int64", [-1]),
                                             "mask": bw.tensor("float32", [], unbatched=True, optional=True)})
        self.assertEqual(m.wire()["inputs"][1], {"name": "mask", "kind": "tensor", "dtype": "float32", "shape": [],
                                                 "unbatched": True, "optional": True})
        self.assertTrue(m.needs_protocol2())

    def test_one_slot_methods_keep_protocol_1s_form(self):
        m = declared(input=bw.tensor("float32"), output=bw.JSON)
        self.assertEqual((m.wire()["input"], m.wire()["output"]), ({"kind": "tensor", "dtype": "float32"}, {"kind": "json"}))
        self.assertFalse(m.needs_protocol2())

    def test_shared_specs_are_not_renamed(self):
        declared(inputs={"ids": bw.TEXT, "mask": bw.TEXT})
        self.assertIsNone(bw.TEXT.name)

    def test_declaration_mistakes(self):
        cases = [
            (dict(input=bw.TEXT, inputs={"ids": bw.TEXT}), r"give input= \(one argument\) or inputs= \(several\), not both"),
            (dict(output=bw.TEXT, outputs={"a": bw.TEXT}), r"give output= \(one result\) or outputs= \(several\), not both"),
            (dict(inputs={"ids": bw.TEXT, "attention_mask": bw.TEXT}), r"declares inputs \(ids, attention_mask\), but predict\(self, ids, mask=None\) cannot take them"),
            (dict(inputs=[bw.TEXT, bw.TEXT, bw.TEXT]), "input 2 has no name, and predict.* has no parameter 3"),
            (dict(inputs="ids"), "inputs= takes a dict"),
            (dict(outputs=[bw.TEXT, bw.JSON]), "name every one of its 2 outputs"),
            (dict(outputs=[bw.Spec("text", name="a"), bw.Spec("json", name="a")]), "two outputs are named 'a'"),
            (dict(outputs={"a": bw.Spec("json", optional=True)}), "output 'a' is optional; only inputs may be"),
            (dict(inputs={"ids": bw.Spec("json", unbatched=True)}), "input 'ids' is unbatched, but the method is not batchable"),
            (dict(batchable=True, inputs={"ids": bw.tensor(unbatched=True)}), "no batched input"),
            (dict(batchable=True, inputs={"ids": bw.tensor(), "mask": bw.TEXT}), "batched input 'mask' must be a tensor or a JSON array, not text"),
        ]
        for kwargs, want in cases:
            with self.subTest(kwargs=kwargs), self.assertRaisesRegex(TypeError, want):
                declared(**kwargs)

    def test_outputs_as_a_tuple_or_a_dict(self):
        m = declared(batchable=True, inputs={"ids": bw.tensor("int64", [-1])},
                     outputs={"label": bw.tensor("int64", [-1]), "probabilities": bw.tensor("float32", [-1, 2])})
        for result in (([3, 4], [[0.5, 0.5], [1, 0]]), {"probabilities": [[0.5, 0.5], [1, 0]], "label": [3, 4]}):
            with self.subTest(result=type(result).__name__):
                label, probs = outputs_roundtrip(result, m)
                self.assertEqual((label.dtype, label.tolist()), ("int64", [3, 4]))
                self.assertEqual((probs.dtype, probs.tolist()), ("float32", [[0.5, 0.5], [1, 0]]))

    def test_tuple_values_stay_aligned(self):
        m = declared(outputs={"a": bw.TEXT, "b": bw.tensor("float64"), "c": bw.JSON})
        encoded = bytearray(b"".join(bytes(p) for p in bw._encode_outputs(("odd", bw.Tensor("float64", [1], [2.5]), [1]), m)))
        self.assertEqual(len(encoded) % 8, 0)
        lens = struct.unpack_from("<3Q", encoded, 8)
        self.assertEqual(lens, (11, 24, 11))
        b = bw._decode_inputs(encoded, 0, 3)[1]
        self.assertEqual(b.tolist(), [2.5])
        self.assertEqual(outputs_roundtrip(("odd", bw.Tensor("float64", [1], [2.5]), [1]), m)[::2], ["odd", [1]])

    def test_absent_inputs_are_none(self):
        m = declared(outputs={"a": bw.JSON, "b": bw.JSON})
        encoded = bytearray(b"".join(bytes(p) for p in bw._encode_outputs((1, 2), m)))
        struct.pack_into("<Q", encoded, 16, 0)  # the second value's length: absent
        encoded = encoded[:8 + 16 + 16]  # head, lengths, the first value and its padding
        self.assertEqual(bw._decode_inputs(encoded, 0, 2), [1, None])
        self.assertEqual(bw._decode_inputs(bytearray(8), 8, 1), [None])

    def test_wrong_outputs_say_what_to_return(self):
        m = declared(outputs={"label": bw.tensor("int64", [-1]), "score": bw.tensor("float32", [-1])})
        cases = [
            ([[1], [0.5]], r"has 2 outputs \(label, score\): return a tuple of them in that order, or a dict keyed by output name, not list"),
            (([1],), "returned 1 values, but it has 2 outputs"),
            ({"label": [1]}, "returned a dict without 'score': its outputs are label, score"),
            ({"label": [1], "score": [1], "extra": 1}, "with 'extra', which it does not declare"),
            ((bw.Tensor("int32", [1], [1]), [0.5]), "output 'label': returned a tensor of int32 where int64 is declared"),
            (([1], "x"), "output 'score': returned str where a tensor is declared"),
        ]
        for result, want in cases:
            with self.subTest(result=result), self.assertRaisesRegex(TypeError, want):
                bw._encode_outputs(result, m)


class ProtocolTest(unittest.TestCase):
    one_slot = [declared(input=bw.TEXT, output=bw.JSON)]
    several = one_slot + [declared(inputs={"ids": bw.TEXT, "mask": bw.TEXT})]

    def test_versions(self):
        one_slot, several = self.one_slot, self.several
        cases = [
            ({"protocol": 1, "max_protocol": 2}, several, 2, None),
            ({"protocol": 1, "max_protocol": 5}, several, 2, None),
            ({"protocol": 1}, one_slot, 1, None),  # a benchtop of protocol 1
            ({"protocol": 1}, several, None, "benchtop speaks only protocol 1, and methods predict declare several"),
            ({"protocol": 3, "max_protocol": 4}, one_slot, None,
             "benchtop speaks protocols 3 to 4, this benchtop_worker speaks 1 to 2: update benchtop_worker.py"),
            ({"protocol": 0, "max_protocol": 0}, one_slot, None,
             "benchtop speaks protocols 0 to 0, this benchtop_worker speaks 1 to 2: update benchtop$"),
            ({"protocol": "2"}, one_slot, None, "HELLO offers protocols '2' to '2'"),
        ]
        for hello, methods, version, refusal in cases:
            with self.subTest(hello=hello):
                got, why = bw._choose_protocol(hello, methods)
                self.assertEqual(got, version)
                if refusal is None:
                    self.assertIsNone(why)
                else:
                    self.assertRegex(why, refusal)


if __name__ == "__main__":
    unittest.main()
