"""The map commands of bpf(): create, single elements, freeze, and the batch forms.

Split from ``ebpfpy.sys.bpf`` (which re-exports every name here) so that each module holds
one kind of command; the dict-like ``Map`` above them lives in ``ebpfpy.maps``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ebpfpy.sys.bpf_call import AttrMemory, bpf_call, bpf_call_fd, is_enoent, obj_name
from ebpfpy.sys.consts import Cmd
from ebpfpy.sys.errors import BPFError
from ebpfpy.sys.fd import FD, fd_number
from ebpfpy.sys.layouts import MAP_BATCH, MAP_CREATE, MAP_ELEM, MAP_FREEZE


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
    return bpf_call_fd(Cmd.MAP_CREATE, attr, size)


def map_lookup_elem(map_fd, key: bytes, value_size: int, flags: int = 0) -> bytes:
    """The value stored at ``key``; BPFError(ENOENT) when there is none."""
    mem = AttrMemory()
    vaddr, vbuf = mem.out(max(value_size, 1))
    attr, size = MAP_ELEM.pack(map_fd=fd_number(map_fd), key=mem.put(key), value=vaddr, flags=flags)
    bpf_call(Cmd.MAP_LOOKUP_ELEM, attr, size)
    return mem.read(vbuf, value_size)


def map_lookup_and_delete_elem(map_fd, key: bytes | None, value_size: int, flags: int = 0) -> bytes:
    """Pop ``key`` (or, for queue/stack maps, the next element when key is None)."""
    mem = AttrMemory()
    vaddr, vbuf = mem.out(max(value_size, 1))
    attr, size = MAP_ELEM.pack(map_fd=fd_number(map_fd), key=mem.put(key), value=vaddr, flags=flags)
    bpf_call(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, attr, size)
    return mem.read(vbuf, value_size)


def map_update_elem(map_fd, key: bytes, value: bytes, flags: int = 0) -> None:
    mem = AttrMemory()
    attr, size = MAP_ELEM.pack(map_fd=fd_number(map_fd), key=mem.put(key), value=mem.put(value), flags=int(flags))
    bpf_call(Cmd.MAP_UPDATE_ELEM, attr, size)


def map_delete_elem(map_fd, key: bytes) -> None:
    mem = AttrMemory()
    attr, size = MAP_ELEM.pack(map_fd=fd_number(map_fd), key=mem.put(key))
    bpf_call(Cmd.MAP_DELETE_ELEM, attr, size)


def map_get_next_key(map_fd, key: bytes | None, key_size: int) -> bytes | None:
    """The key after ``key`` (the first key when None); None at the end of the map."""
    mem = AttrMemory()
    naddr, nbuf = mem.out(key_size)
    attr, size = MAP_ELEM.pack(map_fd=fd_number(map_fd), key=mem.put(key), value=naddr)
    try:
        bpf_call(Cmd.MAP_GET_NEXT_KEY, attr, size)
    except BPFError as exc:
        if is_enoent(exc):
            return None
        raise
    return mem.read(nbuf, key_size)


def map_freeze(map_fd) -> None:
    attr, size = MAP_FREEZE.pack(map_fd=fd_number(map_fd))
    bpf_call(Cmd.MAP_FREEZE, attr, size)


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
    mem = AttrMemory()
    tsize = _batch_token_size(key_size)
    out_addr, out_buf = mem.out(tsize)
    kaddr, kbuf = mem.out(key_size * count)
    vaddr, vbuf = mem.out(value_size * count)
    in_addr = mem.put(token.ljust(tsize, b"\0")) if token is not None else 0
    attr, size = MAP_BATCH.pack(in_batch=in_addr, out_batch=out_addr, keys=kaddr, values=vaddr,
                                count=count, map_fd=fd_number(map_fd), elem_flags=elem_flags, flags=flags)
    done = False
    try:
        bpf_call(cmd, attr, size)
    except BPFError as exc:
        if not is_enoent(exc):
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
    mem = AttrMemory()
    attr, size = MAP_BATCH.pack(keys=mem.put(b"".join(keys)), values=mem.put(b"".join(values)),
                                count=len(keys), map_fd=fd_number(map_fd), elem_flags=elem_flags, flags=flags)
    bpf_call(Cmd.MAP_UPDATE_BATCH, attr, size)
    return MAP_BATCH.unpack(attr, "count")


def map_delete_batch(map_fd, keys: Sequence[bytes], *, elem_flags: int = 0, flags: int = 0) -> int:
    if not keys:
        return 0
    mem = AttrMemory()
    attr, size = MAP_BATCH.pack(keys=mem.put(b"".join(keys)), count=len(keys),
                                map_fd=fd_number(map_fd), elem_flags=elem_flags, flags=flags)
    bpf_call(Cmd.MAP_DELETE_BATCH, attr, size)
    return MAP_BATCH.unpack(attr, "count")
