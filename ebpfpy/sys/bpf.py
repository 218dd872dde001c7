"""One function per bpf() command: Python values in, fds/bytes/dataclasses out.

Deliberately thin, like libbpf's bpf.c: each command's ``union bpf_attr``
member is a table of ``field -> (offset, struct format)`` (offsets from the
uapi header), packed into a zeroed buffer that is exactly as long as the
last field the caller set. Kernels reject non-zero bytes past the fields
they know, so a call that uses only old fields also works on old kernels.
All policy (retries aside from the verifier log, typing, iteration) lives
in the loader layer above.
"""
from __future__ import annotations

import errno as E
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ebpfpy.sys._libc import bpf as _bpf_syscall
from ebpfpy.sys._libc import ffi
from ebpfpy.sys.consts import AttachType, Cmd, LinkType, MapType, ProgType
from ebpfpy.sys.errors import BPFError
from ebpfpy.sys.fd import FD, fd_number
from ebpfpy.sys.layouts import (
    BTF_INFO,
    BTF_LOAD,
    ENABLE_STATS,
    GET_ID,
    INFO,
    ITER_CREATE,
    LINK_CREATE,
    LINK_DETACH,
    LINK_INFO,
    LINK_INFO_SIZE,
    MAP_BATCH,
    MAP_CREATE,
    MAP_ELEM,
    MAP_FREEZE,
    MAP_INFO,
    OBJ,
    PROG_BIND_MAP,
    PROG_INFO,
    PROG_LOAD,
    RAW_TP,
    TEST_RUN,
)

OBJ_NAME_LEN = 16  # BPF_OBJ_NAME_LEN, NUL included
BPF_TAG_SIZE = 8
LOG_BUF_START = 1 << 18  # first verifier-log buffer: 256 KiB
LOG_BUF_MAX = 1 << 30  # the kernel refuses log_size > UINT_MAX >> 2


# --------------------------------------------------------------------------
# memory the attributes point at


class _Memory:
    """Buffers whose addresses go into an attribute; alive as long as this object."""

    def __init__(self) -> None:
        self._keep: list = []

    def put(self, data: bytes | bytearray | None) -> int:
        """Copy ``data`` into C memory and return its address (0 for None/empty)."""
        if not data:
            return 0
        buf = ffi.new("char[]", len(data))
        ffi.memmove(buf, bytes(data), len(data))
        self._keep.append(buf)
        return int(ffi.cast("uintptr_t", buf))

    def out(self, size: int):
        """A zeroed output buffer: (address, cdata) — read it with ``read()``."""
        if size <= 0:
            return 0, None
        buf = ffi.new("char[]", size)
        self._keep.append(buf)
        return int(ffi.cast("uintptr_t", buf)), buf

    @staticmethod
    def read(buf, size: int) -> bytes:
        return bytes(ffi.buffer(buf, size)) if buf is not None and size > 0 else b""

    def cstr(self, text: str | None) -> int:
        return 0 if text is None else self.put(text.encode() + b"\0")


def _sys_bpf(cmd: Cmd, attr: bytearray, size: int) -> int:
    """The raw call: returns the result or raises BPFError naming the command."""
    rc = _bpf_syscall(int(cmd), ffi.from_buffer(attr), size)
    if rc < 0:
        raise _error(-rc, cmd, attr)
    return rc


def _error(code: int, cmd: Cmd, attr: bytearray) -> BPFError:
    """The BPFError for a failed call; a refusal (EPERM, ENOSYS) says why and what fixes it."""
    detail = ""
    if code in (E.EPERM, E.ENOSYS):
        from ebpfpy.sys.privileges import explain_bpf

        detail = explain_bpf(cmd.name, code, attr)
    return BPFError(code, "BPF_" + cmd.name, detail=detail)


def _new_fd(cmd: Cmd, attr: bytearray, size: int) -> FD:
    return FD(_sys_bpf(cmd, attr, size))


