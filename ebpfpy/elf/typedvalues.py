"""Global variables set by name with their BTF types, as a libbpf skeleton sets them.

A skeleton writes ``skel->rodata->cfg.pid = 42`` in C, with the compiler checking the type;
from Python and the shell we get a value (or a piece of text) and the variable's BTF type,
so the checks the compiler would make happen here: an integer must fit its width and
signedness, an enum takes an enumerator's name or value, a ``char`` array takes a string
that fits (with room for its NUL), arrays take lists and structs take dicts of members.
Text from the command line is read by the same type: ``42``/``0x2a`` for integers,
``true``/``false`` for bools, a name for enums, the text itself for ``char`` arrays, and
JSON (``[1, 2]``, ``{"pid": 1}``) for arrays and structs.
"""
from __future__ import annotations

import json
from typing import Any

from ebpfpy.btf import BTF, Kind


def _is_char_array(btf: BTF, tid: int) -> bool:
    t = btf[tid]
    if t.kind != Kind.ARRAY:
        return False
    elem = btf.resolve(t.type)
    return btf.kind_of(elem) == Kind.INT and btf.size_of(elem) == 1 and (
        bool(btf[elem].encoding & 2) or btf[elem].name in ("char", "signed char", "unsigned char"))


def _int_range(size: int, signed: bool) -> tuple[int, int]:
    bits = 8 * size
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def check(btf: BTF, type_id: int, value: Any, what: str) -> Any:
    """``value`` made ready for ``ebpfpy.btf.values.encode`` (enumerator names to numbers),
    or ValueError/TypeError saying why it does not fit the type."""
    tid = btf.resolve(type_id)
    t = btf[tid]
    desc = btf.describe(type_id)
    if isinstance(value, (bytes, bytearray)) and t.kind not in (Kind.INT, Kind.ENUM, Kind.ENUM64):
        if len(value) > btf.size_of(tid):
            raise ValueError(f"{what}: {len(value)} bytes do not fit {desc} ({btf.size_of(tid)} bytes)")
        return bytes(value)
    if t.kind == Kind.INT:
        if not isinstance(value, int):  # bools are ints too, as in C
            raise TypeError(f"{what}: {desc} takes an integer, not {value!r}")
        value = int(value)
        lo, hi = _int_range(t.size, bool(t.signed))
        if not lo <= value <= hi:
            raise ValueError(f"{what}: {value} does not fit {desc} ({lo}..{hi})")
        return value
    if t.kind in (Kind.ENUM, Kind.ENUM64):
        names = dict(t.values)
        if isinstance(value, str):
            if value not in names:
                raise ValueError(f"{what}: {value!r} is not an enumerator of {desc} ({', '.join(names)})")
            return names[value]
        if not isinstance(value, int):
            raise TypeError(f"{what}: {desc} takes an enumerator name or a number, not {value!r}")
        lo, hi = _int_range(t.size, bool(getattr(t, "signed", False)) or value < 0)
        if not lo <= value <= hi:
            raise ValueError(f"{what}: {value} does not fit {desc}")
        return value
    if t.kind == Kind.FLOAT:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError(f"{what}: {desc} takes a number, not {value!r}")
        return float(value)
    if t.kind == Kind.PTR:
        if not isinstance(value, int):
            raise TypeError(f"{what}: {desc} takes an address (an integer), not {value!r}")
        return value & ((1 << 64) - 1)
    if t.kind == Kind.ARRAY:
        if _is_char_array(btf, tid) and isinstance(value, str):
            raw = value.encode()
            if len(raw) >= t.nelems:
                raise ValueError(f"{what}: {value!r} does not fit {desc} (at most {t.nelems - 1} bytes and a NUL)")
            return raw
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{what}: {desc} takes a list, not {value!r}")
        if len(value) > t.nelems:
            raise ValueError(f"{what}: {len(value)} elements do not fit {desc}")
        return [check(btf, t.type, v, f"{what}[{i}]") for i, v in enumerate(value)]
    if t.kind in (Kind.STRUCT, Kind.UNION):
        if not isinstance(value, dict):
            raise TypeError(f"{what}: {desc} takes a dict of members, not {value!r}")
        members = {m.name: m for m in t.members if m.name}
        out = {}
        for name, v in value.items():
            m = members.get(name)
            if m is None:
                raise ValueError(f"{what}: {desc} has no member {name!r} ({', '.join(members)})")
            if m.bitfield_size:
                if not isinstance(v, int) or not -(1 << (m.bitfield_size - 1)) <= v < (1 << m.bitfield_size):
                    raise ValueError(f"{what}.{name}: {v!r} does not fit a {m.bitfield_size}-bit field")
                out[name] = v
            else:
                out[name] = check(btf, m.type, v, f"{what}.{name}")
        return out
    raise TypeError(f"{what}: cannot set a value of {desc}")


def encode(btf: BTF, type_id: int, value: Any, what: str) -> bytes:
    """The bytes of ``value`` as a ``type_id``, checked as a compiler would check it."""
    from ebpfpy.btf import values
    return values.encode(btf, type_id, check(btf, type_id, value, what))


def parse_text(btf: BTF, type_id: int, text: str, what: str) -> Any:
    """A command line's ``VALUE`` read as the variable's type would be written in C."""
    tid = btf.resolve(type_id)
    t = btf[tid]
    if t.kind == Kind.ARRAY and _is_char_array(btf, tid) and not text.startswith("["):
        return text
    if t.kind in (Kind.ARRAY, Kind.STRUCT, Kind.UNION):
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            shape = "[...]" if t.kind == Kind.ARRAY else "{...}"
            raise ValueError(f"{what}: {btf.describe(type_id)} takes JSON ({shape}): {e.msg} in {text!r}") from None
    if t.kind == Kind.INT and t.encoding & 4 and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if t.kind == Kind.FLOAT:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{what}: {text!r} is not a number") from None
    try:
        return int(text, 0)
    except ValueError:
        if t.kind in (Kind.ENUM, Kind.ENUM64):
            return text
        raise ValueError(f"{what}: {text!r} is not a number ({btf.describe(type_id)})") from None
