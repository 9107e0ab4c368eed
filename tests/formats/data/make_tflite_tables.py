"""Print ``edgeops/formats/_tflite_ops.py`` from the installed ai_edge_litert schema.

    python tests/formats/data/make_tflite_tables.py > edgeops/formats/_tflite_ops.py

Three tables, so that reading a .tflite needs neither ai_edge_litert nor flatbuffers:
``BUILTIN_OPERATORS`` (code -> name, from ``schema_py_generated.BuiltinOperator``),
``UNION_OFFSET_FIELDS`` (for each union the validator follows, the member tables' fields
that hold offsets: field index -> element size of a vector, or 0 for a string, found by
reading the generated accessors' source) and ``OPTIONS_TYPES`` (op code -> the options
table it takes, matched by name plus ``SHARED_OPTIONS``). ``test_tflite_reader.py`` compares the committed
module with a fresh run and says when to regenerate.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re

_SIZES = {"Int8Flags": 1, "Uint8Flags": 1, "BoolFlags": 1, "Int16Flags": 2, "Uint16Flags": 2,
          "Int32Flags": 4, "Uint32Flags": 4, "Float32Flags": 4, "Int64Flags": 8,
          "Uint64Flags": 8, "Float64Flags": 8}
UNIONS = ("BuiltinOptions", "BuiltinOptions2", "QuantizationDetails", "SparseIndexVector")


# Ops whose options table is not named after the op (as flatbuffer_conversions.cc reads them).
SHARED_OPTIONS = {
    "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions", "L2_POOL_2D": "Pool2DOptions",
    "L2_NORMALIZATION": "L2NormOptions", "MAXIMUM": "MaximumMinimumOptions", "MINIMUM": "MaximumMinimumOptions",
    "MEAN": "ReducerOptions", "SUM": "ReducerOptions", "REDUCE_PROD": "ReducerOptions",
    "REDUCE_MAX": "ReducerOptions", "REDUCE_MIN": "ReducerOptions", "REDUCE_ANY": "ReducerOptions",
    "REDUCE_ALL": "ReducerOptions", "UNIDIRECTIONAL_SEQUENCE_RNN": "SequenceRNNOptions",
    "CONV_3D_TRANSPOSE": "Conv3DOptions", "RANDOM_STANDARD_NORMAL": "RandomOptions",
    "RANDOM_UNIFORM": "RandomOptions", "MULTINOMIAL": "RandomOptions",
}


def builtin_operators() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as s

    return dict(sorted((v, k) for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")))


def offset_fields(cls: type) -> dict[int, int]:
    """Field index -> vector element size (0: string) for one generated table class."""
    fields: dict[int, int] = {}
    for name, method in vars(cls).items():
        if name.startswith("_") or not callable(method):
            continue
        src = inspect.getsource(method)
        at = re.search(r"Offset\((\d+)\)", src)
        if not at:
            continue
        index = (int(at.group(1)) - 4) // 2
        if "self._tab.String(" in src:
            fields[index] = 0
        elif "self._tab.Vector(o)" in src:
            flags = re.search(r"number_types\.(\w+Flags), a", src)
            if flags is None:
                raise SystemExit(f"{cls.__name__}.{name}: a vector of tables; teach the validator")
            fields[index] = _SIZES[flags.group(1)]
        elif "self._tab.Indirect(" in src:
            raise SystemExit(f"{cls.__name__}.{name}: a nested table; teach the validator")
    return dict(sorted(fields.items()))


def union_offset_fields() -> dict[str, dict[int, dict[int, int]]]:
    from ai_edge_litert import schema_py_generated as s

    out: dict[str, dict[int, dict[int, int]]] = {}
    for union in UNIONS:
        members = {v: k for k, v in vars(getattr(s, union)).items() if not k.startswith("_")}
        out[union] = {}
        for code, member in sorted(members.items()):
            if member != "NONE" and (fields := offset_fields(getattr(s, member))):
                out[union][code] = fields
    return out


def options_types() -> dict[int, tuple[int, int]]:
    """Builtin op code -> (1 or 2 for BuiltinOptions / BuiltinOptions2, options type) for ops with options.

    An op's options table is the one named after it (``FULLY_CONNECTED`` ->
    ``FullyConnectedOptions``), or the shared one in ``SHARED_OPTIONS``.
    """
    from ai_edge_litert import schema_py_generated as s

    def norm(name: str) -> str:
        return name.replace("_", "").lower()

    unions = {}
    for index, union in ((1, s.BuiltinOptions), (2, s.BuiltinOptions2)):
        for name, code in vars(union).items():
            if name.endswith("Options"):
                unions[norm(name[: -len("Options")])] = (index, code)
                unions[name] = (index, code)
    out = {}
    for code, name in builtin_operators().items():
        hit = unions.get(SHARED_OPTIONS[name]) if name in SHARED_OPTIONS else unions.get(norm(name))
        if hit is not None:
            out[code] = hit
    return out


def render() -> str:
    version = importlib.metadata.version("ai-edge-litert")
    lines = [
        '"""Static tables from the LiteRT (TFLite) schema, so reading a .tflite needs no flatbuffers.',
        "",
        f"Generated from ai-edge-litert {version} by ``tests/formats/data/make_tflite_tables.py``",
        "(which reads ``ai_edge_litert.schema_py_generated``); do not edit by hand.",
        "",
        "``BUILTIN_OPERATORS``: builtin operator code -> name (a code missing here is reported as",
        "``BUILTIN_<code>``). ``UNION_OFFSET_FIELDS``: for the unions the validator follows,",
        "union type -> {field index: vector element size in bytes, or 0 for a string} of the",
        "member table's offset fields, so their targets can be bounds-checked. ``OPTIONS_TYPES``:",
        "builtin op code -> (1 for BuiltinOptions, 2 for BuiltinOptions2, options type) for the",
        "ops that take options, so an operator whose options do not fit its op is caught.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        '__all__ = ["BUILTIN_OPERATORS", "UNION_OFFSET_FIELDS", "OPTIONS_TYPES"]',
        "",
        "BUILTIN_OPERATORS: dict[int, str] = {",
    ]
    lines += [f'    {code}: "{name}",' for code, name in builtin_operators().items()]
    lines += ["}", "", "UNION_OFFSET_FIELDS: dict[str, dict[int, dict[int, int]]] = {"]
    for union, members in union_offset_fields().items():
        lines.append(f'    "{union}": {{')
        lines += [f"        {code}: {fields}," for code, fields in members.items()]
        lines.append("    },")
    lines.append("}")
    lines += ["", "OPTIONS_TYPES: dict[int, tuple[int, int]] = {"]
    lines += [f"    {code}: {hit}," for code, hit in options_types().items()]
    lines.append("}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
