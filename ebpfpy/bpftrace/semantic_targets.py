"""Semantic analysis of attach points: uprobe/usdt target files, kprobe functions tracefs lists,
and watchpoint specs, in bpftrace 0.17's words.

A mixin of ``semantic.Checker``; the ``system_*`` functions are the parts of the world it reads
(``semantic.Env`` takes them as arguments, so tests pass their own).
"""
from __future__ import annotations

import os
from collections.abc import Callable

from . import ast
from .diagnostics import Message
from .semantic_rules import read_traceable

# Probe kinds whose first part is a binary -> the word bpftrace's message uses.
BINARY_KINDS = {"uprobe": "uprobe", "uretprobe": "uprobe", "usdt": "usdt"}


def system_binaries(target: str) -> list[str]:
    """The files a uprobe target names on this system (the attach layer's rules)."""
    from ebpfpy.attach.binary import resolve_binaries

    return resolve_binaries(target)


def _any_executable(binaries: Callable[[str], list[str]], target: str) -> bool:
    try:
        paths = binaries(target)
    except Exception:  # the attach layer's "not found" errors: the message is ours to word
        return False
    # any ELF file will do, executable or not: bpftrace 0.17 attaches to libssl.so.3 (mode 644)
    # and refuses an executable script
    return any(os.path.isfile(p) and _is_elf(p) for p in paths)


def system_traceable() -> frozenset[str]:
    """tracefs available_filter_functions (the attach layer reads it)."""
    from ebpfpy.attach.kprobe import traceable_functions

    return frozenset(traceable_functions())


def system_kfuncs(pattern: str) -> list[str]:
    """The functions a kfunc wildcard attaches to (the attach layer's rules)."""
    from ebpfpy.attach.fentry import match_functions

    return match_functions(pattern)


def _is_elf(path: str) -> bool:
    """bpftrace accepts only ELF files as targets (an executable script is not one)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


# x86-64 debug registers: no read-only watch, no execute combined with data (bpftrace's
# arch::invalid_watchpoint_modes), and six argument registers (arch::max_arg)
WATCHPOINT_INVALID_MODES = frozenset(("r", "rx", "wx", "rwx"))
WATCHPOINT_MAX_ARG = 5


# bpftrace's words for an attach point whose function is empty
EMPTY_FUNCTION = {"kprobe": "kprobes should be attached to a function",
                  "kretprobe": "kprobes should be attached to a function",
                  "uprobe": "uprobe should be attached to a function and/or address",
                  "uretprobe": "uprobe should be attached to a function and/or address"}


class TargetChecks:
    def attach_targets(self, program: ast.Program) -> None:
        """Report uprobe/usdt targets that name no ELF file, and
        warn (as bpftrace does) about kprobes on functions tracefs does not list."""
        for probe in program.probes:
            for ap in probe.attach_points:
                if ap.parts and not ap.parts[-1] and ap.kind in EMPTY_FUNCTION:  # `kprobe:`, `uprobe:/bin/sh:`
                    self.error(EMPTY_FUNCTION[ap.kind], ap.span)
                    continue
                if ap.kind in ("kprobe", "kretprobe") and self.env.traceable is not None:
                    self.kprobe_target(ap)
                if ap.kind == "iter":
                    self.iter_target(ap, program)
                if self.env.binaries is None:
                    continue
                if ap.kind not in BINARY_KINDS or not ap.parts or not ap.parts[0]:
                    continue
                if not _any_executable(self.env.binaries, ap.parts[0]):
                    self.error(f"{BINARY_KINDS[ap.kind]} target file '{ap.parts[0]}' does not exist "
                               "or is not executable", ap.span)

    def iter_target(self, ap: ast.AttachPoint, program: ast.Program) -> None:
        """bpftrace 0.17 refuses iterators on this machine (its own feature test fails where
        ours passes): its message, so 0.17 mode stays 0.17's. Today's language runs them, alone:
        an iterator runs once and the run ends, so no other probe may be attached beside it."""
        name = ap.parts[0] if ap.parts else ""
        if not self.modern:
            self.error(f"iter {name} not available for your kernel version.", ap.span)
            return
        others = [p for probe in program.probes for p in probe.attach_points
                  if p is not ap and p.kind not in ("BEGIN", "END", "begin", "end")]
        if others:
            self.error("Iterator probe can't be mixed with any other probe (BEGIN and END apart)", ap.span)

    def watchpoint(self, ap: ast.AttachPoint) -> None:
        """bpftrace 0.17's checks of ``ADDR|FUNC+argN : LEN : MODE``, in its order."""
        target, length, mode = ap.parts
        if "+" in target:
            if self.env.pid <= 0 and not self.env.has_child:
                self.error("-p PID or -c CMD required for watchpoint", ap.span)
            arg = int(target.rsplit("+arg", 1)[1])
            if arg > WATCHPOINT_MAX_ARG:
                self.error(f"x86_64 doesn't support arg{arg}", ap.span)
        elif ap.kind == "asyncwatchpoint":
            self.error("asyncwatchpoint requires a function name", ap.span)
        elif int(target) == 0:
            self.error("watchpoint must be attached to a non-zero address", ap.span)
        if int(length) not in (1, 2, 4, 8):
            self.error("watchpoint length must be one of (1,2,4,8)", ap.span)
        if not mode:
            self.error("watchpoint mode must be combination of (r,w,x)", ap.span)
        mode = "".join(sorted(mode))
        for c in mode:
            if c not in "rwx":
                self.error("watchpoint mode must be combination of (r,w,x)", ap.span)
        for i in range(1, len(mode)):
            if mode[i - 1] == mode[i]:
                self.error("watchpoint modes may not be duplicated", ap.span)
        if mode in WATCHPOINT_INVALID_MODES:
            self.error(f"invalid watchpoint mode: {mode}", ap.span)
        # a correct script still stops here: nothing attaches watchpoints yet
        self.unsupported.append(Message(f"{ap.kind} probes are not supported by pybpftrace yet: {ap.raw}",
                                        ap.span))

    def kprobe_target(self, ap: ast.AttachPoint) -> None:
        func = ap.parts[-1] if ap.parts else ""
        if not func or func[0].isdigit() or "+" in func or any(c in func for c in "*?["):
            return
        if self._traceable is None:
            self._traceable = read_traceable(self.env.traceable)
        if func not in self._traceable:
            self.warning(f'{func} is not traceable (either non-existing, inlined, or marked as "notrace"); '
                         "attaching to it will likely fail", ap.span)
