"""read_tflite agrees with the LiteRT interpreter, and rejects what the interpreter should not see.

Models are built with ai_edge_litert's ``schema_py_generated`` object API; each rejection
case edits one field of the unpacked model (``ModelT``) and packs it again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

litert = pytest.importorskip("ai_edge_litert")
np = pytest.importorskip("numpy")
flatbuffers = pytest.importorskip("flatbuffers")

from ai_edge_litert import schema_py_generated as schema  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from edgeops.errors import ModelFormatError  # noqa: E402
from edgeops.formats import read_tflite, tflite_io_map  # noqa: E402
from edgeops.formats._tflite_ops import BUILTIN_OPERATORS  # noqa: E402


def unpack(data: bytes):
    return schema.ModelT.InitFromPackedBuf(data, 0)


def pack(model, identifier: bytes = b"TFL3") -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=identifier)
    return bytes(builder.Output())


def numpy_name(dtype) -> str:
    return np.dtype(dtype).name


@pytest.fixture(params=["fc-softmax-signature", "int8-no-signature"])
def model_bytes(request, make_models):
    return make_models.build_tflite() if request.param.startswith("fc") else make_models.build_tflite_int8()


def test_inputs_and_outputs_match_the_interpreter(model_bytes):
    interpreter = Interpreter(model_content=model_bytes)
    summary = read_tflite(model_bytes)
    signatures = interpreter.get_signature_list()
    if signatures:
        runner = interpreter.get_signature_runner(next(iter(signatures)))
        theirs = [runner.get_input_details(), runner.get_output_details()]
        theirs = [list(d.items()) for d in theirs]
    else:
        theirs = [[(d["name"], d) for d in interpreter.get_input_details()],
                  [(d["name"], d) for d in interpreter.get_output_details()]]
    for ours, details in zip((summary.inputs, summary.outputs), theirs):
        assert [(t.name, t.shape, t.dtype) for t in ours] == [
            (name, tuple(None if s < 0 else int(s) for s in d["shape_signature"]), numpy_name(d["dtype"]))
            for name, d in details]


def test_io_map_gives_the_interpreter_tensor_indices(model_bytes):
    interpreter = Interpreter(model_content=model_bytes)
    io = tflite_io_map(model_bytes)
    signatures = interpreter.get_signature_list()
    if signatures:
        runner = interpreter.get_signature_runner(next(iter(signatures)))
        assert io["inputs"] == {n: d["index"] for n, d in runner.get_input_details().items()}
        assert io["outputs"] == {n: d["index"] for n, d in runner.get_output_details().items()}
    else:
        assert io["inputs"] == {d["name"]: d["index"] for d in interpreter.get_input_details()}
        assert io["outputs"] == {d["name"]: d["index"] for d in interpreter.get_output_details()}


def test_io_map_drives_the_interpreter(tflite_bytes):
    io = tflite_io_map(tflite_bytes)
    interpreter = Interpreter(model_content=tflite_bytes)
    interpreter.allocate_tensors()
    interpreter.set_tensor(io["inputs"]["x"], np.ones((1, 4), np.float32))
    interpreter.invoke()
    probs = interpreter.get_tensor(io["outputs"]["probs"])
    assert probs.shape == (1, 3) and abs(float(probs.sum()) - 1.0) < 1e-5


def test_signature_names_follow_the_subgraph_input_order(tflite_bytes):
    model = unpack(tflite_bytes)
    graph = model.subgraphs[0]
    graph.tensors.append(graph.tensors[0].__class__())
    extra = graph.tensors[-1]
    extra.name, extra.shape, extra.type, extra.buffer = "b_in", [1, 4], 0, 0
    graph.inputs = [len(graph.tensors) - 1, 0]  # "b_in" first, then "x"
    sig = model.signatureDefs[0]
    tmap = schema.TensorMapT()
    tmap.name, tmap.tensorIndex = "a_second", len(graph.tensors) - 1
    sig.inputs.append(tmap)  # the SignatureDef lists "x" first
    summary = read_tflite(pack(model))
    assert [t.name for t in summary.inputs] == ["a_second", "x"]


def test_ops_count_every_subgraph_with_the_schema_op_code_rule(tflite_bytes):
    model = unpack(tflite_bytes)
    # An old file: only deprecated_builtin_code written
    model.operatorCodes[1].builtinCode = 0
    # A new op past 127: deprecated_builtin_code holds the placeholder
    big = schema.OperatorCodeT()
    big.builtinCode = schema.BuiltinOperator.STABLEHLO_ADD
    big.deprecatedBuiltinCode = schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES
    custom = schema.OperatorCodeT()
    custom.builtinCode = custom.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    custom.customCode = "MyOp"
    model.operatorCodes += [big, custom]
    second = schema.SubGraphT()
    second.tensors = []
    for i in range(5):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = f"t{i}", [1, 4], schema.TensorType.FLOAT32, 0
        second.tensors.append(t)
    second.inputs, second.outputs = [0], [4]
    second.operators = []
    for k, index in enumerate((2, 3, 3, 1)):  # a chain t0 -> t1 -> ... -> t4
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = index, [k], [k + 1]
        second.operators.append(op)
    model.subgraphs.append(second)
    assert read_tflite(pack(model)).ops == {"SOFTMAX": 2, "CUSTOM:MyOp": 2, "FULLY_CONNECTED": 1,
                                            "STABLEHLO_ADD": 1}


def test_version_description_and_metadata(tflite_bytes):
    summary = read_tflite(tflite_bytes)
    assert summary.versions == {"schema_version": 3}
    assert summary.producer == "edgeops test model"
    assert summary.metadata == {"min_runtime_version": "1.5.0"}


def test_buffers_stored_after_the_flatbuffer_are_checked_and_read(tflite_bytes):
    """Large models keep buffers outside the flatbuffer, at an offset from the file start."""
    model = unpack(tflite_bytes)
    weights = bytes(model.buffers[2].data)
    model.buffers[2].data, model.buffers[2].offset, model.buffers[2].size = None, 1 << 20, len(weights)
    head = pack(model)
    model.buffers[2].offset = len(head) + (-len(head)) % 16
    data = pack(model)
    data += b"\0" * (model.buffers[2].offset - len(data)) + weights
    assert read_tflite(data).ops == {"FULLY_CONNECTED": 1, "SOFTMAX": 1}
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    interpreter.invoke()
    with pytest.raises(ModelFormatError, match="runs past the end"):
        read_tflite(data[:-4])


def test_builtin_operator_table_matches_the_installed_schema(make_tflite_tables):
    assert BUILTIN_OPERATORS == make_tflite_tables.builtin_operators(), (
        "regenerate: python tests/formats/data/make_tflite_tables.py > edgeops/formats/_tflite_ops.py")


def test_generated_tables_module_is_current(make_tflite_tables):
    from pathlib import Path

    import edgeops.formats._tflite_ops as tables

    current = Path(tables.__file__).read_text()
    fresh = make_tflite_tables.render()
    strip = [line for line in fresh.splitlines() if not line.startswith("Generated from")]
    assert [line for line in current.splitlines() if not line.startswith("Generated from")] == strip, (
        "regenerate: python tests/formats/data/make_tflite_tables.py > edgeops/formats/_tflite_ops.py")


@pytest.mark.parametrize("name", ["tiny.tflite", "tiny_int8.tflite"])
def test_committed_models_are_a_fresh_build(name, committed, make_models):
    assert committed[name] == make_models.built()[name], "run: python tests/formats/data/make_models.py"


# --- what the validator rejects: one edit of the model each -------------------------------------


def _tensor(model, index):
    return model.subgraphs[0].tensors[index]


def _quantized(model):
    """The int8 model's x_q tensor quantization (QUANTIZE output), for the int8 cases."""
    return model.subgraphs[0].tensors[1].quantization


