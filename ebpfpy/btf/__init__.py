"""BTF: the kernel's type format, read lazily and written back.

``vmlinux()`` gives the running kernel's types (parsed on demand: a lookup
by name costs a string search, a type body is decoded when first asked for);
``module(name)`` gives a module's split BTF on top of it; ``BTF(bytes)``
parses any blob (e.g. an object's ``.BTF``) and ``parse_ext`` its ``.BTF.ext``.
"""
from .ext import BTFExt, CoreRelo, CoreReloKind, FuncInfo, LineInfo, parse_ext
from .spec import BTF, BTFError, module, vmlinux
from .types import (
    VOID,
    Array,
    Datasec,
    DeclTag,
    Enum,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Kind,
    Member,
    Param,
    Ref,
    Struct,
    Var,
    VarSecinfo,
)
from .writer import encode

__all__ = [
    "BTF",
    "VOID",
    "Array",
    "BTFError",
    "BTFExt",
    "CoreRelo",
    "CoreReloKind",
    "Datasec",
    "DeclTag",
    "Enum",
    "Float",
    "Func",
    "FuncInfo",
    "FuncProto",
    "Fwd",
    "Int",
    "Kind",
    "LineInfo",
    "Member",
    "Param",
    "Ref",
    "Struct",
    "Var",
    "VarSecinfo",
    "encode",
    "module",
    "parse_ext",
    "vmlinux",
]
