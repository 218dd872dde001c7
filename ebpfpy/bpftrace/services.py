"""What value decoders may need from the running session: stacks, symbols, user names.

Decoders receive this object instead of importing symbolisers themselves, so a
script that never prints a stack never reads /proc/kallsyms.
"""
from __future__ import annotations

import functools

from .output.values import Stack


class Services:
    def __init__(self, maps: dict, pid: int = -1, user_symbols: bool = True):
        self.maps = maps
        self.pid = pid
        # BPFTRACE_NO_USER_SYMBOLS=1: user addresses print as hex, no ELF is read.
        self.user_symbols = user_symbols
        self._stack_formatter = None

    @property
    def stacks(self):
        if self._stack_formatter is None:
            from ebpfpy.events.stacks import StackFormatter

            self._stack_formatter = StackFormatter()
        return self._stack_formatter

    # ``as_value``: a stack printed as a map value or a printf argument, whose frames bpftrace
    # indents by 8 (events.stacks.PRINTF_INDENT), where a map key's are indented by 4.

    def kstack(self, map_name: str, stack_id: int, limit: int | None = None, mode: str = "bpftrace",
               as_value: bool = False) -> Stack:
        from ebpfpy.events.stacks import read_stack

        if stack_id < 0 or stack_id >= 1 << 63:
            return Stack("")
        ips = read_stack(self.maps[map_name], stack_id, limit)
        return Stack(self.stacks.kstack(ips, mode, indent=_indent(as_value)) if ips else "")

    def ustack(self, map_name: str, stack_id: int, pid: int, limit: int | None = None,
               mode: str = "bpftrace", as_value: bool = False) -> Stack:
        from ebpfpy.events.stacks import read_stack

        if stack_id < 0 or stack_id >= 1 << 63:
            return Stack("")
        ips = read_stack(self.maps[map_name], stack_id, limit)
        indent = _indent(as_value)
        if ips and not self.user_symbols:
            pad = " " * indent
            return Stack("".join(f"\n{pad}{ip:#x}" for ip in ips) + "\n")
        return Stack(self.stacks.ustack(pid, ips, mode, indent=indent) if ips else "")

    def ksym(self, addr: int) -> str:
        return self.stacks.kernel.ksym(addr)

    def usym(self, addr: int, pid: int) -> str:
        if not self.user_symbols:
            return f"{addr:#x}"
        return self.stacks.process(pid).usym(addr)

    @staticmethod
    @functools.cache
    def username(uid: int) -> str:
        import pwd

        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return str(uid)


def _indent(as_value: bool) -> int:
    from ebpfpy.events.stacks import MAP_KEY_INDENT, PRINTF_INDENT

    return PRINTF_INDENT if as_value else MAP_KEY_INDENT
