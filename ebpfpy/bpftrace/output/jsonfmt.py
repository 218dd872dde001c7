"""bpftrace 0.17's ``-f json`` output: one JSON object a line.

bpftrace writes its JSON by hand, so spacing differs between places (maps use
``", "`` and ``": "``, tuples use bare ``","``); these functions reproduce it.
``modern=True`` gives bpftrace 0.26's differences (bpftrace-0.26-notes.md, E13 and
E16): histogram buckets joined by ``},{`` and ``attached_probes`` with a ``count``.
"""
from __future__ import annotations

from typing import Any

from .text import format_stack
from .values import HISTOGRAM_KINDS, Avg, BareJson, LHist, MapData, Record, Stack, Stats, divide, histogram_rows

# bpftrace's json_escape, byte by byte over a signed char: ", \\, \n, \r, \t by name, anything
# "<= 0x1f" as \u%04x, which takes in every byte from 0x80 up (negative as a char, so printed
# sign-extended: 0xff is \uffffffff, and UTF-8's é is \uffffffc3\uffffffa9)
_JSON_BYTE = [chr(b) for b in range(0x80)] + [f"\\uffffff{b:02x}" for b in range(0x80, 0x100)]
for _b in range(0x20):
    _JSON_BYTE[_b] = f"\\u{_b:04x}"
_JSON_BYTE[ord('"')], _JSON_BYTE[ord("\\")] = '\\"', "\\\\"
_JSON_BYTE[ord("\n")], _JSON_BYTE[ord("\r")], _JSON_BYTE[ord("\t")] = "\\n", "\\r", "\\t"


def _string(text: str) -> str:
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return '"' + "".join(map(_JSON_BYTE.__getitem__, text.encode("utf-8", "surrogateescape"))) + '"'


def value_json(value: Any) -> str:
    if isinstance(value, Record):  # bpftrace 0.25+: an object
        return "{" + ", ".join(f"{_string(n)}: {value_json(v)}" for n, v in zip(value.names, value)) + "}"
    if isinstance(value, tuple):
        return "[" + ",".join(value_json(part) for part in value) + "]"
    if isinstance(value, Stack):
        return _string(format_stack(value))
    if isinstance(value, Stats):
        return f'{{"count": {value.count}, "average": {value.value}, "total": {value.total}}}'
    if isinstance(value, Avg):
        return str(value.value)
    if isinstance(value, BareJson):
        return str.__str__(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, bool):  # today's bool
        return "true" if value else "false"
    return str(value)


def key_json(key: tuple) -> str:
    parts = []
    for part in key:
        parts.append(format_stack(part) if isinstance(part, Stack) else _key_text(part))
    return _string(",".join(parts))


def _key_text(part: Any) -> str:
    if isinstance(part, tuple):
        return "(" + ", ".join(_key_text(p) for p in part) + ")"
    if isinstance(part, bool):
        return "true" if part else "false"
    return str(part)


def _hist_rows(hist, div: int, modern: bool = False) -> str:
    """The rows of ``histogram_rows`` as JSON objects: bucket bounds and shown count."""
    rows = []
    for index, _, shown in histogram_rows(hist, div):
        low, high = _bucket_bounds(hist, index)
        if not modern and not isinstance(hist, LHist) and low == 1 << 31:
            # 0.17 computes a hist bucket's bounds in 32-bit ints: its top one, [2G, 4G),
            # prints as min -2147483648 (1 << 31) and max 0 ((1 << 32) - 1 wrapped)
            low, high = -(1 << 31), 0
        fields = []
        if low is not None:
            fields.append(f'"min": {low}')
        if high is not None:
            fields.append(f'"max": {high}')
        fields.append(f'"count": {shown}')
        rows.append("{" + ", ".join(fields) + "}")
    return "[" + ("," if modern else ", ").join(rows) + "]"


def _bucket_bounds(hist, index: int):
    """Inclusive (min, max) of a bucket; None where the bucket is open-ended."""
    if isinstance(hist, LHist):
        if index == 0:
            return None, hist.min - 1
        if index == hist.buckets + 1:
            return hist.max, None
        low = hist.min + (index - 1) * hist.step
        return low, low + hist.step - 1
    if index == 0:
        return None, -1
    if index == 1:
        return 0, 0
    return 1 << (index - 2), (1 << (index - 1)) - 1


_TYPE_OF_KIND = {"avg": "stats", "stats": "stats", "hist": "hist", "lhist": "hist"}


def map_json(data: MapData, top: int = 0, div: int = 1, modern: bool = False) -> str:
    """One map as a JSON line; an empty map prints nothing (returns "")."""
    entries = data.sorted_entries(top)
    if not entries:
        return ""
    kind = _TYPE_OF_KIND.get(data.kind, "map")

    def render(value):
        if data.kind in HISTOGRAM_KINDS:
            return _hist_rows(value, div, modern)
        return value_json(divide(value, div))

    if not data.keyed:
        body = render(entries[0][1])
    else:
        body = "{" + ", ".join(f"{key_json(key)}: {render(value)}" for key, value in entries) + "}"
    return f'{{"type": "{kind}", "data": {{{_string(data.name)}: {body}}}}}\n'


def event_json(kind: str, data: Any) -> str:
    """A non-map record: printf text, print() values, time, cat, join, system output."""
    return f'{{"type": "{kind}", "data": {value_json(data)}}}\n'


def attached_json(count: int, modern: bool = False) -> str:
    if modern:
        return f'{{"type": "attached_probes", "count": {count}, "data": {{"probes": {count}}}}}\n'
    return f'{{"type": "attached_probes", "data": {{"probes": {count}}}}}\n'


def lost_json(count: int) -> str:
    return f'{{"type": "lost_events", "data": {{"events": {count}}}}}\n'


def runtime_message_json(kind: str, msg: str, filename: str, line: int, col: int) -> str:
    """errorf()/warnf() (today's language): the message and where the call is."""
    return (f'{{"type": "{kind}", "msg": {_string(msg)}, "filename": {_string(filename)}, '
            f'"line": {line}, "col": {col}}}\n')


def helper_error_json(helper: str, retcode: int, line: int, col: int) -> str:
    """``-k``: a helper call failed at ``line``:``col`` (the start of its span)."""
    return (f'{{"type": "helper_error", "helper": {_string(helper)}, "retcode": {retcode}, '
            f'"line": {line}, "col": {col}}}\n')


__all__ = ["attached_json", "event_json", "helper_error_json", "key_json", "lost_json", "map_json", "value_json"]
