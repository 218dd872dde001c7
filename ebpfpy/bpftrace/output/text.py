"""bpftrace's text output: maps, histograms, values, stacks.

Every width and blank line here was checked against the real bpftrace 0.17
on this project's test machine (see tests/differential/test_output_vs_bpftrace.py).
``modern=True`` gives bpftrace 0.26's few differences, as observed
(bpftrace-0.26-notes.md, E16): stats as a record, no blank line after avg/stats
maps, no space after a histogram's ``@h:``, nothing for an empty map, and
``Attached N probes`` (which the writer puts on stderr).
"""
from __future__ import annotations

import struct
from typing import Any

from .values import (
    AVERAGE_KINDS,
    HISTOGRAM_KINDS,
    INTEGER_KINDS,
    Avg,
    IntColumns,
    LHist,
    MapData,
    Record,
    Stack,
    Stats,
    divide,
    histogram_rows,
    plain_key,
)

BAR_WIDTH = 52
_SUFFIXES = ("", "K", "M", "G", "T", "P", "E")
_FLOAT32 = struct.Struct("f")


def _f32(value: float) -> float:
    return _FLOAT32.unpack(_FLOAT32.pack(value))[0]


def bar_length(count: int, top: int) -> int:
    """bpftrace computes ``count / (float)max * 52`` in single precision; so do we, to match its rounding."""
    return int(_f32(_f32(_f32(count) / _f32(top)) * BAR_WIDTH))


def format_stack(stack: Stack) -> str:
    """A stack as bpftrace prints it in keys and values (rendered when it was read)."""
    return stack.text


def format_value(value: Any, modern: bool = False) -> str:
    """Any printable value in text form (tuples in parentheses, strings bare)."""
    if isinstance(value, Record):  # bpftrace 0.25+: `{ .name = bob, .age = 42 }`
        return "{ " + ", ".join(f".{n} = {format_value(v, modern)}" for n, v in zip(value.names, value)) + " }"
    if isinstance(value, tuple):
        return "(" + ", ".join(format_value(part, modern) for part in value) + ")"
    if isinstance(value, Stack):
        return format_stack(value)
    if isinstance(value, Stats):
        if modern:
            return f"{{ .count = {value.count}, .average = {value.value}, .total = {value.total} }}"
        return f"count {value.count}, average {value.value}, total {value.total}"
    if isinstance(value, Avg):
        return str(value.value)
    if isinstance(value, bool):  # today's bool
        return "true" if value else "false"
    return str(value)


def format_key(name: str, key: tuple) -> str:
    if not key:
        return name
    return name + "[" + ", ".join(format_value(part) for part in key) + "]"


def size_label(value: int) -> str:
    """A bucket bound with bpftrace's binary suffix: 1024 -> 1K, 1000 stays 1000."""
    index = 0
    while value != 0 and value % 1024 == 0 and index < len(_SUFFIXES) - 1:
        value //= 1024
        index += 1
    return f"{value}{_SUFFIXES[index]}"


def hist_label(index: int) -> str:
    if index == 0:
        return "(..., 0)"
    if index == 1:
        return "[0]"
    if index == 2:
        return "[1]"
    return f"[{size_label(1 << (index - 2))}, {size_label(1 << (index - 1))})"


def lhist_label(hist: LHist, index: int) -> str:
    if index == 0:
        return f"(..., {size_label(hist.min)})"
    if index == hist.buckets + 1:
        return f"[{size_label(hist.max)}, ...)"
    low = hist.min + (index - 1) * hist.step
    return f"[{size_label(low)}, {size_label(low + hist.step)})"


def _labels(hist):
    if isinstance(hist, LHist):
        return lambda index: lhist_label(hist, index)
    return hist_label


def format_histogram(hist, div: int = 1) -> str:
    """The rows of ``histogram_rows``: label, shown count and a 52-column bar (of the
    undivided count)."""
    label = _labels(hist)
    top = max(hist.counts + getattr(hist, "hidden", ()), default=0)
    return "".join(f"{label(index):<16}{shown:>8} |{'@' * bar_length(count, top):<{BAR_WIDTH}}|\n"
                   for index, count, shown in histogram_rows(hist, div))


def format_map(data: MapData, top: int = 0, div: int = 1, modern: bool = False) -> str:
    """A whole map as bpftrace prints it at exit or for ``print(@m)``."""
    if type(data) is IntColumns and (div or 1) == 1:
        return _format_int_columns(data, top, modern)
    entries = data.sorted_entries(top)
    if not entries:
        if modern:
            return ""  # 0.26 prints nothing for an empty map (E11's emptied @b)
        return "\n\n" if data.kind in AVERAGE_KINDS else "\n"  # avg/stats end with a blank line even when empty
    out = []
    if data.kind in HISTOGRAM_KINDS:
        colon = ":" if modern else ": "  # 0.17 has a space after the histogram's name
        for key, hist in entries:
            out.append(f"{format_key(data.name, key)}{colon}\n")
            out.append(format_histogram(hist, div))
            out.append("\n")
        return "".join(out)
    if (data.kind in INTEGER_KINDS and (div or 1) == 1 and plain_key(entries[0][0])
            and all(type(value) is int for _, value in entries)):
        # The common big map: integer values under keys of ints and strings
        # (one shape per map, so the first key speaks for all). str() of each
        # part is what format_value would give; one f-string per line.
        name = data.name
        if not entries[0][0]:
            return "".join([f"{name}: {value}\n" for _, value in entries])
        if len(entries[0][0]) == 1:
            return "".join([f"{name}[{key[0]}]: {value}\n" for key, value in entries])
        return "".join([f"{name}[{', '.join(map(str, key))}]: {value}\n" for key, value in entries])
    for key, value in entries:
        out.append(f"{format_key(data.name, key)}: {format_value(divide(value, div), modern)}\n")
    if data.kind in AVERAGE_KINDS and not modern:
        out.append("\n")
    return "".join(out)


def _format_int_columns(data: IntColumns, top: int, modern: bool = False) -> str:
    """``@m[key]: value`` lines of a big count/sum map, in one ``%`` formatting call.

    Keys and values interleave into one tuple for one format string repeated
    per line: the per-line work stays in C (``%d`` of an int is its ``str``).
    """
    order = data.sorted_order(top)
    if not order:
        return "" if modern else "\n"
    args: list = [0] * (2 * len(order))
    args[0::2] = map(data.keys.__getitem__, order)
    args[1::2] = map(data.values.__getitem__, order)
    line = data.name.replace("%", "%%") + "[%d]: %d\n"
    return (line * len(order)) % tuple(args)


def format_lost(count: int) -> str:
    return f"Lost {count} events\n"


def format_attached(count: int, modern: bool = False) -> str:
    """0.17's ``Attaching N probes...`` (stdout); 0.26's ``Attached N probes`` (stderr)."""
    plural = "s" if count != 1 else ""
    return f"Attached {count} probe{plural}\n" if modern else f"Attaching {count} probe{plural}...\n"


__all__ = [
    "bar_length",
    "format_attached",
    "format_histogram",
    "format_key",
    "format_lost",
    "format_map",
    "format_stack",
    "format_value",
    "hist_label",
    "lhist_label",
    "size_label",
]