def _set(obj, **fields):
    for k, v in fields.items():
        setattr(obj, k, v)


EDITS = {
    # structure the schema defines
    "schema-version-2": ("fc", lambda m: _set(m, version=2), "schema version 2"),
    "no-subgraphs": ("fc", lambda m: _set(m, subgraphs=[], signatureDefs=None), "no subgraphs"),
    "opcode-index-out-of-range": ("fc", lambda m: _set(m.subgraphs[0].operators[0], opcodeIndex=7),
                                  "opcode_index is 7"),
    "op-input-tensor-out-of-range": ("fc", lambda m: _set(m.subgraphs[0].operators[0], inputs=[0, 1, 9]),
                                     "names tensor 9 of 5"),
    "subgraph-output-out-of-range": ("fc", lambda m: _set(m.subgraphs[0], outputs=[5]), "names tensor 5"),
    "tensor-buffer-out-of-range": ("fc", lambda m: _set(_tensor(m, 1), buffer=70), "names buffer 70"),
    "negative-dim": ("fc", lambda m: _set(_tensor(m, 3), shape=[1, -3]), "shape is"),
    "rank-17": ("fc", lambda m: _set(_tensor(m, 3), shape=[1] * 17), "shape is"),
    "shape-signature-below-minus-one": ("fc", lambda m: _set(_tensor(m, 0), shapeSignature=[-2, 4]),
                                        "shape_signature"),
    "unknown-tensor-type": ("fc", lambda m: _set(_tensor(m, 3), type=77), "unknown type 77"),
    "constant-buffer-too-short": ("fc", lambda m: _set(m.buffers[2], data=m.buffers[2].data[:-4]),
                                  "needs 48 bytes but its buffer 2 holds 44"),
    "constant-shape-too-big": ("fc", lambda m: _set(_tensor(m, 1), shape=[3, 5]), "needs 60 bytes"),
    "buffer-offset-past-end": ("fc", lambda m: _set(m.buffers[2], data=None, offset=1 << 20, size=48),
                               "runs past the end"),
    "metadata-buffer-out-of-range": ("fc", lambda m: _set(m.metadata[0], buffer=99), "names buffer 99"),
    "signature-tensor-out-of-range": ("fc", lambda m: _set(m.signatureDefs[0].inputs[0], tensorIndex=12),
                                      "names tensor 12"),
    "signature-subgraph-out-of-range": ("fc", lambda m: _set(m.signatureDefs[0], subgraphIndex=3),
                                        "subgraph_index is 3"),
    "negative-builtin-code": ("fc", lambda m: _set(m.operatorCodes[0], builtinCode=-5), "builtin_code -5"),
    "regression-deprecated-code-disagrees": ("int8", lambda m: _set(m.operatorCodes[3], deprecatedBuiltinCode=65),
                                             "builtin_code 6 but deprecated_builtin_code 65"),
    # data flow and optional inputs: tflite_runtime 2.14 segfaults on these
    "regression-subgraph-output-minus-one": ("fc", lambda m: _set(m.subgraphs[0], outputs=[-1]),
                                             "names tensor -1"),
    "regression-op-reads-tensor-before-it-is-written": (
        "fc", lambda m: _set(m.subgraphs[0].operators[0], inputs=[4, 1, 2]), "reads tensor 4 before"),
    "regression-operator-listed-twice": (  # both interpreters segfault
        "fc", lambda m: _set(m.subgraphs[0], operators=[m.subgraphs[0].operators[0]] * 2), "already written"),
    "op-writes-a-subgraph-input": ("fc", lambda m: _set(m.subgraphs[0].operators[1], outputs=[0]),
                                   "writes subgraph input tensor 0"),
    # a model the runtime could load and run, returning {} (regression: digits_cnn_int8.tflite, bytes 98-156 zeroed)
    "regression-signature-without-outputs": ("fc", lambda m: _set(m.signatureDefs[0], outputs=[]),
                                             "signature_defs\\[0\\] has no outputs"),
    "signature-without-inputs": ("fc", lambda m: _set(m.signatureDefs[0], inputs=[]),
                                 "signature_defs\\[0\\] has no inputs"),
    "subgraph-without-outputs": ("int8", lambda m: _set(m.subgraphs[0], outputs=[]), "subgraphs\\[0\\] has no outputs"),
    "subgraph-output-never-written": ("fc", lambda m: _set(m.subgraphs[0], operators=m.subgraphs[0].operators[:1]),
                                      "output tensor 4 is never written"),
    # an opcode changed into another op's: LiteRT segfaults in the wrong kernel
    "regression-opcode-now-split": ("fc", lambda m: _set(m.operatorCodes[0], builtinCode=49,
                                                         deprecatedBuiltinCode=49), "carries options"),
    "regression-opcode-now-strided-slice": ("int8", lambda m: _set(m.operatorCodes[2], builtinCode=45,
                                                                   deprecatedBuiltinCode=45), "carries options"),
    "regression-opcode-now-assign-variable": ("int8", lambda m: _set(m.operatorCodes[0], builtinCode=144,
                                                                     deprecatedBuiltinCode=127),
                                              "ASSIGN_VARIABLE\\) needs a resource tensor"),
    "regression-op-writes-a-constant": ("fc", lambda m: _set(m.subgraphs[0].operators[1], outputs=[1]),
                                        "writes constant tensor 1"),
    "regression-required-input-omitted": ("int8", lambda m: _set(m.subgraphs[0].operators[2], inputs=[4, -1]),
                                          "RESHAPE\\) omits input 1"),
    "regression-op-output-omitted": ("int8", lambda m: _set(m.subgraphs[0].operators[3], outputs=[-1]),
                                     "names tensor -1"),
    # quantization: LiteRT segfaults on these
    "regression-zero-point-outside-int8": ("int8", lambda m: _set(_quantized(m), zeroPoint=[128]),
                                           "zero point outside the int8 range"),
    "regression-scale-zero": ("int8", lambda m: _set(_quantized(m), scale=[0.0]), "not a positive normal"),
    "regression-scale-denormal": ("int8", lambda m: _set(_quantized(m), scale=[1e-44]), "not a positive normal"),
    "regression-scale-nan": ("int8", lambda m: _set(_quantized(m), scale=[float("nan")]),
                             "not a positive normal"),
    "scales-and-zero-points-differ": ("int8", lambda m: _set(_quantized(m), zeroPoint=[0, 0]),
                                      "1 scales but 2 zero points"),
    "per-channel-scales-for-wrong-dim": ("int8", lambda m: _set(_tensor(m, 2).quantization, quantizedDimension=1),
                                         "3 scales for dimension 4"),
    "quantized-dimension-out-of-range": ("int8", lambda m: _set(_tensor(m, 2).quantization,
                                                                 quantizedDimension=2), "quantized_dimension 2"),
}


