"""Map definitions found in an object: BTF-defined ``.maps``, legacy ``maps``, global data.

Each becomes a ``MapSpec`` (what to create) keyed by where relocations point:
the ELF section index and the symbol's offset in it.  Global data sections
(``.data``, ``.rodata``, ``.bss``, ``.rodata.*``, ``.data.*``) become
single-entry array maps whose value is the section's initial image, as libbpf
does; ``.rodata`` maps are read-only for programs and frozen after load.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from ebpfpy.btf import BTF, Kind
from ebpfpy.sys.consts import MapType

from .reader import STT_OBJECT, ObjectError, RawObject

BPF_F_RDONLY_PROG = 0x80
BPF_F_MMAPABLE = 0x400
OBJ_NAME_LEN = 16
PIN_BY_NAME = 1

# BTF map definition member -> MapSpec attribute, for the __uint(...) members.
_UINT_FIELDS = {
    "type": "map_type", "max_entries": "max_entries", "map_flags": "flags", "key_size": "key_size",
    "value_size": "value_size", "pinning": "pinning", "map_extra": "map_extra", "numa_node": "numa_node",
}
_LEGACY_DEF = struct.Struct("<5I")  # type, key_size, value_size, max_entries, map_flags


@dataclass
class MapSpec:
    name: str
    map_type: int
    key_size: int = 0
    value_size: int = 0
    max_entries: int = 0
    flags: int = 0
    pinning: int = 0
    map_extra: int = 0
    numa_node: int = 0
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    section: str = ""
    shndx: int = 0
    offset: int = 0
    data: bytearray | None = None  # global data: the initial value image
    datasec_id: int = 0
    inner: MapSpec | None = None  # maps of maps: the inner map's definition (``__array(values, ...)``)
    init_slots: dict[int, str] = field(default_factory=dict)  # index -> map (or program) name
    values_offset: int = -1  # where ``values`` starts in the definition (relocations land there)

    @property
    def is_global_data(self) -> bool:
        return self.data is not None

    @property
    def readonly(self) -> bool:
        """Read-only for programs and frozen after load: .rodata* and .kconfig."""
        return self.section.startswith(".rodata") or self.section == ".kconfig"


# Map types libbpf creates without BTF key/value types (their values are fds or have no
# type the kernel could check).
NO_BTF_TYPES = frozenset({
    MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY, MapType.STACK_TRACE, MapType.ARRAY_OF_MAPS,
    MapType.HASH_OF_MAPS, MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.CPUMAP, MapType.XSKMAP,
    MapType.SOCKMAP, MapType.SOCKHASH, MapType.QUEUE, MapType.STACK,
})


def kernel_max_entries(spec: MapSpec) -> int:
    """The max_entries libbpf creates a map with: a perf event array declared without one
    (or with 0) gets one slot per possible CPU; a ring buffer's size is rounded up to a
    power-of-two multiple of the page size.  Anything else is passed as declared (0 too:
    the kernel then says what it thinks of it)."""
    if spec.map_type == MapType.PERF_EVENT_ARRAY and not spec.max_entries:
        from ebpfpy.sys.perf import possible_cpus
        return len(possible_cpus())
    if spec.map_type in (MapType.RINGBUF, MapType.USER_RINGBUF):
        from ebpfpy.maps import ringbuf_size
        return ringbuf_size(spec.max_entries)
    return spec.max_entries


def _sym_name_ok(name: str) -> bool:
    return bool(name) and not name.startswith(".")


def internal_map_name(obj_name: str, section: str) -> str:
    """libbpf's name for a global-data map: a prefix of the object name + the section name."""
    sfx_len = max(7, len(section))
    pfx_len = 0 if "." in section[1:] else min(OBJ_NAME_LEN - sfx_len - 1, len(obj_name))
    name = (obj_name[:max(pfx_len, 0)] + section[:sfx_len])[:OBJ_NAME_LEN - 1]
    return re.sub(r"[^A-Za-z0-9_.]", "_", name)


def _uint_member(btf: BTF, type_id: int, what: str) -> int:
    """``int (*name)[N]`` encodes N: pointer to an array of N elements."""
    t = btf[btf.resolve(type_id)]
    if t.kind != Kind.PTR:
        raise ObjectError(f"map member {what} is not __uint(): not a pointer")
    arr = btf[btf.resolve(t.type)]
    if arr.kind != Kind.ARRAY:
        raise ObjectError(f"map member {what} is not __uint(): not a pointer to an array")
    return arr.nelems


