"""The eBPF instruction set (RFC 9669): opcodes, instructions, text in and out.

    >>> from ebpfpy.isa import Insn, decode, format_insn
    >>> format_insn(decode(bytes.fromhex("b700000001000000"))[0])
    'r0 = 0x1'

`opcodes` holds the field tables, `insn` the `Insn` value type and its byte encoding, `disasm`
and `asm` the llvm-objdump syntax both ways. The text modules, the builder (labels, map
references) and the helper table are imported on first use: decoding bytes stays cheap, and a
compiler that only builds programs (pybpftrace without -d) never loads the text syntax.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import ISAError
from .insn import Insn, decode, encode_all
from .opcodes import (
    LD_IMM64,
    AluOp,
    AtomicOp,
    CallKind,
    Class,
    JmpOp,
    Mode,
    Pseudo,
    Size,
    Source,
)

__all__ = [
    "LD_IMM64",
    "STYLES",
    "AluOp",
    "AtomicOp",
    "Builder",
    "CallKind",
    "Class",
    "ISAError",
    "Insn",
    "JmpOp",
    "Mode",
    "Pseudo",
    "Size",
    "Source",
    "assemble",
    "decode",
    "encode_all",
    "format_insn",
    "format_program",
]  # fmt: skip

_LAZY = {
    "Builder": "ebpfpy.isa.builder",
    "assemble": "ebpfpy.isa.asm",
    "STYLES": "ebpfpy.isa.disasm",
    "format_insn": "ebpfpy.isa.disasm",
    "format_program": "ebpfpy.isa.disasm",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
