"""The program commands of bpf() (load, test run, bind a map, run-time stats) and BTF load.

BTF load is here, not with the object commands, because it shares the program load's
verifier-log retry (``_with_log``): the first try goes without a log, only a failure pays
for a second one, and the buffer grows on ENOSPC. ``ebpfpy.sys.bpf`` re-exports every name.
"""
from __future__ import annotations

import errno as E
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from ebpfpy.sys.bpf_call import AttrMemory, bpf_call, bpf_call_fd, cstring, obj_name
from ebpfpy.sys.consts import Cmd
from ebpfpy.sys.errors import BPFError
from ebpfpy.sys.fd import FD, fd_number
from ebpfpy.sys.layouts import BTF_LOAD, ENABLE_STATS, PROG_BIND_MAP, PROG_LOAD, TEST_RUN

LOG_BUF_START = 1 << 18  # first verifier-log buffer: 256 KiB
LOG_BUF_MAX = 1 << 30  # the kernel refuses log_size > UINT_MAX >> 2


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
        mem = AttrMemory()
        addr, buf = mem.out(size)
        try:
            fd = attempt(log_level, addr, size)
            return fd, cstring(mem.read(buf, size))
        except BPFError as exc:
            log = cstring(mem.read(buf, size))
            true_size = getattr(exc, "_true_size", 0)
            if exc.errno == E.ENOSPC and size < LOG_BUF_MAX:
                size = min(max(size * 4, true_size + 1), LOG_BUF_MAX)
                continue
            exc.log = log
            raise


# Each load command's names for its verifier-log fields: level, buffer size, buffer, and the
# size the kernel wanted (6.4+).
_PROG_LOG_FIELDS = ("log_level", "log_size", "log_buf", "log_true_size")
_BTF_LOG_FIELDS = ("btf_log_level", "btf_log_size", "btf_log_buf", "btf_log_true_size")


def _load_with_log(cmd: Cmd, layout, log_fields: tuple[str, str, str, str], fields: dict,
                   log_level: int, log_size: int) -> tuple[FD, str]:
    """A program or BTF load through ``_with_log``: the two commands differ only in their
    layout and in the names of their log fields."""
    level_name, size_name, buf_name, true_size_name = log_fields

    def attempt(level, addr, size):
        attr, asize = layout.pack(**{level_name: level, size_name: size, buf_name: addr}, **fields)
        if addr:  # cover the true-size field so the kernel reports the size it needed
            asize = layout.size
        try:
            return bpf_call_fd(cmd, attr, asize)
        except BPFError as exc:
            exc._true_size = layout.unpack(attr, true_size_name)
            raise

    return _with_log(attempt, log_level, log_size)


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
    mem = AttrMemory()
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
    return _load_with_log(Cmd.PROG_LOAD, PROG_LOAD, _PROG_LOG_FIELDS, common, log_level, log_size)


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
    mem = AttrMemory()
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
    bpf_call(Cmd.PROG_TEST_RUN, attr, size)
    retval, duration, dout, cout = TEST_RUN.unpack(attr, "retval", "duration", "data_size_out", "ctx_size_out")
    return TestRunResult(
        retval=retval, duration=duration,
        data_out=mem.read(dbuf, min(dout, data_size_out)),
        ctx_out=mem.read(cbuf, min(cout, ctx_size_out)),
    )


def prog_bind_map(prog_fd, map_fd, flags: int = 0) -> None:
    """BPF_PROG_BIND_MAP: keep a map alive with a program that does not reference it in code."""
    attr, size = PROG_BIND_MAP.pack(prog_fd=fd_number(prog_fd), map_fd=fd_number(map_fd), flags=flags)
    bpf_call(Cmd.PROG_BIND_MAP, attr, size)


def enable_stats(stats_type: int = 0) -> FD:
    """BPF_ENABLE_STATS: run-time accounting stays on while the returned fd is open."""
    attr, size = ENABLE_STATS.pack(type=stats_type)
    return bpf_call_fd(Cmd.ENABLE_STATS, attr, size)


def btf_load_with_log(data: bytes, *, log_level: int = 0, log_size: int = 0) -> tuple[FD, str]:
    """BPF_BTF_LOAD; on failure the BPFError carries the BTF verifier log."""
    mem = AttrMemory()
    fields = dict(btf=mem.put(data), btf_size=len(data))
    return _load_with_log(Cmd.BTF_LOAD, BTF_LOAD, _BTF_LOG_FIELDS, fields, log_level, log_size)


def btf_load(data: bytes, *, log_level: int = 0, log_size: int = 0) -> FD:
    return btf_load_with_log(data, log_level=log_level, log_size=log_size)[0]
