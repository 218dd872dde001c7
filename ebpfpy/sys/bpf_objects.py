"""The commands of bpf() that work on any kind of object: pin and get, ids, and object info.

Info comes back parsed (``ProgInfo``, ``MapInfo``, ``LinkInfo``, ``BTFInfo``); where the
info struct points at arrays (a program's map ids and xlated code, a raw tracepoint link's
name, a BTF object's name) a first call learns their lengths, as bpftool does.
``ebpfpy.sys.bpf`` re-exports every name.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from ebpfpy.sys.bpf_call import AttrMemory, bpf_call, bpf_call_fd, cstring, is_enoent
from ebpfpy.sys.consts import Cmd, LinkType, MapType, ProgType
from ebpfpy.sys.errors import BPFError
from ebpfpy.sys.fd import FD, fd_number
from ebpfpy.sys.layouts import (
    BTF_INFO,
    GET_ID,
    INFO,
    LINK_INFO,
    LINK_INFO_DETAILS,
    LINK_INFO_SIZE,
    MAP_INFO,
    OBJ,
    PROG_INFO,
)


def obj_pin(fd, path: str) -> None:
    mem = AttrMemory()
    attr, size = OBJ.pack(pathname=mem.cstr(str(path)), bpf_fd=fd_number(fd))
    try:
        bpf_call(Cmd.OBJ_PIN, attr, size)
    except BPFError as exc:
        exc.detail = exc.detail or str(path)  # which pin: EACCES, EEXIST and EPERM are about the path
        raise


def obj_get(path: str, file_flags: int = 0) -> FD:
    mem = AttrMemory()
    attr, size = OBJ.pack(pathname=mem.cstr(str(path)), file_flags=int(file_flags))
    try:
        return bpf_call_fd(Cmd.OBJ_GET, attr, size)
    except BPFError as exc:
        exc.detail = exc.detail or str(path)
        raise


def _get_next_id(cmd: Cmd, start_id: int) -> int | None:
    attr, size = GET_ID.pack(start_id=start_id)
    try:
        bpf_call(cmd, attr, size)
    except BPFError as exc:
        if is_enoent(exc):
            return None
        raise
    return GET_ID.unpack(attr, "next_id")


def _get_fd_by_id(cmd: Cmd, obj_id: int, open_flags: int = 0) -> FD:
    attr, size = GET_ID.pack(start_id=obj_id, open_flags=int(open_flags))
    return bpf_call_fd(cmd, attr, size)


def prog_get_next_id(start_id: int = 0) -> int | None:
    return _get_next_id(Cmd.PROG_GET_NEXT_ID, start_id)


def map_get_next_id(start_id: int = 0) -> int | None:
    return _get_next_id(Cmd.MAP_GET_NEXT_ID, start_id)


def link_get_next_id(start_id: int = 0) -> int | None:
    return _get_next_id(Cmd.LINK_GET_NEXT_ID, start_id)


def btf_get_next_id(start_id: int = 0) -> int | None:
    return _get_next_id(Cmd.BTF_GET_NEXT_ID, start_id)


def prog_get_fd_by_id(prog_id: int, open_flags: int = 0) -> FD:
    return _get_fd_by_id(Cmd.PROG_GET_FD_BY_ID, prog_id, open_flags)


def map_get_fd_by_id(map_id: int, open_flags: int = 0) -> FD:
    return _get_fd_by_id(Cmd.MAP_GET_FD_BY_ID, map_id, open_flags)


def link_get_fd_by_id(link_id: int, open_flags: int = 0) -> FD:
    return _get_fd_by_id(Cmd.LINK_GET_FD_BY_ID, link_id, open_flags)


def btf_get_fd_by_id(btf_id: int, open_flags: int = 0) -> FD:
    return _get_fd_by_id(Cmd.BTF_GET_FD_BY_ID, btf_id, open_flags)


def iter_ids(next_id_fn) -> Iterable[int]:
    """All ids of one object kind, in order (``iter_ids(prog_get_next_id)``)."""
    cur = 0
    while True:
        nxt = next_id_fn(cur)
        if nxt is None:
            return
        yield nxt
        cur = nxt


def obj_get_info_by_fd(fd, info: bytes | int) -> bytes:
    """BPF_OBJ_GET_INFO_BY_FD with an info struct (bytes, pointers filled in) or a size."""
    mem = AttrMemory()
    data = bytes(info)  # an int gives that many zero bytes
    addr, buf = mem.inout(data)
    attr, size = INFO.pack(bpf_fd=fd_number(fd), info_len=len(data), info=addr)
    bpf_call(Cmd.OBJ_GET_INFO_BY_FD, attr, size)
    return mem.read(buf, len(data))


def _member_or_int(enum_type, value: int):
    """The enum member for a kernel's number, or the number itself when this ebpfpy is older than
    the kernel (a type added since): info is read, never refused, for what we cannot name."""
    try:
        return enum_type(value)
    except ValueError:
        return value


@dataclass(frozen=True)
class ProgInfo:
    """Parsed ``struct bpf_prog_info`` (plus the arrays it points at)."""

    id: int
    type: int
    name: str
    tag: bytes
    xlated: bytes
    jited_len: int
    xlated_len: int
    verified_insns: int
    map_ids: tuple
    load_time: int  # ns since boot
    created_by_uid: int
    btf_id: int
    gpl_compatible: bool
    run_time_ns: int
    run_cnt: int
    recursion_misses: int
    attach_btf_obj_id: int
    attach_btf_id: int

    @property
    def tag_hex(self) -> str:
        return self.tag.hex()

    @property
    def type_enum(self):
        return _member_or_int(ProgType, self.type)


def prog_info(fd, *, xlated: bool = True) -> ProgInfo:
    """Two calls, like bpftool: the first learns the array lengths, the second fills them."""
    first = obj_get_info_by_fd(fd, PROG_INFO.min_size)
    n_maps, xlen = PROG_INFO.unpack(first, "nr_map_ids", "xlated_prog_len")
    if not xlated:
        xlen = 0
    mem = AttrMemory()
    maddr, mbuf = mem.out(4 * n_maps)
    xaddr, xbuf = mem.out(xlen)
    req = bytearray(PROG_INFO.min_size)
    struct.pack_into("<IQ", req, 52, n_maps, maddr)
    struct.pack_into("<I", req, 20, xlen)
    struct.pack_into("<Q", req, 32, xaddr)
    raw = obj_get_info_by_fd(fd, bytes(req)) if (n_maps or xlen) else first
    f = PROG_INFO.unpack_all(raw)
    n_maps = min(n_maps, f["nr_map_ids"])
    return ProgInfo(
        id=f["id"], type=f["type"], name=cstring(f["name"]), tag=f["tag"],
        xlated=mem.read(xbuf, min(xlen, f["xlated_prog_len"])) if xlen else b"",
        jited_len=f["jited_prog_len"], xlated_len=f["xlated_prog_len"],
        verified_insns=f["verified_insns"],
        map_ids=struct.unpack(f"<{n_maps}I", mem.read(mbuf, 4 * n_maps)) if n_maps else (),
        load_time=f["load_time"], created_by_uid=f["created_by_uid"], btf_id=f["btf_id"],
        gpl_compatible=bool(f["gpl_compatible"] & 1), run_time_ns=f["run_time_ns"],
        run_cnt=f["run_cnt"], recursion_misses=f["recursion_misses"],
        attach_btf_obj_id=f["attach_btf_obj_id"], attach_btf_id=f["attach_btf_id"],
    )


@dataclass(frozen=True)
class MapInfo:
    """Parsed ``struct bpf_map_info``."""

    id: int
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    name: str
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int
    btf_vmlinux_value_type_id: int
    map_extra: int

    @property
    def type_enum(self):
        return _member_or_int(MapType, self.type)


def map_info(fd) -> MapInfo:
    f = MAP_INFO.unpack_all(obj_get_info_by_fd(fd, MAP_INFO.min_size))
    return MapInfo(
        id=f["id"], type=f["type"], key_size=f["key_size"], value_size=f["value_size"],
        max_entries=f["max_entries"], flags=f["map_flags"], name=cstring(f["name"]),
        btf_id=f["btf_id"], btf_key_type_id=f["btf_key_type_id"],
        btf_value_type_id=f["btf_value_type_id"],
        btf_vmlinux_value_type_id=f["btf_vmlinux_value_type_id"], map_extra=f["map_extra"],
    )


@dataclass(frozen=True)
class LinkInfo:
    """Parsed ``struct bpf_link_info``: the common header plus the raw type-specific union."""

    id: int
    type: int
    prog_id: int
    tp_name: str = ""  # raw_tracepoint links
    attach_type: int = 0  # tracing links
    target_btf_id: int = 0
    extra: bytes = field(default=b"", repr=False)  # the union, for types not parsed here
    # the union's fields by name for the types in layouts.LINK_INFO_DETAILS: netns links
    # ({netns_ino, attach_type}), netfilter links ({pf, hooknum, priority, flags}), tcx and
    # netkit links ({ifindex, attach_type})
    details: dict = field(default_factory=dict)

    @property
    def type_enum(self):
        return _member_or_int(LinkType, self.type)


def link_info(fd) -> LinkInfo:
    raw = obj_get_info_by_fd(fd, LINK_INFO_SIZE)
    f = LINK_INFO.unpack_all(raw)
    tp_name = ""
    if f["type"] == LinkType.RAW_TRACEPOINT and f["tp_name_len"]:
        mem = AttrMemory()
        n = f["tp_name_len"]
        addr, buf = mem.out(n)
        req = bytearray(LINK_INFO_SIZE)
        struct.pack_into("<QI", req, 16, addr, n)
        obj_get_info_by_fd(fd, bytes(req))
        tp_name = cstring(mem.read(buf, n))
    tracing = f["type"] == LinkType.TRACING
    return LinkInfo(
        id=f["id"], type=f["type"], prog_id=f["prog_id"], tp_name=tp_name,
        attach_type=f["attach_type"] if tracing else 0,
        target_btf_id=f["target_btf_id"] if tracing else 0, extra=raw[16:],
        details=LINK_INFO_DETAILS[f["type"]].unpack_all(raw) if f["type"] in LINK_INFO_DETAILS else {},
    )


@dataclass(frozen=True)
class BTFInfo:
    id: int
    size: int
    name: str
    kernel_btf: bool


def btf_info(fd) -> BTFInfo:
    mem = AttrMemory()
    naddr, nbuf = mem.out(64)
    req = bytearray(BTF_INFO.min_size)
    struct.pack_into("<QI", req, 16, naddr, 64)
    f = BTF_INFO.unpack_all(obj_get_info_by_fd(fd, bytes(req)))
    return BTFInfo(id=f["id"], size=f["btf_size"], name=cstring(mem.read(nbuf, 64)),
                   kernel_btf=bool(f["kernel_btf"]))