def btf_maps(raw: RawObject) -> list[MapSpec]:
    sec = raw.section_named(".maps")
    if sec is None:
        return []
    btf = raw.btf
    if btf is None:
        raise ObjectError(f"{raw.path}: .maps section without .BTF (compile with -g)")
    try:
        dsid = btf.find(".maps", Kind.DATASEC)
    except KeyError:
        raise ObjectError(f"{raw.path}: no DATASEC .maps in BTF") from None
    syms = {s.name: s for s in raw.symbols_in(sec.index, (STT_OBJECT, 0)) if _sym_name_ok(s.name)}
    out = []
    for vs in btf[dsid].vars:
        var = btf[vs.type]
        sym = syms.get(var.name)
        if sym is None:
            raise ObjectError(f"{raw.path}: map {var.name!r} has no ELF symbol in .maps")
        spec = MapSpec(var.name, 0, section=".maps", shndx=sec.index, offset=sym.value)
        _parse_def(btf, var.type, spec, inner_allowed=True)
        out.append(spec)
    _init_slots(raw, sec, out)
    return out


MAP_IN_MAP = (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)


def _parse_def(btf: BTF, type_id: int, spec: MapSpec, inner_allowed: bool) -> None:
    """Fill ``spec`` from a BTF map definition struct (``__uint``, ``__type``, ``__array``)."""
    what = spec.name
    st = btf[btf.resolve(type_id)]
    if st.kind != Kind.STRUCT:
        raise ObjectError(f"map {what!r}: definition is not a struct")
    values = None
    for m in st.members:
        if m.name in _UINT_FIELDS:
            setattr(spec, _UINT_FIELDS[m.name], _uint_member(btf, m.type, f"{what}.{m.name}"))
        elif m.name in ("key", "value"):
            ptr = btf[btf.resolve(m.type)]
            if ptr.kind != Kind.PTR:
                raise ObjectError(f"map {what!r}: {m.name} is not __type()")
            setattr(spec, f"{m.name}_size", btf.size_of(ptr.type))
            setattr(spec, f"btf_{m.name}_type_id", ptr.type)
        elif m.name == "values":
            values = m
        else:
            raise ObjectError(f"map {what!r}: unknown map attribute {m.name!r}")
    if values is not None:
        _parse_values(btf, spec, values, inner_allowed)
    if spec.map_type == MapType.RINGBUF:
        spec.key_size = spec.value_size = 0


def _parse_values(btf: BTF, spec: MapSpec, m, inner_allowed: bool) -> None:
    """``__array(values, struct inner_def)`` (maps of maps) or ``__array(values, int (void *))``
    (program arrays), as libbpf reads them: the value is a 4-byte id, and a map of maps
    carries its inner map's definition, created as the template the kernel asks for."""
    what = spec.name
    arr = btf[btf.resolve(m.type)]
    ptr = btf[btf.resolve(arr.type)] if arr.kind == Kind.ARRAY else None
    if ptr is None or ptr.kind != Kind.PTR:
        raise ObjectError(f"map {what!r}: values is not __array(values, ...)")
    if spec.value_size not in (0, 4):
        raise ObjectError(f"map {what!r}: a map with values must have 4-byte values, not {spec.value_size}")
    spec.value_size = 4
    spec.btf_value_type_id = 0
    spec.values_offset = m.bit_offset // 8
    target = btf[btf.resolve(ptr.type)]
    if spec.map_type in MAP_IN_MAP:
        if not inner_allowed:
            raise ObjectError(f"map {what!r}: nested maps of maps are not supported (as in libbpf)")
        if target.kind != Kind.STRUCT:
            raise ObjectError(f"map {what!r}: the values of a map of maps are map definitions")
        spec.inner = MapSpec(f"{what}.inner", 0, section=".maps")
        _parse_def(btf, ptr.type, spec.inner, inner_allowed=False)
    elif spec.map_type == MapType.PROG_ARRAY:
        if target.kind != Kind.FUNC_PROTO:
            raise ObjectError(f"map {what!r}: the values of a program array are programs")
    else:
        raise ObjectError(f"map {what!r}: values (__array) is only for maps of maps and program arrays")


