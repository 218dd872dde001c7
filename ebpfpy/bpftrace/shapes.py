"""How a bpftrace value is laid out in BPF memory, and how the runtime reads it back.

Codegen needs to know how many bytes a value takes on the stack, in a map key
or value, or in an event; the runtime needs to turn those bytes back into
something printable. A ``Shape`` answers both, so the two sides cannot drift.

Every shape is a multiple of 8 bytes: integers are widened to 64 bits, strings
are padded, tuple members are 8-aligned. That costs a few bytes and buys
aligned loads everywhere, which the verifier likes.
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .output.values import BareJson, Pointer, Record, Stack

_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")


def _round8(n: int) -> int:
    return (n + 7) // 8 * 8


@dataclass(frozen=True)
class Shape:
    kind: str  # int, str, tuple, kstack, ustack, ksym, usym, username, probe, inet, none
    size: int = 8
    signed: bool = True
    elems: tuple = ()
    # extra data for decoding (stack map name, probe names, stack limit)
    extra: Any = None

    @property
    def is_int(self) -> bool:
        return self.kind == "int"

    @property
    def in_register(self) -> bool:
        """Values that travel in a register: integers and integer-like handles."""
        return self.size == 8 and self.kind in _REGISTER_KINDS

    def offsets(self) -> list:
        """Byte offset of each tuple member."""
        out, pos = [], 0
        for elem in self.elems:
            out.append(pos)
            pos += elem.size
        return out

    def describe(self) -> str:
        """The type's name in bpftrace's words, for error messages."""
        if self.kind == "int":
            if self.extra == "bool":
                return "bool"
            return "int64" if self.signed else "uint64"
        if self.kind == "str":
            return f"string[{self.size}]"
        if self.kind == "tuple":
            return "(" + ",".join(e.describe() for e in self.elems) + ")"
        return self.kind


_REGISTER_KINDS = frozenset({"int", "ksym", "usym", "username", "probe", "kstack", "strerror", "none", "cgroup_path",
                             "syscall_name", "signal_name"})

INT = Shape("int", 8, True)
UINT = Shape("int", 8, False)
NONE = Shape("none", 8, False)
# today's bool: an integer 0 or 1 everywhere in codegen, printed as true/false
BOOL = Shape("int", 8, False, extra="bool")
POINTER = Shape("pointer", 8, False)  # only in a map plan's key parts: decoded as a Pointer


def string(size: int) -> Shape:
    return Shape("str", _round8(size), False)


def tuple_of(elems) -> Shape:
    elems = tuple(elems)
    return Shape("tuple", sum(e.size for e in elems), False, elems)


# -- decoding -----------------------------------------------------------------------------

def _decode_int(shape: Shape, data: bytes, services) -> int:
    value = (_I64 if shape.signed else _U64).unpack_from(data)[0]
    return bool(value) if shape.extra == "bool" else value


def _decode_syscall_name(shape: Shape, data: bytes, services) -> str:
    """syscall_name(nr) (today's language): the name of this machine's syscall number."""
    from ebpfpy.attach.syscalls import syscall_numbers

    nr = _I64.unpack_from(data)[0]
    names = {v: k for k, v in syscall_numbers().items()}
    return names.get(nr, str(nr))


def _decode_signal_name(shape: Shape, data: bytes, services) -> str:
    """signal_name(n) (today's language): strsignal's text (9: "Killed")."""
    import signal

    n = _I64.unpack_from(data)[0]
    try:
        return signal.strsignal(n) or f"Unknown signal {n}"
    except ValueError:
        return f"Unknown signal {n}"


def _decode_pointer(shape: Shape, data: bytes, services) -> Pointer:
    return Pointer(_U64.unpack_from(data)[0])


def _decode_str(shape: Shape, data: bytes, services) -> str:
    raw = bytes(data[: shape.size])
    # surrogateescape: bytes that are not UTF-8 print back as themselves (the output streams
    # write with the same error handler), as bpftrace prints a string's bytes
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _decode_tuple(shape: Shape, data: bytes, services) -> tuple:
    values = (decode(elem, data[off:off + elem.size], services) for elem, off in zip(shape.elems, shape.offsets()))
    if isinstance(shape.extra, tuple) and shape.extra[:1] == ("record",):
        return Record(values, shape.extra[1])  # today's records (emit/newer.py's expr_Record)
    return tuple(values)


def _stack_decoders(as_value: bool) -> tuple[Callable, Callable]:
    """kstack and ustack decoders, for a map key or (``as_value``) a map value or printf."""
    def kstack(shape: Shape, data: bytes, services) -> Stack:
        stack_id = _I64.unpack_from(data)[0]
        map_name, limit, mode = shape.extra
        return services.kstack(map_name, stack_id, limit, mode, as_value=as_value)

    def ustack(shape: Shape, data: bytes, services) -> Stack:
        stack_id, pid = struct.unpack_from("<qQ", data)
        map_name, limit, mode = shape.extra
        return services.ustack(map_name, stack_id, pid, limit, mode, as_value=as_value)
    return kstack, ustack


_decode_kstack, _decode_ustack = _stack_decoders(as_value=False)
# Map values that print differently from the same shape in a key: stacks indented as values
# (8 spaces) wherever they are in the value, in a tuple too.
VALUE_DECODERS = dict(zip(("kstack", "ustack"), _stack_decoders(as_value=True)))


def _decode_tuple_value(shape: Shape, data: bytes, services) -> tuple:
    values = (VALUE_DECODERS.get(elem.kind, DECODERS[elem.kind])(elem, data[off:off + elem.size], services)
              for elem, off in zip(shape.elems, shape.offsets()))
    if isinstance(shape.extra, tuple) and shape.extra[:1] == ("record",):
        return Record(values, shape.extra[1])
    return tuple(values)


VALUE_DECODERS["tuple"] = _decode_tuple_value


def _decode_ksym(shape: Shape, data: bytes, services) -> str:
    return services.ksym(_U64.unpack_from(data)[0])


def _decode_usym(shape: Shape, data: bytes, services) -> str:
    addr, pid = struct.unpack_from("<QQ", data)
    return services.usym(addr, pid)


def _decode_strerror(shape: Shape, data: bytes, services) -> str:
    import os

    return os.strerror(_I64.unpack_from(data)[0])


def _decode_cgroup_path(shape: Shape, data: bytes, services) -> str:
    """cgroup_path(): the id's paths in every hierarchy its filter matches (None: none); in
    0.17 mode a string its JSON leaves unquoted, as 0.17's does."""
    from ebpfpy.events.cgroups import cgroup_path

    pattern, bare_json = shape.extra
    text = cgroup_path(_U64.unpack_from(data)[0], pattern) if pattern is not None else ""
    return BareJson(text) if bare_json else text


def _decode_username(shape: Shape, data: bytes, services) -> str:
    return services.username(_U64.unpack_from(data)[0])


def _decode_probe(shape: Shape, data: bytes, services) -> str:
    index = _U64.unpack_from(data)[0]
    names = shape.extra
    return names[index] if index < len(names) else f"probe{index}"


def _decode_inet(shape: Shape, data: bytes, services) -> str:
    import socket

    family = _U64.unpack_from(data)[0]
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, bytes(data[8:12]))
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, bytes(data[8:24]))
    return ""