def obj_name(name: str) -> bytes:
    """A name the kernel accepts: at most 15 bytes of [A-Za-z0-9_.], NUL-padded."""
    clean = "".join(c if (c.isascii() and c.isalnum()) or c in "_." else "_" for c in name)
    return clean.encode()[: OBJ_NAME_LEN - 1]


def _is_enoent(exc: BPFError) -> bool:
    return exc.errno == E.ENOENT


# --------------------------------------------------------------------------
# maps


def map_create(
    map_type: int,
    key_size: int,
    value_size: int,
    max_entries: int,
    *,
    flags: int = 0,
    name: str = "",
    inner_map_fd: int = 0,
    numa_node: int = 0,
    ifindex: int = 0,
    btf_fd: int = 0,
    btf_key_type_id: int = 0,
    btf_value_type_id: int = 0,
    btf_vmlinux_value_type_id: int = 0,
    map_extra: int = 0,
) -> FD:
    attr, size = MAP_CREATE.pack(
        map_type=int(map_type), key_size=key_size, value_size=value_size,
        max_entries=max_entries, map_flags=int(flags),
        inner_map_fd=fd_number(inner_map_fd) if inner_map_fd else 0,
        numa_node=numa_node, map_name=obj_name(name), map_ifindex=ifindex,
        btf_fd=fd_number(btf_fd) if btf_fd else 0, btf_key_type_id=btf_key_type_id,
        btf_value_type_id=btf_value_type_id,
        btf_vmlinux_value_type_id=btf_vmlinux_value_type_id, map_extra=map_extra,
    )
    return _new_fd(Cmd.MAP_CREATE, attr, size)


def map_lookup_elem(map_fd, key: bytes, value_size: int, flags: int = 0) -> bytes:
    """The value stored at ``key``; BPFError(ENOENT) when there is none."""
    mem = _Memory()
    vaddr, vbuf = mem.out(max(value_size, 1))
    attr, size = MAP_ELEM.pack(map_fd=fd_number(map_fd), key=mem.put(key), value=vaddr, flags=flags)
    _sys_bpf(Cmd.MAP_LOOKUP_ELEM, attr, size)
    return mem.read(vbuf, value_size)


def map_lookup_and_delete_elem(map_fd, key: bytes | None, value_size: int, flags: int = 0) -> bytes:
    """Pop ``key`` (or, for queue/stack maps, the next element when key is None)."""
    mem = _Memory()
    vaddr, vbuf = mem.out(max(value_size, 1))
    attr, size = MAP_ELEM.pack(map_fd=fd_number(map_fd), key=mem.put(key), value=vaddr, flags=flags)
    _sys_bpf(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, attr, size)
    return mem.read(vbuf, value_size)


def map_update_elem(map_fd, key: bytes, value: bytes, flags: int = 0) -> None:
    mem = _Memory()
    attr, size = MAP_ELEM.pack(map_fd=fd_number(map_fd), key=mem.put(key), value=mem.put(value), flags=int(flags))
    _sys_bpf(Cmd.MAP_UPDATE_ELEM, attr, size)


def map_delete_elem(map_fd, key: bytes) -> None:
    mem = _Memory()
    attr, size = MAP_ELEM.pack(map_fd=fd_number(map_fd), key=mem.put(key))
    _sys_bpf(Cmd.MAP_DELETE_ELEM, attr, size)


def map_get_next_key(map_fd, key: bytes | None, key_size: int) -> bytes | None:
    """The key after ``key`` (the first key when None); None at the end of the map."""
    mem = _Memory()
    naddr, nbuf = mem.out(key_size)
    attr, size = MAP_ELEM.pack(map_fd=fd_number(map_fd), key=mem.put(key), value=naddr)
    try:
        _sys_bpf(Cmd.MAP_GET_NEXT_KEY, attr, size)
    except BPFError as exc:
        if _is_enoent(exc):
            return None
        raise
    return mem.read(nbuf, key_size)


def map_freeze(map_fd) -> None:
    attr, size = MAP_FREEZE.pack(map_fd=fd_number(map_fd))
    _sys_bpf(Cmd.MAP_FREEZE, attr, size)