@pytest.mark.parametrize("case", EDITS)
def test_rejects(case, make_models):
    base, edit, says = EDITS[case]
    model = unpack(make_models.build_tflite() if base == "fc" else make_models.build_tflite_int8())
    edit(model)
    with pytest.raises(ModelFormatError, match=says):
        read_tflite(pack(model))


def test_optional_bias_may_be_omitted(tflite_bytes):
    model = unpack(tflite_bytes)
    model.subgraphs[0].operators[0].inputs = [0, 1, -1]
    data = pack(model)
    assert read_tflite(data).ops == {"FULLY_CONNECTED": 1, "SOFTMAX": 1}
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    interpreter.invoke()


def test_wrong_file_identifier_is_rejected(tflite_bytes):
    with pytest.raises(ModelFormatError, match="no TFL3 file identifier"):
        read_tflite(pack(unpack(tflite_bytes), identifier=b"TFL2"))


# --- real writers: what ai-edge-quantizer makes of the example model must pass --------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "models" / "digits_mlp.tflite"
RECIPES = ["dynamic_wi8_afp32", "dynamic_wi4_afp32", "dynamic_wi4b32_afp32", "dynamic_wi2c_afp32",
           "weight_only_wi8_afp32", "static_wi8_ai8", "static_wi8_ai16"]