def _decode_buffer(shape: Shape, data: bytes, services) -> str:
    """buf(): bpftrace's %r shows printable ASCII as is and every other byte as \\xNN."""
    n = min(_U64.unpack_from(data)[0], shape.extra)
    raw = bytes(data[8:8 + n])
    return "".join(chr(c) if 32 <= c < 127 else f"\\x{c:02x}" for c in raw)


def _decode_bytes(shape: Shape, data: bytes, services) -> list:
    return list(bytes(data[: shape.extra]))


def _decode_struct(shape: Shape, data: bytes, services) -> Record:
    """A struct printed whole (today's ``print(*ptr)``): a record of its members, laid out by
    ``emit.fields.struct_layout`` from BTF."""
    return _struct_record(shape.extra, bytes(data))


def _struct_record(layout: tuple, raw: bytes) -> Record:
    names, values = [], []
    for name, off, size, how, sub in layout:
        part = raw[off:off + size]
        if how == "struct":
            value = _struct_record(sub, part)
        elif how == "str":
            value = part.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif how == "array":
            elem_how, esize, count = sub
            value = [int.from_bytes(part[i * esize:(i + 1) * esize], "little", signed=elem_how == "int")
                     for i in range(count)]
        elif how == "ptr":
            value = Pointer(int.from_bytes(part, "little"))
        elif how == "bits":
            shift, bits = sub
            value = (int.from_bytes(part, "little") >> shift) & ((1 << bits) - 1)
        else:
            value = int.from_bytes(part, "little", signed=how == "int")
        if name:
            names.append(name)
            values.append(value)
        elif isinstance(value, Record):  # an anonymous struct/union: its members are the parent's
            names.extend(value.names)
            values.extend(value)
    return Record(values, names)


def _decode_macaddr(shape: Shape, data: bytes, services) -> str:
    return ":".join(f"{c:02X}" for c in bytes(data[:6]))


_WALL_OFFSET: list = []  # wall clock minus CLOCK_MONOTONIC, in ns, read once


