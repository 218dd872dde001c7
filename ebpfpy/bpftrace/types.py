"""bpftrace's type system: one frozen ``Type`` value per type, named as 0.17 names them.

A type is a kind plus the few facts codegen needs (size in bytes, sign,
element types).  ``str(t)`` gives bpftrace's spelling (``int64``, ``unsigned
int8``, ``string[64]``, ``(int64,string[2])``, ``struct task_struct *``,
``count``), because error messages quote types verbatim.

Struct layouts come from outside (BTF, or a test table) through the
``TypeResolver`` protocol, so this module stays pure.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

DEFAULT_STRLEN = 64
# bpftrace 0.17 reads at most this many kfunc parameters (x86-64's argument registers).
MAX_KFUNC_ARGS = 6
# The name under which a kretfunc's return value travels with its parameters (as in bpftrace).
RETVAL_FIELD = "$retval"

# Kinds whose value is a plain integer at run time.
INT_KINDS = frozenset(("int",))
# Map value kinds produced by aggregation functions.
AGGREGATES = frozenset(("count", "sum", "min", "max", "avg", "stats", "hist", "lhist"))
# Kinds named by their kind alone in messages.
_NAMED = frozenset(AGGREGATES | {
    "kstack", "ustack", "ksym", "usym", "username", "inet", "timestamp", "mac_address",
    "cgroup_path", "strerror", "probe", "none", "stack_mode", "ctx", "void", "syscall_name", "signal_name",
})


@dataclass(frozen=True)
class Type:
    kind: str                      # int, string, buffer, tuple, pointer, record, array, ...
    size: int = 0                  # bytes
    signed: bool = False
    elems: tuple[Type, ...] = ()  # tuple fields; (element,) for pointer/array
    name: str = ""                 # struct name ("struct task_struct")
    count: int = 0                 # array length
    names: tuple[str, ...] = ()    # a record's field names (a tuple with names, bpftrace 0.25+)

    def __str__(self) -> str:
        k = self.kind
        if k == "tuple" and self.names:
            return "record { " + ", ".join(f"{e} {n}" for n, e in zip(self.names, self.elems)) + " }"
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
    def pointee(self) -> Type | None:
        return self.elems[0] if self.kind in ("pointer", "array") else None


def int_type(bits: int = 64, signed: bool = True) -> Type:
    return Type("int", bits // 8, signed)


INT64 = int_type(64, True)
UINT64 = int_type(64, False)
INT32 = int_type(32, True)
UINT32 = int_type(32, False)
NONE = Type("none")
BOOL = Type("int", 1, False, name="bool")  # today's true/false (bpftrace 0.24+)


def string_type(size: int) -> Type:
    return Type("string", size)


# The name that marks a tracepoint's `__data_loc char[]` field: a string to us, but one that
# str() also accepts, as bpftrace 0.17 (where such a field is the string's address) requires.
DATA_LOC = "__data_loc"


def data_loc_string(size: int) -> Type:
    return Type("string", size, name=DATA_LOC)


def buffer_type(size: int) -> Type:
    return Type("buffer", size)


def tuple_type(elems: Sequence[Type], names: Sequence[str] = ()) -> Type:
    return Type("tuple", sum(e.size for e in elems), elems=tuple(elems), names=tuple(names))


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
    bitfield: tuple[int, int] | None = None  # (bit offset, bit size)


class TypeResolver(Protocol):
    """What semantic analysis needs from BTF (or a test's table).

    ``struct_fields("struct task_struct")`` returns the members in order with
    their offsets and types, or None when the type is unknown;
    ``type_size`` the size of a named type, or None; ``enum_value`` the
    value of an enumerator (``TCP_SYN_SENT``), or None.
    """

    def struct_fields(self, name: str) -> Sequence[Field] | None: ...

    def type_size(self, name: str) -> int | None: ...

    def enum_value(self, name: str) -> int | None: ...


class TracepointFormats(Protocol):
    """Tracepoint ``args`` layouts (from tracefs ``format`` files)."""

    def fields(self, category: str, event: str) -> Sequence[Field] | None: ...


@dataclass
class TableResolver:
    """A TypeResolver over a plain dict, for tests and script-defined structs."""

    structs: dict[str, Sequence[Field]]
    enums: dict[str, int] = field(default_factory=dict)

    def struct_fields(self, name: str) -> Sequence[Field] | None:
        return self.structs.get(name)

    def enum_value(self, name: str) -> int | None:
        return self.enums.get(name)

    def type_size(self, name: str) -> int | None:
        fields = self.structs.get(name)
        if fields is None:
            return None
        return max((f.offset + f.type.size for f in fields), default=0)


@dataclass
class TableFormats:
    """TracepointFormats over a dict ``{"cat:event": [Field, ...]}``."""

    table: dict[str, Sequence[Field]]

    def fields(self, category: str, event: str) -> Sequence[Field] | None:
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
        return (a.names == b.names and len(a.elems) == len(b.elems)
                and all(compatible(x, y) for x, y in zip(a.elems, b.elems)))
    return a == b


class BTFResolver:
    """A TypeResolver over ``ebpfpy.btf`` (the running kernel's BTF by default).

    BTF is read lazily and each struct is converted once.  Conversions follow
    bpftrace: ``char[N]`` is ``string[N]``, enums are ints, typedefs and
    qualifiers are looked through, members of anonymous structs/unions are
    reachable by name, and a pointer to a struct names the struct without
    expanding it (so self-referencing types stay finite).
    """

    def __init__(self, btf: object | None = None):
        self._btf = btf
        self._cache: dict[str, list[Field] | None] = {}
        self._enums: dict[str, int] | None = None
        self._functions: list[str] | None = None

    def enum_value(self, name: str) -> int | None:
        """Enumerators of every BTF enum, indexed on first use (~0.1 s for vmlinux)."""
        if self._enums is None:
            from ebpfpy.btf import Kind
            btf, index = self.btf, {}
            for tid in btf.ids():
                if btf.kind_of(tid) in (Kind.ENUM, Kind.ENUM64):
                    for enumerator, value in btf[tid].values:
                        index.setdefault(enumerator, value)
            self._enums = index
        return self._enums.get(name)

    @property
    def btf(self):
        if self._btf is None:
            from ebpfpy.btf import vmlinux
            self._btf = vmlinux()
        return self._btf

    def _find(self, name: str) -> int | None:
        kind, _, bare = name.partition(" ")
        if kind not in ("struct", "union") or not bare:
            return None
        try:
            return self.btf.find_struct(bare)
        except (KeyError, ValueError):
            return None

    def struct_fields(self, name: str) -> Sequence[Field] | None:
        if name not in self._cache:
            tid = self._find(name)
            self._cache[name] = None if tid is None else self._fields(tid, 0)
        return self._cache[name]

    def type_size(self, name: str) -> int | None:
        if name in INT_TYPE_NAMES:
            return INT_TYPE_NAMES[name].size
        tid = self._find(name)
        return None if tid is None else self.btf.size_of(tid)

    def func_args(self, name: str, ret: bool = False) -> list[Field]:
        """Kernel function ``name``'s parameters as kfunc ``args`` fields, plus ``$retval``
        (a ``void`` return is ``none``) for kretfunc.

        The trampoline passes every argument as one u64, so parameter i is at
        offset 8*i and the return value follows the last one.  Failures raise
        LookupError worded as bpftrace 0.17's ``BTF::resolve_args``."""
        from ebpfpy.btf import FuncProto, Kind

        btf = self.btf
        ids = btf.find_all(name, Kind.FUNC) if name else []
        if not ids:
            raise LookupError(f"no BTF data for {name}")
        proto = btf[btf[ids[0]].type]
        if not isinstance(proto, FuncProto):
            raise LookupError(f"{name} is not a function")
        if len(proto.params) > MAX_KFUNC_ARGS:
            raise LookupError(f"functions with more than {MAX_KFUNC_ARGS} parameters are not supported.")
        out = [Field(p.name, 8 * i, self.convert(p.type)) for i, p in enumerate(proto.params)]
        if ret:
            rt = self.convert(proto.type) if btf.resolve(proto.type) else NONE
            out.append(Field(RETVAL_FIELD, 8 * len(out), rt))
        return out

    def raw_tracepoint_args(self, name: str) -> list[Field]:
        """Raw tracepoint ``name``'s arguments as ``args`` fields (u64 slot i at offset 8*i), from
        the prototype ``btf_trace_NAME`` points to, without its leading ``void *__data``."""
        from ebpfpy.attach.tracepoint import raw_tracepoint_proto

        proto = raw_tracepoint_proto(name) if self.btf is not None else None
        if proto is None:
            raise LookupError(f"no BTF data for raw tracepoint {name}")
        return [Field(p.name, 8 * i, self.convert(p.type)) for i, p in enumerate(proto.params)]

    def functions(self, pattern: str) -> list[str]:
        """Names of the BTF functions a kfunc wildcard matches, sorted."""
        import fnmatch

        from ebpfpy.btf import Kind

        if self._functions is None:
            btf = self.btf
            self._functions = sorted({btf.name_of(i) for i in btf.ids() if btf.kind_of(i) == Kind.FUNC})
        return fnmatch.filter(self._functions, pattern)

    def _fields(self, tid: int, base_bits: int) -> list[Field]:
        out: list[Field] = []
        for m in self.btf.members(tid):
            bits = base_bits + m.bit_offset
            if not m.name:
                inner = self.btf.resolve(m.type)
                if type(self.btf[inner]).__name__ == "Struct":
                    out.extend(self._fields(inner, bits))
                continue
            bitfield = (bits % 8, m.bitfield_size) if m.bitfield_size else None
            out.append(Field(m.name, bits // 8, self.convert(m.type), bitfield))
        return out

    def convert(self, tid: int) -> Type:
        """One BTF type id as a bpftrace Type."""
        btf = self.btf
        tid = btf.resolve(tid)
        t = btf[tid]
        kind = type(t).__name__
        if kind == "Int":
            if t.name == "_Bool":
                return int_type(8, False)
            return int_type(t.size * 8, t.signed or t.name == "char")
        if kind == "Enum":
            return int_type(t.size * 8 if t.size in (1, 2, 4, 8) else 64, True)
        if kind == "Struct":
            return record(f"{'union' if t.is_union else 'struct'} {t.name}", t.size)
        if kind == "Array":
            elem = self.convert(t.type)
            if elem == int_type(8, True) or elem == int_type(8, False):
                return string_type(t.nelems)
            return array_of(elem, t.nelems)
        if kind == "Ref":  # a pointer (modifiers are resolved above)
            target = btf.resolve(t.type)
            if target == 0:
                return pointer_to(int_type(8, True))
            return pointer_to(self.convert(target))
        return int_type(64, False)


# -- structs defined in the script ------------------------------------------------

# C base types a script struct may use: name -> (size, signed).
C_BASE_TYPES: dict[str, tuple[int, bool]] = {
    "char": (1, True), "signed char": (1, True), "unsigned char": (1, False),
    "short": (2, True), "short int": (2, True), "unsigned short": (2, False),
    "unsigned short int": (2, False), "int": (4, True), "signed": (4, True),
    "signed int": (4, True), "unsigned": (4, False), "unsigned int": (4, False),
    "long": (8, True), "long int": (8, True), "unsigned long": (8, False),
    "unsigned long int": (8, False), "long long": (8, True), "long long int": (8, True),
    "unsigned long long": (8, False), "unsigned long long int": (8, False),
    "_Bool": (1, False), "bool": (1, False), "size_t": (8, False), "ssize_t": (8, True),
    "pid_t": (4, True), "uid_t": (4, False), "gid_t": (4, False),
}
for _bits in (8, 16, 32, 64):
    for _pfx, _signed in (("u", False), ("s", True), ("__u", False), ("__s", True)):
        C_BASE_TYPES[f"{_pfx}{_bits}"] = (_bits // 8, _signed)
    C_BASE_TYPES[f"int{_bits}_t"] = (_bits // 8, True)
    C_BASE_TYPES[f"uint{_bits}_t"] = (_bits // 8, False)

_C_STRUCT = re.compile(r"\b(struct|union)\s+([_a-zA-Z]\w*)\s*\{")
_C_MEMBER = re.compile(r"^(?P<type>[_a-zA-Z][\w\s]*?)\s*(?P<stars>[\s*]*)(?P<name>[_a-zA-Z]\w*)"
                       r"(?P<dims>(\s*\[\s*\d+\s*\])*)\s*(:\s*(?P<bits>\d+))?$")


def _c_type(spec: str, stars: int, resolver: TypeResolver | None) -> Type | None:
    spec = re.sub(r"\b(const|volatile|restrict)\b", " ", spec)
    spec = " ".join(spec.split())
    if spec.startswith(("struct ", "union ")):
        size = resolver.type_size(spec) if resolver is not None else None
        base = record(spec, size or 0)
        if size is None and not stars:
            return None
    elif spec.startswith("enum "):
        base = int_type(32, False)
    elif spec == "void":
        base = int_type(8, True)
        if not stars:
            return None
    elif spec in C_BASE_TYPES:
        size, signed = C_BASE_TYPES[spec]
        base = int_type(size * 8, signed)
    else:
        return None
    for _ in range(stars):
        base = pointer_to(base)
    return base


def _align_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _field_end(f: Field) -> int:
    """The byte just past a member (a bitfield ends with its last bit, not its type)."""
    if f.bitfield is not None:
        return f.offset + (f.bitfield[0] + f.bitfield[1] + 7) // 8
    return f.offset + f.type.size


def _align(t: Type) -> int:
    if t.kind in ("int", "pointer"):
        return max(1, t.size)
    if t.kind in ("array", "string"):
        return _align(t.elems[0]) if t.elems else 1
    return 8 if t.size >= 8 else max(1, t.size)


def parse_c_structs(definitions: Sequence[str],
                    resolver: TypeResolver | None = None) -> dict[str, list[Field]]:
    """Layouts of the ``struct X { ... }`` definitions written in a script.

    A small C subset (what bpftrace scripts write): base types and fixed-width
    typedefs, pointers, fixed arrays, ``struct``/``union`` members whose size
    BTF (``resolver``) or an earlier definition knows.  Natural alignment, as
    clang lays out these structs for bpftrace.  A definition with a member we
    cannot size is left out (the name then resolves through BTF, if at all).
    """
    known: dict[str, list[Field]] = {}
    sizes: dict[str, int] = {}

    class _Chain:
        def struct_fields(self, name: str) -> Sequence[Field] | None:
            return known.get(name) or (resolver.struct_fields(name) if resolver else None)

        def type_size(self, name: str) -> int | None:
            if name in sizes:
                return sizes[name]
            return resolver.type_size(name) if resolver is not None else None

        def enum_value(self, name: str) -> int | None:
            return getattr(resolver, "enum_value", lambda n: None)(name)

    chain = _Chain()
    for text in definitions:
        m = _C_STRUCT.search(text)
        if m is None:
            continue
        name = f"{m.group(1)} {m.group(2)}"
        body = text[m.end():text.rfind("}")]
        fields: list[Field] = []
        bits = size = align = 0  # bits: where the next member may start
        ok = True
        for decl in body.split(";"):
            decl = " ".join(decl.split())
            if not decl:
                continue
            dm = _C_MEMBER.match(decl)
            t = dm and _c_type(dm.group("type"), dm.group("stars").count("*"), chain)
            if not t:
                ok = False
                break
            for n in reversed(re.findall(r"\d+", dm.group("dims") or "")):
                t = string_type(int(n)) if t.kind == "int" and t.size == 1 else array_of(t, int(n))
            a = _align(t)
            width = int(dm.group("bits")) if dm.group("bits") else None
            if width is not None and (t.kind != "int" or not 0 < width <= 8 * t.size):
                ok = False
                break
            if m.group(1) == "union":
                fields.append(Field(dm.group("name"), 0, t, (0, width) if width else None))
                size = max(size, t.size)
            elif width:
                # C packs bitfields into units of their type, never across one
                if bits // (8 * a) != (bits + width - 1) // (8 * a):
                    bits = _align_up(bits, 8 * a)
                fields.append(Field(dm.group("name"), bits // 8, t, (bits % 8, width)))
                bits += width
                size = (bits + 7) // 8
            else:
                bits = 8 * _align_up((bits + 7) // 8, a)
                fields.append(Field(dm.group("name"), bits // 8, t))
                bits += 8 * t.size
                size = bits // 8
            align = max(align, a)
        if ok:
            align = align or 1
            known[name] = fields
            sizes[name] = (size + align - 1) // align * align
    return known


@dataclass
class LayeredResolver:
    """Script-defined structs first, then the base resolver (BTF)."""

    script: dict[str, list[Field]]
    base: TypeResolver | None = None

    def struct_fields(self, name: str) -> Sequence[Field] | None:
        if name in self.script:
            return self.script[name]
        return self.base.struct_fields(name) if self.base is not None else None

    def type_size(self, name: str) -> int | None:
        if name in self.script:
            fields = self.script[name]
            end = max((_field_end(f) for f in fields), default=0)
            align = max((_align(f.type) for f in fields), default=1)
            return (end + align - 1) // align * align
        return self.base.type_size(name) if self.base is not None else None

    def enum_value(self, name: str) -> int | None:
        lookup = getattr(self.base, "enum_value", None)
        return lookup(name) if lookup is not None else None

    def __getattr__(self, name: str):
        # kfunc prototypes (func_args, functions) come from the base (BTF) alone
        if name in ("func_args", "functions") and self.base is not None:
            return getattr(self.base, name)
        raise AttributeError(name)
