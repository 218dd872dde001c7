"""bpftrace's type system: one frozen ``Type`` value per type, named as 0.17 names them.

A type is a kind plus the few facts codegen needs (size in bytes, sign,
element types).  ``str(t)`` gives bpftrace's spelling (``int64``, ``unsigned
int8``, ``string[64]``, ``(int64,string[2])``, ``struct task_struct *``,
``count``), because error messages quote types verbatim.

Struct layouts come from outside (BTF, or a test table) through the
``TypeResolver`` protocol, so this module stays pure.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, Sequence

DEFAULT_STRLEN = 64

# Kinds whose value is a plain integer at run time.
INT_KINDS = frozenset(("int",))
# Map value kinds produced by aggregation functions.
AGGREGATES = frozenset(("count", "sum", "min", "max", "avg", "stats", "hist", "lhist"))
# Kinds named by their kind alone in messages.
_NAMED = frozenset(AGGREGATES | {
    "kstack", "ustack", "ksym", "usym", "username", "inet", "timestamp", "mac_address",
    "cgroup_path", "strerror", "probe", "none", "stack_mode", "ctx", "void",
})


@dataclass(frozen=True)
class Type:
    kind: str                      # int, string, buffer, tuple, pointer, record, array, ...
    size: int = 0                  # bytes
    signed: bool = False
    elems: tuple["Type", ...] = ()  # tuple fields; (element,) for pointer/array
    name: str = ""                 # struct name ("struct task_struct")
    count: int = 0                 # array length

    def __str__(self) -> str:
        k = self.kind
        if k == "int":
            return f"{'' if self.signed else 'unsigned '}int{self.size * 8}"
        if k == "string":
            return f"string[{self.size}]"
        if k == "buffer":
            return f"buffer[{self.size}]"
        if k == "tuple":
            return "(" + ",".join(str(e) for e in self.elems) + ")"
        if k == "pointer":
            return f"{self.elems[0]} *"
        if k == "array":
            return f"{self.elems[0]}[{self.count}]"
        if k == "record":
            return self.name
        return k

    # convenience predicates, read by semantic and codegen
    @property
    def is_int(self) -> bool:
        return self.kind == "int"

    @property
    def is_string(self) -> bool:
        return self.kind == "string"

    @property
    def is_aggregate(self) -> bool:
        return self.kind in AGGREGATES

    @property
    def is_pointer(self) -> bool:
        return self.kind == "pointer"

    @property
    def pointee(self) -> Optional["Type"]:
        return self.elems[0] if self.kind in ("pointer", "array") else None


def int_type(bits: int = 64, signed: bool = True) -> Type:
    return Type("int", bits // 8, signed)


INT64 = int_type(64, True)
UINT64 = int_type(64, False)
INT32 = int_type(32, True)
UINT32 = int_type(32, False)
NONE = Type("none")


def string_type(size: int) -> Type:
    return Type("string", size)


def buffer_type(size: int) -> Type:
    return Type("buffer", size)


def tuple_type(elems: Sequence[Type]) -> Type:
    return Type("tuple", sum(e.size for e in elems), elems=tuple(elems))


def pointer_to(t: Type) -> Type:
    return Type("pointer", 8, elems=(t,))


def array_of(t: Type, n: int) -> Type:
    return Type("array", t.size * n, elems=(t,), count=n)


def record(name: str, size: int = 0) -> Type:
    return Type("record", size, name=name)


def named(kind: str, size: int = 8) -> Type:
    """Types that bpftrace names by kind alone: kstack, ksym, count, ..."""
    assert kind in _NAMED, kind
    return Type(kind, size)


# Cast targets and their types: int8..int64, uint8..uint64.
INT_TYPE_NAMES: dict[str, Type] = {
    f"{'u' if not s else ''}int{b}": int_type(b, s) for b in (8, 16, 32, 64) for s in (True, False)
}


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    type: Type
    bitfield: Optional[tuple[int, int]] = None  # (bit offset, bit size)


class TypeResolver(Protocol):
    """What semantic analysis needs from BTF (or a test's table).

    ``struct_fields("struct task_struct")`` returns the members in order with
    their offsets and types, or None when the type is unknown;
    ``type_size`` the size of a named type, or None.
    """

    def struct_fields(self, name: str) -> Optional[Sequence[Field]]: ...

    def type_size(self, name: str) -> Optional[int]: ...


class TracepointFormats(Protocol):
    """Tracepoint ``args`` layouts (from tracefs ``format`` files)."""

    def fields(self, category: str, event: str) -> Optional[Sequence[Field]]: ...


@dataclass
class TableResolver:
    """A TypeResolver over a plain dict, for tests and script-defined structs."""

    structs: dict[str, Sequence[Field]]

    def struct_fields(self, name: str) -> Optional[Sequence[Field]]:
        return self.structs.get(name)

    def type_size(self, name: str) -> Optional[int]:
        fields = self.structs.get(name)
        if fields is None:
            return None
        return max((f.offset + f.type.size for f in fields), default=0)


@dataclass
class TableFormats:
    """TracepointFormats over a dict ``{"cat:event": [Field, ...]}``."""

    table: dict[str, Sequence[Field]]

    def fields(self, category: str, event: str) -> Optional[Sequence[Field]]:
        return self.table.get(f"{category}:{event}")


def compatible(a: Type, b: Type) -> bool:
    """Whether a value of type b may be stored where a is (maps, variables).

    Integers of any width mix; strings of any length mix (bpftrace warns
    about truncation); everything else must have the same kind and shape.
    """
    if a.kind != b.kind:
        return False
    if a.kind in ("int", "string", "buffer") or a.kind in _NAMED:
        return True
    if a.kind == "tuple":
        return len(a.elems) == len(b.elems) and all(compatible(x, y) for x, y in zip(a.elems, b.elems))
    return a == b
