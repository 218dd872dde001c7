"""Probe specs: the table of probe kinds and the parsing of ``kind:part:part``.

Pure parsing: nothing here looks at the kernel.  (Checks that need the
system, such as "uprobe target file ... does not exist", are made by semantic
analysis through the hooks in its ``Env``.)

Kind names and aliases come from the one table of probe kinds,
``ebpfpy.attach.provider.KINDS``; ``SYNTAX`` adds, per kind of bpftrace 0.17's
language, how many ``:``-separated parts it takes after the kind, whether the
parts may hold wildcards, and the wording bpftrace 0.17 uses when the count is
wrong. An attach kind without a ``SYNTAX`` row (``rawtracepoint``) is not
bpftrace 0.17's: "Invalid probe type", as for any other unknown kind (0.17 itself
aborts there with an internal assertion).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ebpfpy.attach.provider import KINDS as ATTACH_KINDS

from .compat import is_modern
from .diagnostics import Diagnostic, Span


@dataclass(frozen=True)
class ProbeKind:
    name: str
    aliases: tuple[str, ...]
    nparts: tuple[int, ...]      # accepted counts of parts after the kind
    count_msg: str               # "requires 2 arguments", ...
    wildcard: bool = False       # parts may contain * ? [..]


# attach kind name -> (nparts, count_msg, wildcard): bpftrace 0.17's wording only.
SYNTAX: dict[str, tuple[tuple[int, ...], str, bool]] = {
    "BEGIN": ((0,), "requires 0 arguments", False),
    "END": ((0,), "requires 0 arguments", False),
    "kprobe": ((1,), "requires 1 argument", True),
    "kretprobe": ((1,), "requires 1 argument", True),
    "uprobe": ((2, 3), "requires 2 arguments", True),
    "uretprobe": ((2, 3), "requires 2 arguments", True),
    "usdt": ((2, 3), "requires 2 or 3 arguments", True),
    "tracepoint": ((2,), "requires 2 arguments", True),
    "profile": ((2,), "requires 2 arguments", False),
    "interval": ((2,), "requires 2 arguments", False),
    "software": ((1, 2), "requires 1 or 2 arguments", False),
    "hardware": ((1, 2), "requires 1 or 2 arguments", False),
    "watchpoint": ((3,), "requires 3 arguments", False),
    "asyncwatchpoint": ((3,), "requires 3 arguments", False),
    "kfunc": ((1, 2), "requires 1 or 2 arguments", True),
    "kretfunc": ((1, 2), "requires 1 or 2 arguments", True),
    "iter": ((1, 2), "takes 2 arguments (1 optional)", False),
}

_missing = SYNTAX.keys() - {k.name for k in ATTACH_KINDS}  # a kind the attach table lost or renamed
if _missing:
    raise ImportError(f"probe kinds missing from ebpfpy.attach.provider.KINDS: {sorted(_missing)}")

PROBE_KINDS: tuple[ProbeKind, ...] = tuple(
    ProbeKind(k.name, k.aliases, *SYNTAX[k.name]) for k in ATTACH_KINDS if k.name in SYNTAX)

# every spelling (name or alias) of a kind in the language -> its row
KINDS: dict[str, ProbeKind] = {name: k for k in PROBE_KINDS for name in (k.name, *k.aliases)}

# Today's language (bpftrace 0.18 to 0.26, compat.py) on top of 0.17's: the kinds it adds,
# with their wording, and the new spellings of kinds (provider names are case-insensitive
# there: `BeGiN`, `Tracepoint:`). Each spelling names an attach kind of the one table.
MODERN_SYNTAX: dict[str, tuple[tuple[int, ...], str, bool]] = {
    "rawtracepoint": ((1, 2), "requires 1 or 2 arguments", True),
    "test": ((1,), "requires 1 argument", False),
    "bench": ((1,), "requires 1 argument", False),
    "self": ((2,), "requires 2 arguments", False),
}
MODERN_SPELLINGS: dict[str, str] = {
    "begin": "BEGIN", "end": "END", "fentry": "kfunc", "fexit": "kretfunc", "rawtracepoint": "rawtracepoint",
    "test": "test", "bench": "bench", "self": "self",
}


def _modern_kinds() -> dict[str, ProbeKind]:
    """Every spelling today's language accepts, lowercased (exact 0.17 spellings are looked
    up first, so `U` stays usdt while `u` is uprobe)."""
    rows = {k.name: ProbeKind(k.name, k.aliases, *MODERN_SYNTAX[k.name])
            for k in ATTACH_KINDS if k.name in MODERN_SYNTAX}
    table = {name.lower(): k for name, k in KINDS.items() if name != "U"}
    table.update({spelling.lower(): k for k in rows.values() for spelling in (k.name, *k.aliases)})
    table.update({spelling: rows.get(name) or KINDS[name] for spelling, name in MODERN_SPELLINGS.items()})
    return table


MODERN_KINDS: dict[str, ProbeKind] = _modern_kinds()
# Durations in today's probe specs (`interval:500ms`, `interval:1s`; no unit: nanoseconds).
DURATION_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
               "h": 3_600_000_000_000, "d": 86_400_000_000_000}
_DURATION = re.compile(r"([0-9][0-9_]*)(ns|us|ms|s|m|h|d)?")

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


def split_parts(raw: str, params: tuple[str, ...] | None = None) -> list[str]:
    """Split on ':' outside "quotes", as bpftrace 0.17's attach point lexer does.

    Quotes are dropped; inside them a backslash escapes the next character (outside
    them it is kept). With ``params``, ``$N`` outside quotes becomes positional
    parameter N (``""`` when there is no such parameter), inside the part it is in:
    ``k:f$1`` with ``x:y`` is the one part ``fx:y``. Raises ValueError with
    bpftrace's message when ``$N`` is followed by other text (``$1b``).
    """
    parts: list[str] = []
    cur: list[str] = []
    quoted = False
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == ":" and not quoted:
            parts.append("".join(cur))
            cur = []
        elif ch == '"':
            quoted = not quoted
        elif ch == "\\" and quoted and i + 1 < len(raw):
            cur.append(raw[i + 1])
            i += 1
        elif ch == "$" and not quoted and params is not None:
            m = re.compile(r'[^":]*').match(raw, i + 1)
            digits = re.match(r"[0-9]*", m.group()).group()
            if digits != m.group():
                raise ValueError(f"Found trailing text '{m.group()[len(digits):]}' in positional "
                                 "parameter index. Try quoting the trailing text.")
            n = int(digits, 8 if digits.startswith("0") else 10)  # stoll(..., 0)
            cur.append(params[n - 1] if 0 < n <= len(params) else "")
            i = m.end() - 1
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _fail(msg: str, span: Span | None) -> Diagnostic:
    return Diagnostic(msg, span)


_C_UINT = re.compile(r"[ \t\n\r\f\v]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def parse_uint(text: str) -> int:
    """A number in an attach point (``interval:s:1e3``), read as bpftrace 0.17 reads it.

    Underscores are dropped, ``NeM`` is N * 10**M (N one digit, M under 19), a
    ``u``/``l``/``ll`` suffix is allowed, and the rest goes to C's ``stoull``
    (any base, a sign allowed: ``-5`` wraps). Raises ValueError with bpftrace's message.
    """
    s = text.replace("_", "")
    sci = re.fullmatch(r"([0-9]+)[eE]([0-9]+)[uU]?[lL]{0,2}", s)
    if sci:
        coef, exp = int(sci.group(1)), int(sci.group(2))
        if coef > 9:
            raise ValueError(f"Coefficient part of scientific literal must be in range (0,9), got: {coef}")
        if exp > 18:
            raise ValueError(f"Exponent will overflow integer range: {exp}")
        return coef * 10 ** exp
    s = re.sub(r"(?<=[0-9a-fA-F])[uU]?[lL]{0,2}$", "", s)
    m = _C_UINT.match(s)
    if not m:
        raise ValueError("stoull")
    value = int(m.group(2), 0) if m.group(2)[1:2] in ("x", "X") or m.group(2) == "0" else \
        int(m.group(2), 8 if m.group(2).startswith("0") else 10)
    if value >= 1 << 64:
        raise ValueError("stoull")
    if m.end() != len(s):
        raise ValueError("Found trailing non-numeric characters")
    return (-value) % (1 << 64) if m.group(1) == "-" else value


def _check_time(kind: str, parts: list[str], span: Span | None) -> None:
    unit, value = parts
    if unit not in TIME_UNITS:
        raise _fail(f"{unit} is not an accepted unit of time", span)
    try:
        parts[1] = str(parse_uint(value))
    except ValueError as err:
        raise _fail(str(err), span) from None


def _check_watchpoint(parts: list[str], span: Span | None) -> None:
    """``ADDR:LEN:MODE`` or ``FUNC+argN:LEN:MODE``: the numbers read as bpftrace reads
    them (and written back in decimal); the mode and the values are checked by
    semantic analysis, as in bpftrace."""
    try:
        target = parts[0]
        if "+" not in target:
            parts[0] = str(parse_uint(target))
        else:
            pieces = target.split("+")
            if len(pieces) != 2:
                raise ValueError("Invalid function/address argument")
            arg = pieces[1]
            if len(arg) <= 3 or not arg.startswith("arg"):
                raise ValueError("Invalid function argument")
            parts[0] = f"{pieces[0]}+arg{parse_uint(arg[3:])}"
        parts[1] = str(parse_uint(parts[1]))
    except ValueError as err:
        raise _fail(str(err), span) from None


def _modern_interval(rest: list[str], span: Span | None) -> None:
    """``interval:500ms`` (one part, a duration) as the ``us:N`` form bpftrace 0.26 reports it."""
    m = _DURATION.fullmatch(rest[0])
    if m is None:
        raise _fail(f"{rest[0]} is not an accepted unit of time", span)
    ns = int(m.group(1).replace("_", "")) * DURATION_NS[m.group(2) or "ns"]
    rest[:] = ["us", str(ns // 1000)]


def parse_spec(raw: str, span: Span | None = None, params: tuple[str, ...] | None = None,
               compat: str | None = None) -> ProbeSpec:
    """Parse one attach point (``t:syscalls:sys_enter_*``) into kind + parts.

    Raises Diagnostic with bpftrace's wording when the kind is unknown or the
    number of parts is wrong. ``params`` are the positional parameters ``$N`` stands for;
    ``compat`` the language (compat.py): today's adds kinds, spellings and durations.
    """
    try:
        parts = split_parts(raw, params)
    except ValueError as err:
        raise _fail(str(err), span) from None
    head, rest = parts[0], parts[1:]
    kind = KINDS.get(head)
    if is_modern(compat):
        kind = kind or MODERN_KINDS.get(head.lower())
        if kind is not None and kind.name == "interval" and len(rest) == 1:
            _modern_interval(rest, span)
    if kind is None:
        # bpftrace 0.17 aborts with "FATAL: Invalid probe type made it to attachpoint
        # parser" (an assertion); we report the attach point as its other errors are
        raise _fail(f"Invalid probe type: {head}", span)
    if len(rest) not in kind.nparts:
        raise _fail(f"{kind.name} probe type {kind.count_msg}", span)
    if kind.name in ("profile", "interval"):
        _check_time(kind.name, rest, span)
    elif kind.name in ("watchpoint", "asyncwatchpoint"):
        _check_watchpoint(rest, span)
    return ProbeSpec(kind.name, tuple(rest))