@dataclass(frozen=True)
class BatchResult:
    """One BPF_MAP_LOOKUP(_AND_DELETE)_BATCH call: entries, resume token, end flag."""

    keys: list
    values: list
    token: bytes | None
    done: bool
    key_blob: bytes = b""  # the same entries unsplit; with split=False, keys and values stay empty
    value_blob: bytes = b""


def _batch_token_size(key_size: int) -> int:
    # Hash maps use a u32 bucket index as token, arrays a key: cover both.
    return max(key_size, 8)


def _lookup_batch(cmd: Cmd, map_fd, key_size: int, value_size: int, count: int,
                  token: bytes | None, elem_flags: int, flags: int, split: bool = True) -> BatchResult:
    mem = _Memory()
    tsize = _batch_token_size(key_size)
    out_addr, out_buf = mem.out(tsize)
    kaddr, kbuf = mem.out(key_size * count)
    vaddr, vbuf = mem.out(value_size * count)
    in_addr = mem.put(token.ljust(tsize, b"\0")) if token is not None else 0
    attr, size = MAP_BATCH.pack(in_batch=in_addr, out_batch=out_addr, keys=kaddr, values=vaddr,
                                count=count, map_fd=fd_number(map_fd), elem_flags=elem_flags, flags=flags)
    done = False
    try:
        _sys_bpf(cmd, attr, size)
    except BPFError as exc:
        if not _is_enoent(exc):
            raise
        done = True
    got = MAP_BATCH.unpack(attr, "count")
    keys = mem.read(kbuf, key_size * got)
    values = mem.read(vbuf, value_size * got)
    return BatchResult(
        keys=[keys[i * key_size:(i + 1) * key_size] for i in range(got)] if split else [],
        values=[values[i * value_size:(i + 1) * value_size] for i in range(got)] if split else [],
        token=None if done else mem.read(out_buf, tsize),
        done=done,
        key_blob=keys,
        value_blob=values,
    )


def map_lookup_batch(map_fd, key_size: int, value_size: int, count: int, token: bytes | None = None,
                     *, elem_flags: int = 0, flags: int = 0, split: bool = True) -> BatchResult:
    """Up to ``count`` entries after ``token`` (from the start when None).

    ``value_size`` is the size user space sees per element (for per-CPU maps:
    the 8-rounded value size times the possible CPUs). ENOSPC means a hash
    bucket holds more than ``count`` entries: call again with a larger count.
    ``split=False`` skips cutting the result into per-entry bytes (bulk
    decoders read ``key_blob``/``value_blob``).
    """
    return _lookup_batch(Cmd.MAP_LOOKUP_BATCH, map_fd, key_size, value_size, count, token, elem_flags, flags,
                         split)


def map_lookup_and_delete_batch(map_fd, key_size: int, value_size: int, count: int,
                                token: bytes | None = None, *, elem_flags: int = 0,
                                flags: int = 0) -> BatchResult:
    return _lookup_batch(Cmd.MAP_LOOKUP_AND_DELETE_BATCH, map_fd, key_size, value_size, count,
                         token, elem_flags, flags)


def map_update_batch(map_fd, keys: Sequence[bytes], values: Sequence[bytes], *,
                     elem_flags: int = 0, flags: int = 0) -> int:
    """Store all pairs; returns how many the kernel processed."""
    if len(keys) != len(values):
        raise ValueError("keys and values differ in length")
    if not keys:
        return 0
    mem = _Memory()
    attr, size = MAP_BATCH.pack(keys=mem.put(b"".join(keys)), values=mem.put(b"".join(values)),
                                count=len(keys), map_fd=fd_number(map_fd), elem_flags=elem_flags, flags=flags)
    _sys_bpf(Cmd.MAP_UPDATE_BATCH, attr, size)
    return MAP_BATCH.unpack(attr, "count")