def _init_slots(raw: RawObject, sec, specs: list[MapSpec]) -> None:
    """``.values = { [i] = &map_or_prog }``: each pointer is a relocation in ``.maps``."""
    if not sec.relocs:
        return
    maps_syms = {s.name for s in raw.symbols_in(sec.index, (STT_OBJECT, 0))}
    spans = sorted(specs, key=lambda s: s.offset)
    for rel in sec.relocs:
        owner = next((s for s in reversed(spans) if s.offset <= rel.offset), None)
        if owner is None or owner.values_offset < 0 or rel.offset < owner.offset + owner.values_offset:
            raise ObjectError(f"{raw.path}: a relocation in .maps at {rel.offset} is not in a map's values")
        index, rest = divmod(rel.offset - owner.offset - owner.values_offset, 8)
        name = rel.symbol.name
        is_map = rel.symbol.shndx == sec.index and name in maps_syms
        if rest or (owner.map_type == MapType.PROG_ARRAY) == is_map:
            want = "a program" if owner.map_type == MapType.PROG_ARRAY else "a map"
            raise ObjectError(f"map {owner.name!r}: initial value #{index} ({name!r}) is not {want}")
        if owner.max_entries and index >= owner.max_entries:
            raise ObjectError(f"map {owner.name!r}: initial value #{index} is beyond max_entries "
                              f"{owner.max_entries}")
        owner.init_slots[index] = name


def legacy_maps(raw: RawObject) -> list[MapSpec]:
    """``struct bpf_map_def`` records in SEC("maps"), sized by the symbol count (old libbpf style)."""
    sec = raw.section_named("maps")
    if sec is None:
        return []
    syms = [s for s in raw.symbols_in(sec.index, (STT_OBJECT, 0)) if _sym_name_ok(s.name)]
    if not syms:
        return []
    size = len(sec.data) // len(syms)
    if size < _LEGACY_DEF.size:
        raise ObjectError(f"{raw.path}: legacy maps section too small for {len(syms)} definitions")
    out = []
    for s in syms:
        t, k, v, n, f = _LEGACY_DEF.unpack_from(sec.data, s.value)
        out.append(MapSpec(s.name, t, k, v, n, f, section="maps", shndx=sec.index, offset=s.value))
    return out


def is_data_section(name: str) -> bool:
    return name in (".data", ".rodata", ".bss") or name.startswith((".data.", ".rodata.", ".bss."))


def data_maps(raw: RawObject) -> list[MapSpec]:
    out = []
    for sec in raw.sections.values():
        if not is_data_section(sec.name) or not sec.data:
            continue
        dsid = 0
        if raw.btf is not None:
            ids = raw.btf.find_all(sec.name, Kind.DATASEC)
            dsid = ids[0] if ids else 0
        flags = BPF_F_MMAPABLE | (BPF_F_RDONLY_PROG if sec.name.startswith(".rodata") else 0)
        out.append(MapSpec(
            internal_map_name(raw.name, sec.name), MapType.ARRAY, 4, len(sec.data), 1, flags,
            btf_value_type_id=dsid, section=sec.name, shndx=sec.index, offset=0,
            data=bytearray(sec.data), datasec_id=dsid,
        ))
    return out


def all_maps(raw: RawObject) -> list[MapSpec]:
    return btf_maps(raw) + legacy_maps(raw) + data_maps(raw)


@dataclass(frozen=True)
class GlobalVar:
    """One variable of a global data section, located by its DATASEC entry."""
    name: str
    section: str
    offset: int
    size: int
    type_id: int


def global_vars(raw: RawObject, btf: BTF | None) -> dict[str, GlobalVar]:
    """Variables of the data sections, by name (``btf`` must have fixed-up DATASEC offsets)."""
    out: dict[str, GlobalVar] = {}
    if btf is None:
        return out
    for tid in btf.ids():
        if btf.kind_of(tid) != Kind.DATASEC:
            continue
        ds = btf[tid]
        if not is_data_section(ds.name):
            continue
        for vs in ds.vars:
            v = btf[vs.type]
            if v.kind == Kind.VAR:
                out[v.name] = GlobalVar(v.name, ds.name, vs.offset, vs.size, v.type)
    return out


def check_pinned(m, spec: MapSpec, path: str) -> None:
    """libbpf reuses a map pinned by name only when it is the map the object declares
    (``map_is_reuse_compat``): same type, sizes, max_entries, flags and map_extra."""
    from ebpfpy.sys import bpf
    info = bpf.map_info(m)
    want = (spec.map_type, spec.key_size, spec.value_size, kernel_max_entries(spec), spec.flags, spec.map_extra)
    have = (info.type, info.key_size, info.value_size, info.max_entries, info.flags, info.map_extra)
    if want != have:
        m.close()
        fields = ("type", "key_size", "value_size", "max_entries", "map_flags", "map_extra")
        diff = ", ".join(f"{f} {h} (wanted {w})" for f, w, h in zip(fields, want, have) if w != h)
        raise ObjectError(f"couldn't reuse pinned map at {path!r}: parameter mismatch: {diff}")
