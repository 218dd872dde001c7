"""BTF type values: one small frozen dataclass per kind family.

Types refer to each other by id (an ``int``), never by object, so a type
graph is a plain table (``id -> type``) that can be parsed lazily, compared,
and written back without cycles.  Names are ``str`` (``""`` for anonymous).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .kinds import (  # noqa: F401  (re-exported: the type values' module has always offered them)
    INT_BOOL,
    INT_CHAR,
    INT_SIGNED,
    LINKAGE_EXTERN,
    LINKAGE_GLOBAL,
    LINKAGE_STATIC,
    MODIFIERS,
    REF_KINDS,
    Kind,
)


@dataclass(frozen=True)
class Void:
    """Type id 0: never stored in the blob, present so lookups need no special case."""
    kind: ClassVar[Kind] = Kind.VOID
    name: str = ""


@dataclass(frozen=True)
class Int:
    kind: ClassVar[Kind] = Kind.INT
    name: str
    size: int
    encoding: int = 0
    bit_offset: int = 0
    bits: int = 0

    @property
    def signed(self) -> bool:
        return bool(self.encoding & INT_SIGNED)


@dataclass(frozen=True)
class Float:
    kind: ClassVar[Kind] = Kind.FLOAT
    name: str
    size: int


@dataclass(frozen=True)
class Ref:
    """PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG: a name and one referenced type."""
    ref_kind: Kind
    name: str
    type: int

    @property
    def kind(self) -> Kind:  # type: ignore[override]
        return self.ref_kind


@dataclass(frozen=True)
class Array:
    kind: ClassVar[Kind] = Kind.ARRAY
    type: int
    index_type: int
    nelems: int
    name: str = ""


@dataclass(frozen=True)
class Member:
    name: str
    type: int
    bit_offset: int
    bitfield_size: int = 0


@dataclass(frozen=True)
class Struct:
    """STRUCT or UNION.  ``bitfields`` is the kind_flag: member offsets carry bitfield sizes."""
    is_union: bool
    name: str
    size: int
    members: tuple[Member, ...]
    bitfields: bool = False

    @property
    def kind(self) -> Kind:  # type: ignore[override]
        return Kind.UNION if self.is_union else Kind.STRUCT


@dataclass(frozen=True)
class Enum:
    """ENUM or ENUM64; ``signed`` is the kind_flag."""
    is64: bool
    name: str
    size: int
    values: tuple[tuple[str, int], ...]
    signed: bool = False

    @property
    def kind(self) -> Kind:  # type: ignore[override]
        return Kind.ENUM64 if self.is64 else Kind.ENUM


@dataclass(frozen=True)
class Fwd:
    kind: ClassVar[Kind] = Kind.FWD
    name: str
    is_union: bool = False


@dataclass(frozen=True)
class Func:
    kind: ClassVar[Kind] = Kind.FUNC
    name: str
    type: int
    linkage: int = LINKAGE_STATIC


@dataclass(frozen=True)
class Param:
    name: str
    type: int


@dataclass(frozen=True)
class FuncProto:
    kind: ClassVar[Kind] = Kind.FUNC_PROTO
    type: int
    params: tuple[Param, ...]
    name: str = ""


@dataclass(frozen=True)
class Var:
    kind: ClassVar[Kind] = Kind.VAR
    name: str
    type: int
    linkage: int = LINKAGE_STATIC


@dataclass(frozen=True)
class VarSecinfo:
    type: int
    offset: int
    size: int


@dataclass(frozen=True)
class Datasec:
    kind: ClassVar[Kind] = Kind.DATASEC
    name: str
    size: int
    vars: tuple[VarSecinfo, ...]


@dataclass(frozen=True)
class DeclTag:
    kind: ClassVar[Kind] = Kind.DECL_TAG
    name: str
    type: int
    component_idx: int = -1


VOID = Void()


def ptr(type_id: int) -> Ref:
    return Ref(Kind.PTR, "", type_id)


def typedef(name: str, type_id: int) -> Ref:
    return Ref(Kind.TYPEDEF, name, type_id)


def const(type_id: int) -> Ref:
    return Ref(Kind.CONST, "", type_id)


def volatile(type_id: int) -> Ref:
    return Ref(Kind.VOLATILE, "", type_id)
