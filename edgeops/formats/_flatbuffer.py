"""A minimal flatbuffer reader in which every offset is checked before it is followed.

Enough of the flatbuffers format (https://flatbuffers.dev/internals/) to walk a known
schema by hand: tables with their vtables, scalars, vectors, strings and unions. Every
position is checked against the buffer and for alignment before it is read, and the
number of tables and vector elements visited is capped (offsets may point many times at
one table), so a damaged or hostile buffer is a :class:`~edgeops.errors.ModelFormatError`,
never an IndexError, a struct.error or an endless walk.
"""

from __future__ import annotations

import struct

from ._summary import format_error

__all__ = ["Flat", "Table"]

_FORMATS = {"b": struct.Struct("<b"), "B": struct.Struct("<B"), "H": struct.Struct("<H"),
            "i": struct.Struct("<i"), "I": struct.Struct("<I"), "Q": struct.Struct("<Q")}


class Flat:
    """A bounds-checked view of a flatbuffer: every read is checked before it is made."""

    def __init__(self, data, source: str | None, kind: str = "TFLite") -> None:
        self.data = data
        self.size = len(data)
        self.source = source
        self.kind = kind
        # Offsets may point many times at one table; cap the work like flatbuffers' max_tables.
        self.budget = 1_000_000 + self.size

    def fail(self, what: str):
        return format_error(self.kind, what, self.source)

    def spend(self, count: int, what: str) -> None:
        self.budget -= count
        if self.budget < 0:
            raise self.fail(f"corrupt: {what} makes the file reference far more entries than it holds")

    def need(self, pos: int, length: int, what: str, align: int = 1) -> None:
        if pos < 0 or pos + length > self.size:
            raise self.fail(f"truncated or corrupt: {what} at byte {pos} runs past the end of the "
                            f"{self.size}-byte file")
        if pos % align:
            raise self.fail(f"corrupt: {what} at byte {pos} is not {align}-byte aligned")

    def scalar(self, fmt: str, pos: int, what: str):
        st = _FORMATS[fmt]
        self.need(pos, st.size, what, st.size)
        return st.unpack_from(self.data, pos)[0]

    def deref(self, pos: int, what: str) -> int:
        """Follow the uoffset stored at ``pos``."""
        return pos + self.scalar("I", pos, what)

    def table(self, pos: int, what: str) -> Table:
        self.spend(1, what)
        vtable = pos - self.scalar("i", pos, what)
        vt_size = self.scalar("H", vtable, f"{what} vtable")
        obj_size = self.scalar("H", vtable + 2, f"{what} vtable")
        if vt_size < 4 or vt_size % 2:
            raise self.fail(f"corrupt: {what} vtable at byte {vtable} has size {vt_size}")
        self.need(vtable, vt_size, f"{what} vtable")
        if obj_size < 4:
            raise self.fail(f"corrupt: {what} at byte {pos} has size {obj_size}")
        self.need(pos, obj_size, what)
        # Every field, read here or not (the interpreter reads more), must start inside the table.
        slots = struct.unpack_from(f"<{vt_size // 2 - 2}H", self.data, vtable + 4)
        if any(slot and not 4 <= slot < obj_size for slot in slots):
            raise self.fail(f"corrupt: {what} at byte {pos} has a field outside its {obj_size} bytes")
        return Table(self, pos, vtable, vt_size, obj_size, what)

    def vector(self, pos: int, item_size: int, what: str) -> tuple[int, int]:
        """(first element position, count) of the vector at ``pos``; a string is item_size 1 + NUL."""
        count = self.scalar("I", pos, what)
        self.need(pos + 4, count * item_size, what)
        return pos + 4, count

    def text(self, pos: int, what: str) -> str:
        start, count = self.vector(pos, 1, what)
        self.need(start + count, 1, f"{what} terminator")
        if self.data[start + count] != 0:
            raise self.fail(f"corrupt: {what} at byte {pos} is not NUL-terminated")
        try:
            return bytes(self.data[start:start + count]).decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"corrupt: {what} at byte {pos} is not valid UTF-8") from None


class Table:
    """One flatbuffer table; fields are addressed by their index in the schema."""

    __slots__ = ("fb", "pos", "vtable", "vt_size", "obj_size", "what")

    def __init__(self, fb: Flat, pos: int, vtable: int, vt_size: int, obj_size: int, what: str):
        self.fb, self.pos, self.vtable, self.vt_size, self.obj_size, self.what = (
            fb, pos, vtable, vt_size, obj_size, what)

    def field(self, index: int, width: int, name: str) -> int | None:
        """Absolute position of a present field, checked to lie inside the table."""
        slot = 4 + 2 * index
        if slot >= self.vt_size:
            return None
        offset = self.fb.scalar("H", self.vtable + slot, f"{self.what} vtable")
        if offset == 0:
            return None
        if offset < 4 or offset + width > self.obj_size:
            raise self.fb.fail(f"corrupt: {self.what}.{name} lies outside its table at byte {self.pos}")
        return self.pos + offset

    def scalar(self, index: int, fmt: str, name: str, default: int = 0) -> int:
        pos = self.field(index, _FORMATS[fmt].size, name)
        return default if pos is None else self.fb.scalar(fmt, pos, f"{self.what}.{name}")

    def target(self, index: int, name: str) -> int | None:
        pos = self.field(index, 4, name)
        return None if pos is None else self.fb.deref(pos, f"{self.what}.{name}")

    def table(self, index: int, name: str) -> Table | None:
        pos = self.target(index, name)
        return None if pos is None else self.fb.table(pos, f"{self.what}.{name}")

    def vector(self, index: int, item_size: int, name: str) -> tuple[int, int] | None:
        pos = self.target(index, name)
        return None if pos is None else self.fb.vector(pos, item_size, f"{self.what}.{name}")

    def text(self, index: int, name: str) -> str | None:
        pos = self.target(index, name)
        return None if pos is None else self.fb.text(pos, f"{self.what}.{name}")

    def ints(self, index: int, name: str) -> list[int] | None:
        """An int32 vector field."""
        vec = self.vector(index, 4, name)
        if vec is None:
            return None
        start, count = vec
        self.fb.spend(count, f"{self.what}.{name}")
        return list(struct.unpack_from(f"<{count}i", self.fb.data, start))

    def tables(self, index: int, name: str) -> list[Table]:
        """A vector of tables (empty when absent)."""
        vec = self.vector(index, 4, name)
        if vec is None:
            return []
        start, count = vec
        self.fb.spend(count, f"{self.what}.{name}")
        what = f"{self.what}.{name}"
        return [self.fb.table(self.fb.deref(start + 4 * i, what), f"{what}[{i}]") for i in range(count)]

    def union(self, type_index: int, value_index: int, offset_fields: dict, name: str) -> int:
        """Check a union member table and the vectors and strings it points to; return its type.

        ``offset_fields``: member type -> {field index: vector element size, or 0 for a string}.
        """
        kind = self.scalar(type_index, "B", f"{name}_type")
        member = self.table(value_index, name)
        if member is None or kind == 0:
            return kind
        for field, item_size in offset_fields.get(kind, {}).items():
            if item_size:
                member.vector(field, item_size, f"field{field}")
            else:
                member.text(field, f"field{field}")
        return kind