def map_delete_batch(map_fd, keys: Sequence[bytes], *, elem_flags: int = 0, flags: int = 0) -> int:
    if not keys:
        return 0
    mem = _Memory()
    attr, size = MAP_BATCH.pack(keys=mem.put(b"".join(keys)), count=len(keys),
                                map_fd=fd_number(map_fd), elem_flags=elem_flags, flags=flags)
    _sys_bpf(Cmd.MAP_DELETE_BATCH, attr, size)
    return MAP_BATCH.unpack(attr, "count")


# --------------------------------------------------------------------------
# programs


def _with_log(attempt, log_level: int, log_size: int) -> tuple[FD, str]:
    """Run a load that can produce a log, growing the buffer on ENOSPC.

    ``attempt(log_level, addr, size) -> FD`` does one try; a BPFError it
    raises may carry ``_true_size``, the log size the kernel wanted.
    With ``log_level == 0`` the first attempt has no log (cheap and quiet);
    only a failure pays for a second attempt with a log, as libbpf does.
    """
    if log_level == 0:
        try:
            return attempt(0, 0, 0), ""
        except BPFError:
            log_level = 1
    size = max(log_size or LOG_BUF_START, 128)
    while True:
        mem = _Memory()
        addr, buf = mem.out(size)
        try:
            fd = attempt(log_level, addr, size)
            return fd, _cstring(mem.read(buf, size))
        except BPFError as exc:
            log = _cstring(mem.read(buf, size))
            true_size = getattr(exc, "_true_size", 0)
            if exc.errno == E.ENOSPC and size < LOG_BUF_MAX:
                size = min(max(size * 4, true_size + 1), LOG_BUF_MAX)
                continue
            exc.log = log
            raise


