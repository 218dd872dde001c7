"""Run eBPF programs without a kernel: an interpreter of the whole ISA (RFC 9669), emulated
maps and helpers, and a memory model that turns every out-of-bounds access into a clear error.

    >>> from ebpfpy.vm import VM
    >>> vm = VM()
    >>> counts = vm.create_map("hash", key="I", value="Q", max_entries=16)
    >>> prog = vm.load('''
    ...     *(u32 *)(r10 - 4) = 7
    ...     *(u64 *)(r10 - 16) = 1
    ...     ld_pseudo r1, 1, 1
    ...     r2 = r10
    ...     r2 += -4
    ...     r3 = r10
    ...     r3 += -16
    ...     r4 = 0
    ...     call map_update_elem
    ...     exit
    ... ''')
    >>> vm.run(prog), counts[7]
    (0, 1)

`machine` holds the `VM` and its dispatch loop, `decode` the instructions-to-closures
compiler, `memory` the regions and fake addresses, `maps` the emulated maps, `helpers` the
helper table, `objects` clang-built objects.
"""

from __future__ import annotations

from typing import Any

from .errors import VMError
from .machine import VM, SourceLine, Step, VMProgram
from .maps import VMMap

__all__ = ["VM", "SourceLine", "Step", "VMError", "VMMap", "VMProgram", "run"]


def run(program: Any, ctx: bytes | None = None, **kwargs) -> int:
    """Load ``program`` (assembly text, bytes, instructions, a Builder) into a fresh `VM` and
    run it once; keyword arguments go to ``VM.run`` (``mem=``, ``packet=``, ``args=``)."""
    vm = VM()
    return vm.run(vm.load(program), ctx, **kwargs)
