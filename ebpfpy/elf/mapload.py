"""Map creation for a BPF object, as libbpf creates its maps.

``create_maps`` runs at load: the ``.kconfig`` image, maps pinned by name (reused when they
match), each map with BTF key/value types where the type allows them (again without them if
the kernel refuses), maps of maps with their inner template (the declared ``__array(values,
...)`` definition, or a map given with ``set_inner_map_fd`` as libbpf's
``bpf_map__set_inner_map_fd``), global data with its initial image (frozen when read-only),
then the initial slots of maps of maps.  ``Maps`` is ``obj.maps``.
"""
from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING, Any

from ebpfpy.sys.consts import MapType

from .externs import KCONFIG_SEC, kconfig_image
from .mapdefs import (
    MAP_IN_MAP,
    NO_BTF_TYPES,
    PIN_BY_NAME,
    MapSpec,
    check_pinned,
    internal_map_name,
    kernel_max_entries,
)
from .reader import LoadError, ObjectError

if TYPE_CHECKING:
    from ebpfpy.maps import Map

    from .objfile import BPFObject


class Maps(dict):
    """Loaded maps by name; global-data maps also answer to their section name
    (``obj.maps[".data"]`` as well as libbpf's ``obj.maps["myprog.data"]``)."""

    def __init__(self, obj: BPFObject):
        super().__init__()
        self._obj = obj

    def __missing__(self, key: str):
        for spec in self._obj.map_specs.values():
            if spec.is_global_data and spec.section == key and spec.name in self:
                return self[spec.name]
        state = "" if self._obj.loaded else " (the object is not loaded yet: see map_specs)"
        raise KeyError(f"no map {key!r}{state}")

    def __eq__(self, other) -> bool:
        return dict.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]


def create_maps(obj: BPFObject, pin_root: str) -> None:
    """Every map of ``obj`` (into ``obj.maps``), then the initial slots of its maps of maps."""
    if obj._kconfig:
        image = kconfig_image(obj.btf, obj._kconfig, obj.path)
        obj.map_specs[internal_map_name(obj.name, KCONFIG_SEC)].data[:] = image
    from ebpfpy.maps import Map
    from ebpfpy.sys import bpf
    created = []
    for spec in obj.map_specs.values():
        pin_path = os.path.join(pin_root, spec.name) if spec.pinning == PIN_BY_NAME else None
        codecs = map_codecs(obj, spec)
        if pin_path and os.path.exists(pin_path):
            pinned = Map.from_pin(pin_path, **codecs)
            check_pinned(pinned, spec, pin_path)
            obj.maps[spec.name] = pinned
            continue
        max_entries = kernel_max_entries(spec)
        fd = _create_outer(obj, spec) if spec.map_type in MAP_IN_MAP else create_map(obj, spec)
        # exactly what the object asked for (no Map.create defaults), as libbpf creates it
        m = Map._owning(fd, spec.map_type, spec.key_size, spec.value_size, max_entries,
                        name=spec.name, flags=spec.flags, **codecs)
        obj.maps[spec.name] = m
        created.append(spec)
        if spec.is_global_data:
            bpf.map_update_elem(m, struct.pack("<I", 0), bytes(spec.data))
            if spec.readonly:
                bpf.map_freeze(m)
        if pin_path:
            bpf.obj_pin(m, pin_path)
    for spec in created:  # maps of maps: their initial inner maps, now that all exist
        if spec.init_slots and spec.map_type in MAP_IN_MAP:
            fill_slots(obj, spec, obj.maps)


def _create_outer(obj: BPFObject, spec: MapSpec):
    """A map of maps: the kernel takes the inner maps' shape from a template map's fd."""
    given = obj.inner_map_fds.get(spec.name)
    if given is not None:
        return create_map(obj, spec, inner_map_fd=given)
    if spec.inner is None:
        raise LoadError(f"{obj.path}: map {spec.name!r} is a map of maps without an inner map: declare it "
                        "with __array(values, ...) or call set_inner_map_fd() before load")
    inner = create_map(obj, spec.inner)
    try:
        return create_map(obj, spec, inner_map_fd=inner)
    finally:
        inner.close()  # only a template: the kernel keeps what it needs


def create_map(obj: BPFObject, spec: MapSpec, inner_map_fd=None):
    """One map as libbpf creates it: with BTF key/value types where the type allows,
    again without them if the kernel refuses those."""
    from ebpfpy.sys import bpf
    from ebpfpy.sys.errors import BPFError
    from ebpfpy.sys.fd import fd_number
    max_entries = kernel_max_entries(spec)
    args = {"name": spec.name, "flags": spec.flags, "map_extra": spec.map_extra,
            "numa_node": spec.numa_node,
            "inner_map_fd": fd_number(inner_map_fd) if inner_map_fd is not None else 0}  # a Map can be falsy
    typed = spec.map_type not in NO_BTF_TYPES and (spec.btf_value_type_id or spec.btf_key_type_id)
    if obj.btf_fd is not None and typed:
        try:
            return bpf.map_create(spec.map_type, spec.key_size, spec.value_size, max_entries,
                                  btf_fd=obj.btf_fd, btf_key_type_id=spec.btf_key_type_id,
                                  btf_value_type_id=spec.btf_value_type_id, **args)
        except BPFError:
            pass  # like libbpf: retry without type info
    try:
        return bpf.map_create(spec.map_type, spec.key_size, spec.value_size, max_entries, **args)
    except BPFError as e:
        hint = " (it has no max_entries)" if not max_entries else ""
        raise LoadError(f"{obj.path}: creating map {spec.name!r} failed: "
                        f"{e.strerror} [{e.errno_name}]{hint}") from None