def _cstring(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode(errors="replace")


def prog_load_with_log(
    prog_type: int,
    insns: bytes,
    license: str = "GPL",
    *,
    log_level: int = 0,
    log_size: int = 0,
    name: str = "",
    expected_attach_type: int = 0,
    attach_btf_id: int = 0,
    attach_btf_obj_fd: int = 0,
    attach_prog_fd: int = 0,
    prog_btf_fd: int = 0,
    func_info: bytes = b"",
    func_info_rec_size: int = 0,
    line_info: bytes = b"",
    line_info_rec_size: int = 0,
    kern_version: int = 0,
    prog_flags: int = 0,
    prog_ifindex: int = 0,
    fd_array: Sequence[int] | None = None,
) -> tuple[FD, str]:
    """BPF_PROG_LOAD; returns the program fd and the verifier log (empty unless asked for).

    On failure raises ``BPFError`` whose ``.log`` holds the verifier log: a
    load without a log that fails is retried once with one.
    """
    if len(insns) % 8:
        raise ValueError("instruction bytes must be a multiple of 8")
    mem = _Memory()
    if attach_prog_fd and attach_btf_obj_fd:
        raise ValueError("attach_prog_fd and attach_btf_obj_fd share one field")
    common = dict(
        prog_type=int(prog_type), insn_cnt=len(insns) // 8, insns=mem.put(insns),
        license=mem.cstr(license), kern_version=kern_version, prog_flags=int(prog_flags),
        prog_name=obj_name(name), prog_ifindex=prog_ifindex,
        expected_attach_type=int(expected_attach_type or 0),
        prog_btf_fd=fd_number(prog_btf_fd) if prog_btf_fd else 0,
        func_info_rec_size=func_info_rec_size if func_info else 0, func_info=mem.put(func_info),
        func_info_cnt=len(func_info) // func_info_rec_size if func_info else 0,
        line_info_rec_size=line_info_rec_size if line_info else 0, line_info=mem.put(line_info),
        line_info_cnt=len(line_info) // line_info_rec_size if line_info else 0,
        attach_btf_id=attach_btf_id or 0,
        attach_prog_fd=fd_number(attach_prog_fd or attach_btf_obj_fd or 0),
        fd_array=mem.put(struct.pack(f"<{len(fd_array)}i", *fd_array)) if fd_array else 0,
    )

    def attempt(level, addr, size):
        attr, asize = PROG_LOAD.pack(log_level=level, log_size=size, log_buf=addr, **common)
        if addr:  # cover log_true_size (6.4+) so the kernel reports the size it needed
            asize = PROG_LOAD.size
        try:
            return _new_fd(Cmd.PROG_LOAD, attr, asize)
        except BPFError as exc:
            exc._true_size = PROG_LOAD.unpack(attr, "log_true_size")
            raise

    return _with_log(attempt, log_level, log_size)


def prog_load(prog_type: int, insns: bytes, license: str = "GPL", **kwargs) -> FD:
    """BPF_PROG_LOAD; see ``prog_load_with_log`` for the arguments."""
    return prog_load_with_log(prog_type, insns, license, **kwargs)[0]


@dataclass(frozen=True)
class TestRunResult:
    """BPF_PROG_TEST_RUN output: return value, mean duration (ns) and output buffers."""

    __test__ = False  # not a pytest class
    retval: int
    duration: int
    data_out: bytes = b""
    ctx_out: bytes = b""


def prog_test_run(
    prog_fd,
    *,
    data_in: bytes = b"",
    data_size_out: int | None = None,
    ctx_in: bytes = b"",
    ctx_size_out: int = 0,
    repeat: int = 0,
    flags: int = 0,
    cpu: int = 0,
    batch_size: int = 0,
) -> TestRunResult:
    """Run a loaded program on ``data_in``/``ctx_in`` in the kernel.

    ``data_size_out`` defaults to room for ``data_in`` plus 256 bytes (XDP and
    skb programs may grow the packet); when it is too small the kernel
    returns ENOSPC.
    """
    mem = _Memory()
    if data_size_out is None:
        data_size_out = len(data_in) + 256 if data_in else 0
    daddr, dbuf = mem.out(data_size_out)
    caddr, cbuf = mem.out(ctx_size_out)
    attr, size = TEST_RUN.pack(
        prog_fd=fd_number(prog_fd), data_size_in=len(data_in), data_size_out=data_size_out,
        data_in=mem.put(data_in), data_out=daddr, repeat=repeat,
        ctx_size_in=len(ctx_in), ctx_size_out=ctx_size_out, ctx_in=mem.put(ctx_in), ctx_out=caddr,
        flags=int(flags), cpu=cpu, batch_size=batch_size,
    )
    _sys_bpf(Cmd.PROG_TEST_RUN, attr, size)
    retval, duration, dout, cout = TEST_RUN.unpack(attr, "retval", "duration", "data_size_out", "ctx_size_out")
    return TestRunResult(
        retval=retval, duration=duration,
        data_out=mem.read(dbuf, min(dout, data_size_out)),
        ctx_out=mem.read(cbuf, min(cout, ctx_size_out)),
    )


# --------------------------------------------------------------------------
# pinning, ids


def obj_pin(fd, path: str) -> None:
    mem = _Memory()
    attr, size = OBJ.pack(pathname=mem.cstr(str(path)), bpf_fd=fd_number(fd))
    try:
        _sys_bpf(Cmd.OBJ_PIN, attr, size)
    except BPFError as exc:
        exc.detail = exc.detail or str(path)  # which pin: EACCES, EEXIST and EPERM are about the path
        raise


def obj_get(path: str, file_flags: int = 0) -> FD:
    mem = _Memory()
    attr, size = OBJ.pack(pathname=mem.cstr(str(path)), file_flags=int(file_flags))
    try:
        return _new_fd(Cmd.OBJ_GET, attr, size)
    except BPFError as exc:
        exc.detail = exc.detail or str(path)
        raise


def _get_next_id(cmd: Cmd, start_id: int) -> int | None:
    attr, size = GET_ID.pack(start_id=start_id)
    try:
        _sys_bpf(cmd, attr, size)
    except BPFError as exc:
        if _is_enoent(exc):
            return None
        raise
    return GET_ID.unpack(attr, "next_id")


def _get_fd_by_id(cmd: Cmd, obj_id: int, open_flags: int = 0) -> FD:
    attr, size = GET_ID.pack(start_id=obj_id, open_flags=int(open_flags))
    return _new_fd(cmd, attr, size)


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


# --------------------------------------------------------------------------
# object info


def obj_get_info_by_fd(fd, info: bytes | int) -> bytes:
    """BPF_OBJ_GET_INFO_BY_FD with an info struct (bytes, pointers filled in) or a size."""
    mem = _Memory()
    data = bytes(info)  # an int gives that many zero bytes
    addr, buf = mem.out(len(data))
    ffi.memmove(buf, data, len(data))
    attr, size = INFO.pack(bpf_fd=fd_number(fd), info_len=len(data), info=addr)
    _sys_bpf(Cmd.OBJ_GET_INFO_BY_FD, attr, size)
    return mem.read(buf, len(data))


def _name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


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
        try:
            return ProgType(self.type)
        except ValueError:
            return self.type


def prog_info(fd, *, xlated: bool = True) -> ProgInfo:
    """Two calls, like bpftool: the first learns the array lengths, the second fills them."""
    first = obj_get_info_by_fd(fd, PROG_INFO.min_size)
    n_maps, xlen = PROG_INFO.unpack(first, "nr_map_ids", "xlated_prog_len")
    if not xlated:
        xlen = 0
    mem = _Memory()
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
        id=f["id"], type=f["type"], name=_name(f["name"]), tag=f["tag"],
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
        try:
            return MapType(self.type)
        except ValueError:
            return self.type


def map_info(fd) -> MapInfo:
    f = MAP_INFO.unpack_all(obj_get_info_by_fd(fd, MAP_INFO.min_size))
    return MapInfo(
        id=f["id"], type=f["type"], key_size=f["key_size"], value_size=f["value_size"],
        max_entries=f["max_entries"], flags=f["map_flags"], name=_name(f["name"]),
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

    @property
    def type_enum(self):
        try:
            return LinkType(self.type)
        except ValueError:
            return self.type


def link_info(fd) -> LinkInfo:
    raw = obj_get_info_by_fd(fd, LINK_INFO_SIZE)
    f = LINK_INFO.unpack_all(raw)
    tp_name = ""
    if f["type"] == LinkType.RAW_TRACEPOINT and f["tp_name_len"]:
        mem = _Memory()
        n = f["tp_name_len"]
        addr, buf = mem.out(n)
        req = bytearray(LINK_INFO_SIZE)
        struct.pack_into("<QI", req, 16, addr, n)
        obj_get_info_by_fd(fd, bytes(req))
        tp_name = _cstring(mem.read(buf, n))
    tracing = f["type"] == LinkType.TRACING
    return LinkInfo(
        id=f["id"], type=f["type"], prog_id=f["prog_id"], tp_name=tp_name,
        attach_type=f["attach_type"] if tracing else 0,
        target_btf_id=f["target_btf_id"] if tracing else 0, extra=raw[16:],
    )


@dataclass(frozen=True)
class BTFInfo:
    id: int
    size: int
    name: str
    kernel_btf: bool


def btf_info(fd) -> BTFInfo:
    mem = _Memory()
    naddr, nbuf = mem.out(64)
    req = bytearray(BTF_INFO.min_size)
    struct.pack_into("<QI", req, 16, naddr, 64)
    f = BTF_INFO.unpack_all(obj_get_info_by_fd(fd, bytes(req)))
    return BTFInfo(id=f["id"], size=f["btf_size"], name=_cstring(mem.read(nbuf, 64)),
                   kernel_btf=bool(f["kernel_btf"]))


# --------------------------------------------------------------------------
# attachment


def raw_tracepoint_open(name: str | None, prog_fd) -> FD:
    """Attach to a raw tracepoint (or, with name None, a tracing program's BTF target)."""
    mem = _Memory()
    attr, size = RAW_TP.pack(name=mem.cstr(name), prog_fd=fd_number(prog_fd))
    return _new_fd(Cmd.RAW_TRACEPOINT_OPEN, attr, size)


def link_create(prog_fd, target_fd, attach_type: int, *, flags: int = 0, target_btf_id: int = 0,
                bpf_cookie: int = 0, tracing_cookie: int = 0, relative_fd: int = 0,
                expected_revision: int = 0) -> FD:
    """BPF_LINK_CREATE for perf events (``bpf_cookie``), tracing/iter targets, and the
    fd/ifindex targets: cgroups (a cgroup directory fd), XDP, tcx and netkit (an ifindex as
    ``target_fd``; ``relative_fd``/``expected_revision`` place a tcx/netkit program among others)."""
    if bpf_cookie and attach_type != AttachType.PERF_EVENT:
        raise ValueError("bpf_cookie is only for BPF_PERF_EVENT links")
    if attach_type == AttachType.PERF_EVENT:
        extra = {"bpf_cookie": bpf_cookie}
    elif relative_fd or expected_revision:
        extra = {"relative_fd": fd_number(relative_fd), "expected_revision": expected_revision}
    else:
        extra = {"target_btf_id": target_btf_id, "tracing_cookie": tracing_cookie}
    attr, size = LINK_CREATE.pack(
        prog_fd=fd_number(prog_fd), target_fd=fd_number(target_fd) if target_fd is not None else 0,
        attach_type=int(attach_type), flags=flags, **extra,
    )
    return _new_fd(Cmd.LINK_CREATE, attr, size)


def link_create_uprobe_multi(prog_fd, path: str, offsets: Sequence[int], *,
                             ref_ctr_offsets: Sequence[int] | None = None, cookies: Sequence[int] | None = None,
                             flags: int = 0, pid: int = 0) -> FD:
    """BPF_LINK_CREATE with attach type BPF_TRACE_UPROBE_MULTI (6.6+): one link for uprobes at
    every file offset of ``path`` (``flags`` BPF_F_UPROBE_MULTI_RETURN: uretprobes), only in
    process ``pid`` when non-zero (0: every process; passed as given otherwise, so a feature probe
    can send an invalid one). ``ref_ctr_offsets`` and ``cookies`` have one entry per offset."""
    n = len(offsets)
    if not n:
        raise ValueError("uprobe_multi needs at least one offset")
    for name, seq in (("ref_ctr_offsets", ref_ctr_offsets), ("cookies", cookies)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} needs one entry per offset ({len(seq)} != {n})")
    mem = _Memory()
    attr, size = LINK_CREATE.pack(
        prog_fd=fd_number(prog_fd), attach_type=int(AttachType.TRACE_UPROBE_MULTI), flags=0,
        uprobe_multi_path=mem.cstr(path), uprobe_multi_offsets=mem.put(struct.pack(f"<{n}Q", *offsets)),
        uprobe_multi_ref_ctr_offsets=mem.put(struct.pack(f"<{n}Q", *ref_ctr_offsets)) if ref_ctr_offsets else 0,
        uprobe_multi_cookies=mem.put(struct.pack(f"<{n}Q", *cookies)) if cookies else 0,
        uprobe_multi_cnt=n, uprobe_multi_flags=flags, uprobe_multi_pid=pid & 0xFFFFFFFF,
    )
    return _new_fd(Cmd.LINK_CREATE, attr, size)


def link_create_iter(prog_fd, iter_info: bytes = b"") -> FD:
    """BPF_LINK_CREATE with attach type BPF_TRACE_ITER: an iterator link; ``iter_info`` is a
    ``union bpf_iter_link_info`` (a map fd for ``bpf_map_elem`` iterators, a tid/pid for task
    iterators), empty for the default (every object)."""
    mem = _Memory()
    attr, size = LINK_CREATE.pack(prog_fd=fd_number(prog_fd), target_fd=0, attach_type=int(AttachType.TRACE_ITER),
                                  flags=0, iter_info=mem.put(iter_info), iter_info_len=len(iter_info))
    return _new_fd(Cmd.LINK_CREATE, attr, size)


def iter_create(link_fd) -> FD:
    """BPF_ITER_CREATE: a new read-only fd over an iterator link; each read runs the program."""
    attr, size = ITER_CREATE.pack(link_fd=fd_number(link_fd), flags=0)
    return _new_fd(Cmd.ITER_CREATE, attr, size)


def link_create_kprobe_multi(prog_fd, *, syms: Sequence[str] = (), addrs: Sequence[int] = (),
                             cookies: Sequence[int] | None = None, flags: int = 0) -> FD:
    """BPF_LINK_CREATE with attach type BPF_TRACE_KPROBE_MULTI (5.18+): one link for kprobes
    on every kernel function in ``syms`` (names) or ``addrs`` (addresses), not both;
    ``flags`` BPF_F_KPROBE_MULTI_RETURN: kretprobes. ``cookies``: one per function."""
    n = len(syms) or len(addrs)
    if not n or (syms and addrs):
        raise ValueError("kprobe_multi needs symbols or addresses (one of the two)")
    if cookies is not None and len(cookies) != n:
        raise ValueError(f"cookies needs one entry per function ({len(cookies)} != {n})")
    mem = _Memory()
    sym_ptrs = struct.pack(f"<{n}Q", *(mem.cstr(s) for s in syms)) if syms else b""
    attr, size = LINK_CREATE.pack(
        prog_fd=fd_number(prog_fd), attach_type=int(AttachType.TRACE_KPROBE_MULTI), flags=0,
        kprobe_multi_flags=flags, kprobe_multi_cnt=n, kprobe_multi_syms=mem.put(sym_ptrs),
        kprobe_multi_addrs=mem.put(struct.pack(f"<{n}Q", *addrs)) if addrs else 0,
        kprobe_multi_cookies=mem.put(struct.pack(f"<{n}Q", *cookies)) if cookies else 0,
    )
    return _new_fd(Cmd.LINK_CREATE, attr, size)


def link_detach(link_fd) -> None:
    attr, size = LINK_DETACH.pack(link_fd=fd_number(link_fd))
    _sys_bpf(Cmd.LINK_DETACH, attr, size)


def prog_bind_map(prog_fd, map_fd, flags: int = 0) -> None:
    """BPF_PROG_BIND_MAP: keep a map alive with a program that does not reference it in code."""
    attr, size = PROG_BIND_MAP.pack(prog_fd=fd_number(prog_fd), map_fd=fd_number(map_fd), flags=flags)
    _sys_bpf(Cmd.PROG_BIND_MAP, attr, size)


def enable_stats(stats_type: int = 0) -> FD:
    """BPF_ENABLE_STATS: run-time accounting stays on while the returned fd is open."""
    attr, size = ENABLE_STATS.pack(type=stats_type)
    return _new_fd(Cmd.ENABLE_STATS, attr, size)


# --------------------------------------------------------------------------
# BTF


def btf_load_with_log(data: bytes, *, log_level: int = 0, log_size: int = 0) -> tuple[FD, str]:
    """BPF_BTF_LOAD; on failure the BPFError carries the BTF verifier log."""
    mem = _Memory()
    addr = mem.put(data)

    def attempt(level, log_addr, size):
        attr, asize = BTF_LOAD.pack(btf=addr, btf_size=len(data), btf_log_buf=log_addr,
                                    btf_log_size=size, btf_log_level=level)
        if log_addr:
            asize = BTF_LOAD.size
        try:
            return _new_fd(Cmd.BTF_LOAD, attr, asize)
        except BPFError as exc:
            exc._true_size = BTF_LOAD.unpack(attr, "btf_log_true_size")
            raise

    return _with_log(attempt, log_level, log_size)


def btf_load(data: bytes, *, log_level: int = 0, log_size: int = 0) -> FD:
    return btf_load_with_log(data, log_level=log_level, log_size=log_size)[0]
