"""Probe specs: the table of probe kinds and the parsing of ``kind:part:part``.

Pure parsing: nothing here looks at the kernel.  (Checks that need the
system, such as "uprobe target file ... does not exist", are made by semantic
analysis through the hooks in its ``Env``.)  The table says, per kind, its aliases, how many ``:``-separated parts
it takes after the kind, which parts may hold wildcards, and the wording
bpftrace 0.17 uses when the count is wrong.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .diagnostics import Diagnostic, Message, Span


@dataclass(frozen=True)
class ProbeKind:
    name: str
    aliases: tuple[str, ...]
    nparts: tuple[int, ...]      # accepted counts of parts after the kind
    count_msg: str               # "requires 2 arguments", ...
    wildcard: bool = False       # parts may contain * ? [..]


PROBE_KINDS: tuple[ProbeKind, ...] = (
    ProbeKind("BEGIN", (), (0,), "requires 0 arguments"),
    ProbeKind("END", (), (0,), "requires 0 arguments"),
    ProbeKind("kprobe", ("k",), (1,), "requires 1 argument", True),
    ProbeKind("kretprobe", ("kr",), (1,), "requires 1 argument", True),
    ProbeKind("uprobe", ("u",), (2, 3), "requires 2 arguments", True),
    ProbeKind("uretprobe", ("ur",), (2, 3), "requires 2 arguments", True),
    ProbeKind("usdt", ("U",), (2, 3), "requires 2 or 3 arguments", True),
    ProbeKind("tracepoint", ("t",), (2,), "requires 2 arguments", True),
    ProbeKind("profile", ("p",), (2,), "requires 2 arguments"),
    ProbeKind("interval", ("i",), (2,), "requires 2 arguments"),
    ProbeKind("software", ("s",), (1, 2), "requires 1 or 2 arguments"),
    ProbeKind("hardware", ("h",), (1, 2), "requires 1 or 2 arguments"),
    ProbeKind("watchpoint", ("w",), (3,), "requires 3 arguments"),
    ProbeKind("asyncwatchpoint", ("aw",), (3,), "requires 3 arguments"),
    ProbeKind("kfunc", ("f",), (1, 2), "requires 1 or 2 arguments", True),
    ProbeKind("kretfunc", ("fr",), (1, 2), "requires 1 or 2 arguments", True),
    ProbeKind("iter", ("it",), (1, 2), "takes 2 arguments (1 optional)"),
)

KINDS: dict[str, ProbeKind] = {}
for _k in PROBE_KINDS:
    KINDS[_k.name] = _k
    for _a in _k.aliases:
        KINDS[_a] = _k

# Units for profile/interval; value is the multiplier to nanoseconds (hz: None).
TIME_UNITS = {"hz": None, "s": 1_000_000_000, "ms": 1_000_000, "us": 1_000}

# Probe kinds grouped the way builtin checks talk about them.
RETURN_KINDS = frozenset(("kretprobe", "uretprobe", "kretfunc"))

_WILD = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class ProbeSpec:
    kind: str                 # canonical name (aliases resolved)
    parts: tuple[str, ...]    # after the kind, quotes removed

    @property
    def has_wildcard(self) -> bool:
        return any(_WILD.search(p) for p in self.parts)

    @property
    def raw(self) -> str:
        return ":".join((self.kind,) + self.parts)


def split_parts(raw: str) -> list[str]:
    """Split on ':' outside "quotes" and after a path's last '/' segment.

    Quoted parts lose their quotes; a backslash escapes the next character.
    """
    parts: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == '"':
            end = raw.find('"', i + 1)
            end = len(raw) if end < 0 else end
            cur.append(raw[i + 1:end])
            i = end + 1
            continue
        if ch == "\\" and i + 1 < len(raw):
            cur.append(raw[i + 1])
            i += 2
            continue
        if ch == ":":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _fail(msg: str, span: Span | None) -> Diagnostic:
    return Diagnostic(msg, span)


def _check_time(kind: str, parts: list[str], span: Span | None) -> None:
    unit, value = parts
    if unit not in TIME_UNITS:
        raise _fail(f"{unit} is not an accepted unit of time", span)
    if not re.fullmatch(r"[0-9]+", value):
        raise _fail("stoull", span)


def _check_watchpoint(parts: list[str], span: Span | None) -> None:
    mode = parts[2]
    if not mode or any(c not in "rwx" for c in mode) or len(set(mode)) != len(mode):
        raise _fail("watchpoint mode must be combination of (r,w,x)", span)


def parse_spec(raw: str, span: Span | None = None) -> ProbeSpec:
    """Parse one attach point (``t:syscalls:sys_enter_*``) into kind + parts.

    Raises Diagnostic with bpftrace's wording when the kind is unknown or the
    number of parts is wrong.
    """
    parts = split_parts(raw)
    head, rest = parts[0], parts[1:]
    kind = KINDS.get(head)
    if kind is None:
        # bpftrace 0.17 aborts here with this FATAL line (and no location)
        raise Diagnostic(Message("Invalid probe type made it to attachpoint parser", None, "FATAL"))
    if rest == [""] and kind.nparts == (0,):
        rest = []
    if len(rest) not in kind.nparts:
        raise _fail(f"{kind.name} probe type {kind.count_msg}", span)
    if kind.name in ("profile", "interval"):
        _check_time(kind.name, rest, span)
    elif kind.name in ("watchpoint", "asyncwatchpoint"):
        _check_watchpoint(rest, span)
    return ProbeSpec(kind.name, tuple(rest))