def fill_slots(obj: BPFObject, spec: MapSpec, sources: dict) -> None:
    """``.values = {[i] = &x}``: slot i of a map of maps (or program array) holds x's fd."""
    from ebpfpy.sys import bpf
    from ebpfpy.sys.errors import BPFError
    for index, name in sorted(spec.init_slots.items()):
        target = sources.get(name)
        if target is None or getattr(target, "program", target) is None:
            if spec.map_type == MapType.PROG_ARRAY:
                continue  # a program not loaded (autoload off): its slot stays empty
            raise LoadError(f"{obj.path}: map {spec.name!r}: initial value #{index} names {name!r}, "
                            "which is not loaded")
        fd = target.program.fd if hasattr(target, "program") else target.fd
        key = index.to_bytes(spec.key_size, "little")
        try:
            bpf.map_update_elem(obj.maps[spec.name], key, struct.pack("<I", fd))
        except BPFError as e:
            raise LoadError(f"{obj.path}: map {spec.name!r}: setting initial value #{index} ({name!r}) "
                            f"failed: {e.strerror} [{e.errno_name}]") from None


def map_codecs(obj: BPFObject, spec: MapSpec, codec: Any = None) -> dict:
    """key=/value= codecs from the map's BTF types: ``obj.maps["events"][pid]`` gives a
    dict of the struct's members.  Global-data maps stay raw (``globals`` is their view).
    ``codec`` is the class to make them with (default ``ebpfpy.maps.Codec``; ``ebpfpy.vm``
    passes its own)."""
    from ebpfpy.btf import values
    from ebpfpy.maps import Codec
    codec = codec or Codec
    out = {}
    if obj.btf is None or spec.is_global_data:
        return out
    btf = obj.btf
    for which, tid, size in (("key", spec.btf_key_type_id, spec.key_size),
                             ("value", spec.btf_value_type_id, spec.value_size)):
        if tid and btf.size_of(tid) == size:
            out[which] = codec(size, lambda v, t=tid: values.encode(btf, t, v),
                               lambda b, t=tid: values.decode(btf, t, b))
    return out


def set_inner_map_fd(obj: BPFObject, name: str, inner) -> None:
    """libbpf's ``bpf_map__set_inner_map_fd``: before load, map of maps ``name`` is created
    with ``inner`` (a ``Map``, an ``FD`` or an fd number) as its template instead of its
    declared ``__array(values, ...)`` definition; the caller keeps owning ``inner``."""
    spec = obj.map_specs.get(name)
    if spec is None:
        raise KeyError(f"{obj.path}: no map {name!r} (it has: {', '.join(obj.map_specs) or 'none'})")
    if spec.map_type not in MAP_IN_MAP:
        raise ObjectError(f"{obj.path}: map {name!r} is not a map of maps: it takes no inner map")
    if obj.loaded:
        raise ObjectError(f"{obj.path}: map {name!r}: set the inner map before load()")
    if name in obj.inner_map_fds:
        raise ObjectError(f"{obj.path}: map {name!r}: inner map already specified")
    obj.inner_map_fds[name] = inner


def create_inner_map(obj: BPFObject, name: str, *, map_name: str | None = None) -> Map:
    """A new map that fits in map of maps ``name``: the declared inner definition (with its
    BTF key/value codecs), or the shape of the template given with ``set_inner_map_fd``.
    The caller owns it; ``obj.maps[name][key] = it`` puts it in a slot."""
    from ebpfpy.maps import Map
    from ebpfpy.sys import bpf
    spec = obj.map_specs.get(name)
    if spec is None or spec.map_type not in MAP_IN_MAP:
        raise ObjectError(f"{obj.path}: {name!r} is not a map of maps of this object")
    given = obj.inner_map_fds.get(name)
    if given is not None:
        i = bpf.map_info(given)
        return Map.create(i.type, i.key_size, i.value_size, i.max_entries, flags=i.flags,
                          map_extra=i.map_extra, name=map_name or i.name)
    inner = spec.inner
    if inner is None:
        raise ObjectError(f"{obj.path}: map {name!r} declares no inner map (and none was set)")
    return Map.create(inner.map_type, inner.key_size, inner.value_size, kernel_max_entries(inner),
                      flags=inner.flags, map_extra=inner.map_extra, name=map_name or inner.name[:15],
                      **map_codecs(obj, inner))
