"""``Globals``: an object's global variables by name, before load (the initial image)
and after (the map value), typed through BTF."""
from __future__ import annotations

import struct
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING

from ebpfpy.btf import Kind

from .mapdefs import GlobalVar
from .reader import ObjectError

if TYPE_CHECKING:
    from .objfile import BPFObject


class Globals(MutableMapping):
    """Global variables by name: the initial image before load, the map value after.

    Integers (and enums, bools) read and write as ``int``; ``char`` arrays as
    ``bytes`` (NUL padded); anything else as raw ``bytes`` of the variable's size.
    ``value(name)`` reads any variable typed through BTF (structs as dicts, arrays as
    lists, ``char`` arrays as ``str``); assigning a dict, list, ``str`` or float writes
    it typed, checked against the variable's type (``ebpfpy.elf.typedvalues``), and
    ``set_text(name, text)`` reads command-line text by the type first.
    """

    def __init__(self, obj: BPFObject):
        self._obj = obj

    def _var(self, name: str) -> GlobalVar:
        try:
            return self._obj._vars[name]
        except KeyError:
            known = ", ".join(self._obj._vars) or "none"
            raise KeyError(f"{self._obj.path}: no global variable {name!r} (it has: {known})") from None

    def _codec(self, var: GlobalVar):
        btf = self._obj.btf
        t = btf[btf.resolve(var.type_id)]
        if t.kind in (Kind.INT, Kind.ENUM, Kind.ENUM64) and var.size in (1, 2, 4, 8):
            signed = bool(getattr(t, "signed", False))
            return "int", signed
        return "bytes", False

    def _image(self, var: GlobalVar) -> bytes:
        spec = self._obj.map_specs[self._obj._data_map_name(var.section)]
        m = self._obj.maps.get(spec.name) if self._obj.loaded else None
        if m is not None:
            from ebpfpy.sys import bpf
            return bpf.map_lookup_elem(m, struct.pack("<I", 0), spec.value_size)
        return bytes(spec.data)

    def __getitem__(self, name: str):
        var = self._var(name)
        raw = self._image(var)[var.offset:var.offset + var.size]
        kind, signed = self._codec(var)
        if kind == "int":
            return int.from_bytes(raw, "little", signed=signed)
        return raw

    def value(self, name: str):
        """The variable decoded by its BTF type, as ``ebpfpy run`` prints it."""
        from ebpfpy.btf import values
        var = self._var(name)
        return values.decode(self._obj.btf, var.type_id, self._image(var)[var.offset:var.offset + var.size])

    def type_name(self, name: str) -> str:
        return self._obj.btf.describe(self._var(name).type_id)

    def set_text(self, name: str, text: str) -> None:
        """Set a variable from command-line text, read by the variable's type."""
        from .typedvalues import parse_text
        var = self._var(name)
        self[name] = _Typed(parse_text(self._obj.btf, var.type_id, text, name))

    def __setitem__(self, name: str, value) -> None:
        var = self._var(name)
        kind, signed = self._codec(var)
        if isinstance(value, _Typed) or isinstance(value, (dict, list, tuple, str, float)):
            from .typedvalues import encode
            raw = encode(self._obj.btf, var.type_id, getattr(value, "value", value), name)
        elif (isinstance(value, int) and not isinstance(value, bool)) or kind == "int":
            raw = int(value).to_bytes(var.size, "little", signed=signed and int(value) < 0)
        else:
            raw = bytes(value)
            if len(raw) > var.size:
                raise ValueError(f"{name}: {len(raw)} bytes do not fit in {var.size}")
            raw = raw.ljust(var.size, b"\0")
        obj = self._obj
        spec = obj.map_specs[obj._data_map_name(var.section)]
        if not obj.loaded:
            spec.data[var.offset:var.offset + var.size] = raw
            return
        if spec.readonly:
            raise ObjectError(f"{name} is in {var.section}, which is frozen after load")
        image = bytearray(self._image(var))
        image[var.offset:var.offset + var.size] = raw
        from ebpfpy.sys import bpf
        bpf.map_update_elem(obj.maps[spec.name], struct.pack("<I", 0), bytes(image))

    def __delitem__(self, name: str) -> None:
        raise TypeError("global variables cannot be deleted")

    def __iter__(self) -> Iterator[str]:
        return iter(self._obj._vars)

    def __len__(self) -> int:
        return len(self._obj._vars)

    def section_of(self, name: str) -> str:
        return self._var(name).section


class _Typed:
    """A value already read by its type (``set_text``): always encoded through BTF."""

    def __init__(self, value):
        self.value = value
