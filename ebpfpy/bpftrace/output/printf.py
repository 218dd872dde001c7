"""printf formatting exactly as bpftrace 0.17 does it.

bpftrace finds specifiers with a regex (`%`, an optional `-`, digits,
an optional precision, then one of a fixed set of length+conversion tokens),
splits the format after each specifier, and hands each piece to C's
snprintf with one argument. The text after the last specifier is written
as it is. Two visible consequences, reproduced here:

* ``%%`` becomes ``%`` only before a specifier; after the last one it stays ``%%``;
* every integer travels as 64 bits, and the C length modifier decides how
  much of it is printed: ``%d`` shows the low 32 bits, ``%hhd`` the low 8.

The format is parsed once (``PrintfFormat``) and reused for every event.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Conversion letter -> the kind of argument it takes.
_CONVERSIONS = {"d": "integer", "u": "integer", "o": "integer", "x": "integer", "X": "integer", "p": "integer"}
_LENGTHS = ("", "hh", "h", "l", "ll", "j", "z", "t")
TOKEN_TYPES = {"s": "string", "r": "buffer", "rx": "buffer", "c": "integer"}
TOKEN_TYPES.update({length + conv: kind for length in _LENGTHS for conv, kind in _CONVERSIONS.items()})

# Longest tokens first, so that "%rx" is not read as "%r" followed by "x".
SPECIFIER_RE = re.compile(
    r"%(?P<left>-?)(?P<width>[0-9]*)(?P<precision>\.[0-9]+)?(?P<token>"
    + "|".join(sorted(map(re.escape, TOKEN_TYPES), key=len, reverse=True))
    + ")"
)

# Length modifier -> (bits, mask) for the C promotion of a 64-bit argument.
_LENGTH_BITS = {"": 32, "hh": 8, "h": 16, "l": 64, "ll": 64, "j": 64, "z": 64, "t": 64}


@dataclass(frozen=True)
class Specifier:
    token: str
    left: bool
    width: str
    precision: str
    start: int
    end: int

    @property
    def kind(self) -> str:
        return TOKEN_TYPES[self.token]


def find_specifiers(fmt: str) -> list:
    return [_spec_of(m) for m in SPECIFIER_RE.finditer(fmt)]


def _as_c_int(value: int, bits: int, signed: bool) -> int:
    value &= (1 << bits) - 1
    if signed and value >> (bits - 1):
        value -= 1 << bits
    return value


def _pad(text: str, spec: Specifier) -> str:
    width = int(spec.width) if spec.width else 0
    return text.ljust(width) if spec.left else text.rjust(width)


def _integer_formatter(spec: Specifier) -> Callable:
    conv = spec.token[-1]
    bits = _LENGTH_BITS[spec.token[:-1]]
    flags = "-" if spec.left else ""
    width = spec.width
    if spec.precision and width.startswith("0"):
        # C ignores the 0 flag when a precision is given; Python does not.
        width = width.lstrip("0")
    if conv == "p":
        def pointer(value):
            value &= (1 << 64) - 1
            return _pad("(nil)" if value == 0 else f"0x{value:x}", spec)
        return pointer
    python_conv = "d" if conv == "u" else conv
    pattern = f"%{flags}{width}{spec.precision}{python_conv}"
    signed = conv == "d"
    return lambda value: pattern % _as_c_int(int(value), bits, signed)


def _formatter(spec: Specifier) -> Callable:
    if spec.token == "c":
        return lambda value: _pad(chr(int(value) & 0xFF), spec)
    if spec.kind == "integer":
        return _integer_formatter(spec)
    pattern = f"%{'-' if spec.left else ''}{spec.width}{spec.precision}s"
    return lambda value: pattern % (value if isinstance(value, str) else str(value))


def _spec_of(match) -> Specifier:
    return Specifier(match["token"], bool(match["left"]), match["width"], match["precision"] or "",
                     match.start(), match.end())


def _c_piece(part: str):
    """Split one piece the way C's printf reads it: text (with ``%%`` as ``%``), the first conversion, the rest.

    The conversion is usually the specifier the piece was cut after, but a
    ``%%`` just before it swallows its ``%`` (``"%%x"`` prints ``%x`` and drops
    the argument), exactly as in bpftrace.
    """
    out = []
    i = 0
    while i < len(part):
        if part.startswith("%%", i):
            out.append("%")
            i += 2
            continue
        match = SPECIFIER_RE.match(part, i) if part[i] == "%" else None
        if match:
            return "".join(out), _formatter(_spec_of(match)), part[match.end():].replace("%%", "%")
        out.append(part[i])
        i += 1
    return "".join(out), None, ""


class PrintfFormat:
    """A parsed bpftrace format string: ``PrintfFormat(fmt).format(args)``."""

    def __init__(self, fmt: str):
        self.fmt = fmt
        self.specifiers = find_specifiers(fmt)
        self._pieces = []
        last = 0
        for spec in self.specifiers:
            self._pieces.append(_c_piece(fmt[last:spec.end]))
            last = spec.end
        self._tail = fmt[last:]

    def format(self, args: Sequence) -> str:
        out = []
        for (prefix, render, suffix), arg in zip(self._pieces, args):
            out.append(prefix if render is None else prefix + render(arg) + suffix)
        out.append(self._tail)
        return "".join(out)


def check_arguments(fmt: str, arg_kinds: Sequence[str], name: str = "printf") -> str:
    """bpftrace's message for a format/argument mismatch, or "" when they agree.

    ``arg_kinds`` are "integer", "string" or "buffer" (symbols, stacks, usernames
    and the like print as strings; pointers as integers).
    """
    specs = find_specifiers(fmt)
    if len(arg_kinds) < len(specs):
        return f"{name}: Not enough arguments for format string ({len(arg_kinds)} supplied, {len(specs)} expected)"
    if len(arg_kinds) > len(specs):
        return f"{name}: Too many arguments for format string ({len(arg_kinds)} supplied, {len(specs)} expected)"
    for spec, kind in zip(specs, arg_kinds):
        if spec.kind != kind:
            return f"{name}: %{spec.token} specifier expects a value of type {spec.kind} ({kind} supplied)"
    return ""
