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
from dataclasses import dataclass

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
        st = btf[btf.resolve(var.type)]
        if st.kind != Kind.STRUCT:
            raise ObjectError(f"map {var.name!r}: definition is not a struct")
        for m in st.members:
            if m.name in _UINT_FIELDS:
                setattr(spec, _UINT_FIELDS[m.name], _uint_member(btf, m.type, f"{var.name}.{m.name}"))
            elif m.name in ("key", "value"):
                ptr = btf[btf.resolve(m.type)]
                if ptr.kind != Kind.PTR:
                    raise ObjectError(f"map {var.name!r}: {m.name} is not __type()")
                setattr(spec, f"{m.name}_size", btf.size_of(ptr.type))
                setattr(spec, f"btf_{m.name}_type_id", ptr.type)
            elif m.name == "values":
                raise ObjectError(f"map {var.name!r}: map-in-map (values) is not supported yet")
            else:
                raise ObjectError(f"map {var.name!r}: unknown map attribute {m.name!r}")
        if spec.map_type == MapType.RINGBUF:
            spec.key_size = spec.value_size = 0
        out.append(spec)
    return out


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
