"""`bpftrace -l [pattern]`: the probes a pattern matches, one `kind:...` line each.

Each provider lists its own kind (`provider.list(rest)`); this module splits
the pattern and picks the providers. Line forms follow bpftrace:
`tracepoint:syscalls:sys_enter_openat`, `kprobe:do_nanosleep`,
`uprobe:/bin/bash:readline`, `usdt:/path:provider:name`,
`software:cpu-clock:`. (bpftrace 0.17 itself prints `software:*:` for
`software:*`, echoing the pattern; we list the events, as later releases do.)
"""
from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator

from .binary import has_wildcard
from .errors import AttachError
from .provider import ALIASES, provider

# Kinds listed when the pattern names none, in bpftrace's order.
DEFAULT_KINDS = ("software", "hardware", "tracepoint", "kprobe")
# Kinds that need a binary in the pattern (or a pid) to list anything.
BINARY_KINDS = ("uprobe", "uretprobe", "usdt")


def _mapped_binaries(pid: int) -> list[str]:
    """Executable files mapped by a process (for `-p PID` listings), in map order."""
    seen: list[str] = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and "x" in parts[1] and parts[5].startswith("/"):
                path = parts[5].strip()
                if path not in seen and os.path.isfile(path):
                    seen.append(path)
    return seen


def _kind_lines(kind: str, rest: str, pid: int) -> Iterator[str]:
    prov = provider(kind)
    if kind in BINARY_KINDS and pid > 0 and (not rest or has_wildcard(rest.split(":", 1)[0])):
        for path in _mapped_binaries(pid):
            sub = path + ":" + (rest.split(":", 1)[1] if ":" in rest else "*")
            try:
                yield from prov.list(sub, pid=pid)
            except AttachError:
                continue
        return
    if kind in BINARY_KINDS and not rest:
        return
    yield from prov.list(rest, pid=pid)


def list_probes(pattern: str | None = None, pid: int = -1) -> Iterator[str]:
    """Lines for `bpftrace -l pattern` (all default kinds when pattern is None or has no kind)."""
    if pattern and ":" in pattern:
        head, rest = pattern.split(":", 1)
        if head in ALIASES and ALIASES[head].implemented:
            yield from _kind_lines(ALIASES[head].name, rest, pid)
            return
        kinds = sorted({k.name for k in ALIASES.values() if k.implemented and fnmatch.fnmatchcase(k.name, head)},
                       key=lambda k: (DEFAULT_KINDS + BINARY_KINDS).index(k)
                       if k in DEFAULT_KINDS + BINARY_KINDS else 99)
        for kind in kinds:
            if kind in DEFAULT_KINDS or pid > 0:
                yield from _kind_lines(kind, rest, pid)
        return
    kinds = DEFAULT_KINDS + (("usdt",) if pid > 0 else ())
    for kind in kinds:
        for line in _kind_lines(kind, "", pid):
            if not pattern or fnmatch.fnmatchcase(line, pattern):
                yield line


def btf_params(function: str) -> list[str]:
    """A kernel function's parameters as bpftrace -lv prints them (``struct file * file``),
    from vmlinux BTF, then its return value (``ssize_t retval``)."""
    from ebpfpy.btf.cformat import type_name

    from .fentry import _btf

    btf = _btf()
    proto = btf.func_proto(function)
    ret = type_name(btf, proto.type) if proto.type else "void"
    return [f"{type_name(btf, p.type)} {p.name}" for p in proto.params] + [f"{ret} retval"]


def describe(line: str) -> list[str]:
    """The `bpftrace -lv` detail lines under one listed probe: tracepoint fields, kfunc
    parameters, iterator context (uprobe parameters would need DWARF, which we do not read)."""
    kind, _, rest = line.partition(":")
    try:
        if kind in ("kfunc", "kretfunc"):
            return [f"    {p}" for p in btf_params(rest.rpartition(":")[2])]
        if kind == "iter":  # bpf_iter_<name>(meta, ...): bpftrace drops meta and the retval
            return [f"    {p}" for p in btf_params(f"bpf_iter_{rest}")[1:-1]]
    except Exception:  # no BTF, or no such function: nothing to detail
        return []
    if kind != "tracepoint":
        return []
    from .tracefs import tracepoint_format

    category, _, name = rest.partition(":")
    return [f"    {f.decl}" for f in tracepoint_format(category, name).args]


def list_probes_verbose(pattern: str | None = None, pid: int = -1) -> Iterator[str]:
    """`bpftrace -lv pattern`: each probe line followed by its argument lines."""
    for line in list_probes(pattern, pid):
        yield line
        yield from describe(line)