def _wall_offset() -> int:
    """Read once, as bpftrace does at start-up, and as closely as Python can: the realtime
    reading against the midpoint of the tightest pair of monotonic readings around it, so
    that %f's microseconds do not wander from run to run."""
    import time

    if not _WALL_OFFSET:
        best = None
        for _ in range(8):
            before, wall, after = time.monotonic_ns(), time.time_ns(), time.monotonic_ns()
            if best is None or after - before < best[0]:
                best = (after - before, wall - (before + after) // 2)
        _WALL_OFFSET.append(best[1])
    return _WALL_OFFSET[0]


def _decode_strftime(shape: Shape, data: bytes, services) -> str:
    """bpftrace converts nsecs (CLOCK_MONOTONIC) to wall-clock time; every "%f" becomes the
    microseconds first, even the one in "%%f", then libc's strftime formats into 64 bytes:
    a result that does not fit (or is empty) is bpftrace's "strftime returned 0" and "(?)"."""
    import sys
    import time

    ns = _U64.unpack_from(data)[0]
    seconds, rest = divmod(ns + _wall_offset(), 1_000_000_000)
    fmt = shape.extra.replace("%f", f"{rest // 1000:06d}")
    text = time.strftime(fmt, time.localtime(seconds))
    if not text or len(text.encode("utf-8", "surrogateescape")) > _STRFTIME_SIZE - 1:
        print("ERROR: strftime returned 0", file=sys.stderr)
        return "(?)"
    return text


_STRFTIME_SIZE = 64  # bpftrace's strftime buffer, whatever BPFTRACE_STRLEN says


DECODERS: dict[str, Callable] = {
    "int": _decode_int,
    "none": _decode_int,
    "pointer": _decode_pointer,  # a pointer map key part in 0.17 mode (maps.py: map_plan)
    "str": _decode_str,
    "tuple": _decode_tuple,
    "kstack": _decode_kstack,
    "ustack": _decode_ustack,
    "ksym": _decode_ksym,
    "usym": _decode_usym,
    "cgroup_path": _decode_cgroup_path,
    "username": _decode_username,
    "strerror": _decode_strerror,
    "probe": _decode_probe,
    "inet": _decode_inet,
    "buffer": _decode_buffer,
    "bytes": _decode_bytes,
    "macaddr": _decode_macaddr,
    "struct": _decode_struct,
    "strftime": _decode_strftime,
    "syscall_name": _decode_syscall_name,
    "signal_name": _decode_signal_name,
}

# How each shape's values are passed to printf: as integers or as strings.
PRINTF_KIND = {"int": "integer", "none": "integer", "buffer": "buffer"}


def printf_kind(shape: Shape) -> str:
    return PRINTF_KIND.get(shape.kind, "string")


def _as_text(decode: Callable) -> Callable:
    """A decoder giving the rendered text of the Stack ``decode`` gives: printf wants a str."""
    return lambda shape, data, services: decode(shape, data, services).text


# printf arguments that print differently from map keys: stacks, as in map values.
PRINTF_DECODERS = {kind: _as_text(fn) for kind, fn in VALUE_DECODERS.items()}


def printf_decoder(shapes) -> Callable[[bytes, Any], tuple]:
    """Decode printf's arguments laid end to end (stacks rendered for printf)."""
    shapes = tuple(shapes)
    parts, pos = [], 0
    for shape in shapes:
        parts.append((PRINTF_DECODERS.get(shape.kind, DECODERS[shape.kind]), shape, pos))
        pos += shape.size

    def decode_args(data: bytes, services) -> tuple:
        return tuple(fn(s, data[off:off + s.size], services) for fn, s, off in parts)

    return decode_args


def decode(shape: Shape, data: bytes, services) -> Any:
    return DECODERS[shape.kind](shape, data, services)


def print_decoder(shape: Shape) -> Callable[[bytes, Any], tuple]:
    """print(value): one value, printed as a map value is (stacks in it indented as values)."""
    value = decoder(shape)
    return lambda data, services: (value(data, services),)


def decoder(shape: Shape) -> Callable[[bytes, Any], Any]:
    """The decoder of a map value of this shape."""
    fn = VALUE_DECODERS.get(shape.kind) or DECODERS[shape.kind]
    return lambda data, services: fn(shape, data, services)


def key_decoder(shapes) -> Callable[[bytes, Any], tuple]:
    """Decode a map key made of several shapes laid end to end."""
    shapes = tuple(shapes)
    offsets, pos = [], 0
    for shape in shapes:
        offsets.append(pos)
        pos += shape.size

    def decode_key(data: bytes, services) -> tuple:
        return tuple(DECODERS[s.kind](s, data[off:off + s.size], services) for s, off in zip(shapes, offsets))

    return decode_key
