"""BTF ``func_info`` for a program made of several functions.

The kernel accepts a program with subprograms (callbacks passed to ``bpf_loop`` or
``bpf_for_each_map_elem``) only with one BTF ``FUNC`` record per function. Code
generators without C types describe each as a static function of five ``long``
arguments; the verifier types a callback's arguments from the helper, not from BTF.
"""
from __future__ import annotations

import struct

from ebpfpy.btf.types import INT_SIGNED, Func, FuncProto, Int, Param
from ebpfpy.btf.writer import encode_types
from ebpfpy.sys import bpf

_RECORD = struct.Struct("<II")  # insn_off (in instructions), FUNC type id


def func_info_load_args(subprograms: list[int]) -> dict:
    """``Program.load`` keyword arguments describing the functions starting at ``subprograms``
    (the first instruction slot of each, ``Builder.subprograms``); ``{}`` for a program of one
    function. The caller closes ``prog_btf_fd`` after the load."""
    if len(subprograms) <= 1:
        return {}
    types: list[object] = [Int("long", 8, INT_SIGNED), FuncProto(1, tuple(Param(f"a{i}", 1) for i in range(5)))]
    records = bytearray()
    for i, slot in enumerate(subprograms):
        types.append(Func("prog" if i == 0 else f"callback{i}", 2))
        records += _RECORD.pack(slot, len(types))
    return {"prog_btf_fd": bpf.btf_load(encode_types(types)), "func_info": bytes(records),
            "func_info_rec_size": _RECORD.size}
