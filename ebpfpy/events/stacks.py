"""Stacks from BPF_MAP_TYPE_STACK_TRACE maps, formatted as bpftrace prints them.

A stack map's value is an array of u64 instruction pointers, innermost frame
first, ending at the first zero (or at the array's end). A program stores it
with ``bpf_get_stackid(ctx, map, flags)`` and keeps the returned id; user
stacks (``BPF_F_USER_STACK``) must be symbolized against the pid that was
running, so bpftrace keys them by (stack id, pid).

Output forms observed with bpftrace 0.17 (``@[kstack] = count()`` and
``printf("%s", ustack)``):

* ``bpftrace`` mode: a leading newline, then per frame the indent and
  ``name+off`` (decimal offset) and a newline; the indent is 4 spaces in a map
  key and 8 in printf/print. Unresolved frames print as ``0x7f…``.
* ``perf`` mode: per frame a tab, the address in bare lower-case hex, a space,
  ``name+off``; user frames add `` (/path/of/object)`` or `` ([unknown])``.
* ``raw`` mode (bpftrace 0.18+, offered here too): the bare hex address.
"""
from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Sequence

from ebpfpy.sys.consts import (  # re-exported: stack users import them from here
    BPF_F_FAST_STACK_CMP,
    BPF_F_REUSE_STACKID,
    BPF_F_SKIP_FIELD_MASK,
    BPF_F_USER_STACK,
)

from . import symbols as _symbols

__all__ = [
    "BPF_F_FAST_STACK_CMP",
    "BPF_F_REUSE_STACKID",
    "BPF_F_SKIP_FIELD_MASK",
    "BPF_F_USER_STACK",
    "MAP_KEY_INDENT",
    "PRINTF_INDENT",
    "StackFormatter",
    "StackMode",
    "format_stack",
    "parse_stack",
    "read_stack",
]

MAP_KEY_INDENT = 4
PRINTF_INDENT = 8

_KEY = struct.Struct("<I")


class StackMode(str, enum.Enum):
    BPFTRACE = "bpftrace"
    PERF = "perf"
    RAW = "raw"


def parse_stack(value: bytes, limit: int | None = None) -> tuple[int, ...]:
    """The ips of one stack map value, up to the first zero and ``limit`` frames."""
    n = len(value) // 8
    ips = struct.unpack_from(f"<{n}Q", value)
    try:
        ips = ips[: ips.index(0)]
    except ValueError:
        pass
    return ips if limit is None else ips[:limit]


def _lookup_bytes(stack_map, key: bytes) -> bytes | None:
    """Raw lookup through the map's bytes interface (typed maps expose
    ``lookup_bytes``; untyped Maps are dict-like over bytes)."""
    raw = getattr(stack_map, "lookup_raw", None)
    if raw is not None:
        return raw(key)
    try:
        return stack_map[key]
    except KeyError:
        return None


def read_stack(stack_map, stack_id: int, limit: int | None = None) -> tuple[int, ...]:
    """Frames of ``stack_id``; () for a negative id (bpf_get_stackid failed,
    e.g. -EFAULT when no user stack) or an id that was evicted."""
    if stack_id < 0:
        return ()
    value = _lookup_bytes(stack_map, _KEY.pack(stack_id))
    if value is None:
        return ()
    return parse_stack(bytes(value), limit)


Resolver = Callable[[int], str]


def _frame(mode: StackMode, addr: int, name: str, indent: str) -> str:
    if mode is StackMode.BPFTRACE:
        return f"{indent}{name}\n"
    if mode is StackMode.PERF:
        return f"\t{addr:x} {name}\n"
    return f"{addr:x}\n"


def format_stack(
    ips: Sequence[int],
    *,
    resolve: Resolver,
    mode: StackMode | str = StackMode.BPFTRACE,
    indent: int = MAP_KEY_INDENT,
    limit: int | None = None,
) -> str:
    """bpftrace's text for a stack, given a resolver that returns a frame's
    symbol text (``name+off``, plus the module for user perf frames)."""
    mode = StackMode(mode)
    pad = " " * indent
    frames = ips if limit is None else ips[:limit]
    parts = ["\n"]
    for addr in frames:
        if addr == 0:
            break
        name = "" if mode is StackMode.RAW else resolve(addr)
        parts.append(_frame(mode, addr, name, pad))
    return "".join(parts)


class StackFormatter:
    """Formats kernel and user stacks with shared, cached symbol tables."""

    def __init__(
        self,
        kernel: _symbols.KernelSymbols | None = None,
        *,
        demangle: bool = True,
        user_symbols: bool = True,
    ) -> None:
        self._kernel = kernel
        self._demangle = demangle
        self._user_symbols = user_symbols  # False: BPFTRACE_NO_USER_SYMBOLS
        self._procs: dict[int, _symbols.ProcessSymbols] = {}

    @property
    def kernel(self) -> _symbols.KernelSymbols:
        if self._kernel is None:
            self._kernel = _symbols.kernel_symbols()
        return self._kernel

    def process(self, pid: int) -> _symbols.ProcessSymbols:
        ps = self._procs.get(pid)
        if ps is None:
            ps = self._procs[pid] = _symbols.ProcessSymbols(pid, demangle_names=self._demangle)
        return ps

    def kstack(
        self,
        ips: Sequence[int],
        mode: StackMode | str = StackMode.BPFTRACE,
        *,
        indent: int = MAP_KEY_INDENT,
        limit: int | None = None,
    ) -> str:
        kernel = self.kernel
        return format_stack(
            ips,
            resolve=lambda a: kernel.ksym(a, offset=True),
            mode=mode,
            indent=indent,
            limit=limit,
        )

    def ustack(
        self,
        pid: int,
        ips: Sequence[int],
        mode: StackMode | str = StackMode.BPFTRACE,
        *,
        indent: int = MAP_KEY_INDENT,
        limit: int | None = None,
    ) -> str:
        perf = StackMode(mode) is StackMode.PERF
        if self._user_symbols:
            proc = self.process(pid)

            def resolve(a: int) -> str:
                return proc.usym(a, offset=True, module=perf)

        else:

            def resolve(a: int) -> str:
                text = _symbols.format_address(a)
                return f"{text} ([unknown])" if perf else text

        return format_stack(ips, resolve=resolve, mode=mode, indent=indent, limit=limit)