@pytest.mark.filterwarnings("ignore:.*experimental_preserve_all_tensors:UserWarning")  # calibration
@pytest.mark.parametrize("recipe_name", RECIPES)
def test_quantized_models_from_ai_edge_quantizer_pass(recipe_name):
    """Per-channel, blockwise, int4 / int2 packed weights, int16 activations: no false alarms."""
    pytest.importorskip("ai_edge_quantizer")
    assert EXAMPLE.exists(), "examples/models/digits_mlp.tflite is committed"
    from ai_edge_quantizer import quantizer, recipe

    q = quantizer.Quantizer(str(EXAMPLE))
    q.load_quantization_recipe(getattr(recipe, recipe_name)())
    if recipe_name.startswith("static"):
        samples = np.linspace(0, 16, 20 * 64, dtype=np.float32).reshape(20, 1, 64)
        signature = next(iter(Interpreter(model_path=str(EXAMPLE)).get_signature_list()), "serving_default")
        result = q.quantize(q.calibrate({signature: [{"pixels": s} for s in samples]}))
    else:
        result = q.quantize()
    data = bytes(result.quantized_model)
    summary = read_tflite(data)
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    interpreter.invoke()
    assert [t.name for t in summary.inputs] == ["pixels"]
    assert summary.ops["FULLY_CONNECTED"] == 2
