"""Ring buffer and perf buffer records typed through an object's BTF.

Neither map type says what its records are: a ring buffer has no key or value type, a perf
event array's values are perf event fds, and the ``struct event`` a program reserves or
outputs is only the type of a local variable, which clang leaves out of BTF.  So the type is
named, as cilium/ebpf's ``bpf2go -type NAME`` names it:

- ``record_types(obj, [(map or None, "event"), ...])`` (``ebpfpy run --event-type
  [MAP=]NAME``): ``NAME`` is ``struct X``, ``union X``, or a bare name looked up as a struct,
  a union, then a typedef; with ``MAP=`` for that map only, else for every ring buffer and
  perf event array;
- without any: a struct named ``event`` (the libbpf-bootstrap and libbpf-tools convention),
  when the object's BTF has one.

The type must be in the object's BTF: a global, a map's key or value, or a function's
argument using it keeps it there; for a type only local variables use, the object declares
``struct event *unused_event __attribute__((unused));`` (bpf2go's rule).  A record is decoded
when its length is the type's size, or up to 7 bytes more (a perf sample's padding);
anything else stays raw.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ebpfpy.btf import BTF, Kind
from ebpfpy.sys.consts import MapType

from .reader import ObjectError

if TYPE_CHECKING:
    from .objfile import BPFObject

DEFAULT_TYPE = "event"
EVENT_MAP_TYPES = (MapType.RINGBUF, MapType.PERF_EVENT_ARRAY)
_PREFIXES = {"struct": (Kind.STRUCT,), "union": (Kind.UNION,)}
_BARE = (Kind.STRUCT, Kind.UNION, Kind.TYPEDEF)


def find_type(btf: BTF, name: str) -> int:
    """The BTF id of ``struct X``, ``union X`` or bare ``X`` (struct, union, typedef)."""
    word, _, rest = name.strip().partition(" ")
    kinds, bare = (_PREFIXES[word], rest.strip()) if word in _PREFIXES and rest else (_BARE, name.strip())
    for kind in kinds:
        ids = [i for i in btf.find_all(bare, kind) if btf.kind_of(i) != Kind.FWD]
        if ids:
            return ids[0]
    raise KeyError(name)


def event_maps(obj: BPFObject) -> list[str]:
    """The object's ring buffer and perf event array maps (libbpf's USDT bookkeeping aside)."""
    from .usdt import INTERNAL_MAPS
    return [n for n, s in obj.map_specs.items() if s.map_type in EVENT_MAP_TYPES and n not in INTERNAL_MAPS]


def record_types(obj: BPFObject, named: list[tuple[str | None, str]]) -> dict[str, int]:
    """Event map name -> BTF type id of its records, by the rule above (maps without a type
    are left out).  Errors name what was asked for and what the object has."""
    maps = event_maps(obj)
    out: dict[str, int] = {}
    if not named:
        if obj.btf is not None:
            try:
                tid = find_type(obj.btf, f"struct {DEFAULT_TYPE}")
            except KeyError:
                return {}
            out = dict.fromkeys(maps, tid)
        return out
    if obj.btf is None:
        raise ObjectError(f"{obj.path} has no BTF (built without -g): its records cannot be typed")
    explicit = {}
    for map_name, type_name in named:
        what = f"{map_name}={type_name}" if map_name else type_name
        try:
            tid = find_type(obj.btf, type_name)
        except KeyError:
            raise ObjectError(f"event type {what}: no struct, union or typedef {type_name!r} in {obj.path}'s BTF "
                              "(a type only local variables use is not in BTF: declare a global such as "
                              f"'struct {type_name.split()[-1]} *unused_event __attribute__((unused));')") from None
        if not obj.btf.size_of(tid):
            raise ObjectError(f"event type {what}: {obj.btf.describe(tid)} has no size")
        if map_name is None:
            out.update((m, tid) for m in maps if m not in explicit)
            continue
        if map_name not in maps:
            raise ObjectError(f"event type {what}: {map_name!r} is not a ring buffer or perf event array map "
                              f"of {obj.path} (it has: {', '.join(maps) or 'none'})")
        out[map_name] = explicit[map_name] = tid
    return out


def decode_record(btf: BTF, type_id: int, raw: bytes) -> Any | None:
    """The record decoded by its type, or None when its length does not fit the type."""
    from ebpfpy.btf import values
    size = btf.size_of(type_id)
    if not size <= len(raw) < size + 8:
        return None
    return values.decode(btf, type_id, bytes(raw[:size]))


def field_lines(value: Any, prefix: str = "") -> list[str]:
    """``name=value`` per field; nested structs as ``outer.inner=...``, arrays as lists,
    ``char`` arrays as their text."""
    if isinstance(value, dict):
        lines = []
        for name, v in value.items():
            lines += field_lines(v, f"{prefix}.{name}" if prefix else name)
        return lines
    text = value if isinstance(value, str) else value.hex(" ") if isinstance(value, bytes) else repr(value)
    return [f"{prefix or 'value'}={text}"]
