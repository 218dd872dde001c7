"""BTF: the kernel's type format, read lazily and written back.

``vmlinux()`` gives the running kernel's types (parsed on demand: a lookup
by name costs a string search, a type body is decoded when first asked for);
``module(name)`` gives a module's split BTF on top of it; ``BTF(bytes)``
parses any blob (e.g. an object's ``.BTF``) and ``parse_ext`` its ``.BTF.ext``.
The type values, the ``.BTF.ext`` and writer parts load on first use: a one-liner
that only reads vmlinux does not pay for them.
"""
import importlib

from .errors import BTFError
from .kinds import Kind
from .spec import BTF, module, vmlinux

# Loaded on first use: the type values (their dataclasses are most of this package's import
# time, and ``btf dump`` never builds one), the ``.BTF.ext`` parser and the writer.
_TYPES = ("VOID", "Array", "Datasec", "DeclTag", "Enum", "Float", "Func", "FuncProto", "Fwd", "Int",
          "Member", "Param", "Ref", "Struct", "Var", "VarSecinfo")
_LAZY = {
    "BTFExt": "ext", "CoreRelo": "ext", "CoreReloKind": "ext", "FuncInfo": "ext", "LineInfo": "ext",
    "parse_ext": "ext", "encode": "writer", **dict.fromkeys(_TYPES, "types"),
}


def __getattr__(name):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'ebpfpy.btf' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{mod}", __name__), name)


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
