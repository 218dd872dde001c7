"""Kernel feature probes: try the feature once, cache the answer.

Versions lie (distributions backport, configs differ), so each feature is
detected by doing the smallest real thing that needs it, as libbpf does.
``has(name)`` answers, ``reason(name)`` says why not. Probes are a table,
``PROBES``: name -> function returning ``(ok, reason)``.
"""
from __future__ import annotations

import errno as E
import os
import struct
from collections.abc import Callable, Container

from ebpfpy.sys.errors import ENOTSUPP, BPFError

Probe = Callable[[], "tuple[bool, str]"]
VMLINUX_BTF = "/sys/kernel/btf/vmlinux"

_cache: dict[str, tuple[bool, str]] = {}


def _insns(*insns) -> bytes:
    from ebpfpy.isa.insn import Insn, encode_all

    return encode_all(Insn(*i) for i in insns)


# r0 = 0; exit
def _ret0() -> bytes:
    return _insns((0xB7, 0, 0, 0, 0), (0x95,))


def _err(exc: BPFError) -> str:
    return f"{exc.command}: {exc.strerror} [{exc.errno_name}]"


def _load(prog_type, insns: bytes, **kw):
    from ebpfpy.sys import bpf

    return bpf.prog_load(prog_type, insns, "GPL", **kw)


# The errnos with which a load or an attach says "this kernel has no such thing" (an unknown
# program or attach type, a missing target, a refused privilege); another is a real failure.
_ABSENT = frozenset({E.EINVAL, E.EOPNOTSUPP, ENOTSUPP, E.ENOENT, E.EPERM})


class _AnyErrno:
    """For the probes to which any failure means "not here"."""

    def __contains__(self, code: object) -> bool:
        return True


ANY_ERRNO = _AnyErrno()


def _load_and_attach(prog_type, attach, *, expected_attach_type=0, attach_btf_id: int = 0,
                     what: str = "", load_absent: Container[int] = _ABSENT, attach_ok: Container[int] = (),
                     attach_absent: Container[int] = _ABSENT) -> tuple[bool, str]:
    """The probes of a program type with its way of attaching: load ``r0 = 0; exit`` of that
    type (and expected attach type and BTF target), then ``attach(prog)``, whose fd is closed at
    once.

    Some probes attach to an invalid target on purpose, so nothing stays attached even for a
    moment: an errno in ``attach_ok`` is the kernel knowing the attach type. A failure with an
    errno in ``load_absent`` or ``attach_absent`` answers "not here" (prefixed "no <what>
    programs/links: " when ``what`` is given); any other propagates, and ``_answer`` reports it.
    """
    try:
        prog = _load(prog_type, _ret0(), expected_attach_type=expected_attach_type, attach_btf_id=attach_btf_id)
    except BPFError as exc:
        if exc.errno in load_absent:
            return False, (f"no {what} programs: " if what else "") + _err(exc)
        raise
    with prog:
        try:
            attach(prog).close()
        except BPFError as exc:
            if exc.errno in attach_ok:
                return True, ""
            if exc.errno in attach_absent:
                return False, (f"no {what} links: " if what else "") + _err(exc)
            raise
    return True, ""


# --------------------------------------------------------------------------
# probes


def _probe_bpf() -> tuple[bool, str]:
    from ebpfpy.sys import bpf
    from ebpfpy.sys.consts import MapType

    try:
        with bpf.map_create(MapType.ARRAY, 4, 4, 1):
            return True, ""
    except BPFError as exc:
        return False, _err(exc)
    except OSError as exc:  # the shim missing, seccomp, ...
        return False, str(exc)


def _probe_btf() -> tuple[bool, str]:
    return (True, "") if os.path.exists(VMLINUX_BTF) else (False, f"{VMLINUX_BTF} is missing")


def _probe_ringbuf() -> tuple[bool, str]:
    import mmap

    from ebpfpy.sys import bpf
    from ebpfpy.sys.consts import MapType

    try:
        with bpf.map_create(MapType.RINGBUF, 0, 0, mmap.PAGESIZE):
            return True, ""
    except BPFError as exc:
        return False, _err(exc)


def _probe_batch_ops() -> tuple[bool, str]:
    from ebpfpy.sys import bpf
    from ebpfpy.sys.consts import MapType

    with bpf.map_create(MapType.HASH, 4, 4, 1) as fd:
        try:
            bpf.map_lookup_batch(fd, 4, 4, 1)  # an empty map answers ENOENT: handled as done
            return True, ""
        except BPFError as exc:
            return False, _err(exc)


def _probe_perf_link() -> tuple[bool, str]:
    """BPF_LINK_CREATE with attach type BPF_PERF_EVENT on fd -1: EBADF means the kernel knows it."""
    from ebpfpy.sys import bpf
    from ebpfpy.sys.consts import AttachType, ProgType

    return _load_and_attach(ProgType.TRACEPOINT, lambda prog: bpf.link_create(prog, -1, AttachType.PERF_EVENT),
                            load_absent=(), attach_ok={E.EBADF}, attach_absent=ANY_ERRNO)


def _probe_uprobe_multi() -> tuple[bool, str]:
    """libbpf's probe: a uprobe_multi link on "/" fails with EBADF where the kernel has them, and
    one with an invalid pid fails with EINVAL where its pid filter is the fixed (per-process) one."""
    from ebpfpy.sys import bpf
    from ebpfpy.sys.consts import AttachType, ProgType

    try:
        prog = _load(ProgType.KPROBE, _ret0(), expected_attach_type=AttachType.TRACE_UPROBE_MULTI)
    except BPFError as exc:
        return False, "no uprobe_multi programs: " + _err(exc)
    with prog:
        for pid, want, why in ((0, E.EBADF, "no uprobe_multi links"),
                               (-1, E.EINVAL, "uprobe_multi links filter threads, not processes (pre-6.9 bug)")):
            try:
                bpf.link_create_uprobe_multi(prog, "/", [0], pid=pid).close()
                return False, f"{why}: a link on '/' was created"
            except BPFError as exc:
                if exc.errno != want:
                    return False, f"{why}: {_err(exc)}"
    return True, ""


def _probe_tcx() -> tuple[bool, str]:
    """A tcx link (6.6+) on ifindex 0: ENODEV means the kernel knows the attach type."""
    from ebpfpy.sys import bpf
    from ebpfpy.sys.consts import AttachType, ProgType

    return _load_and_attach(ProgType.SCHED_CLS, lambda prog: bpf.link_create(prog, 0, AttachType.TCX_INGRESS),
                            expected_attach_type=AttachType.TCX_INGRESS, what="tcx", load_absent=ANY_ERRNO,
                            attach_ok={E.ENODEV}, attach_absent=ANY_ERRNO)


def _probe_netkit() -> tuple[bool, str]:
    """A netkit link (6.7+, CONFIG_NETKIT) on ifindex 0: ENODEV means the kernel looked for the
    device, so it has netkit, and nothing is attached even for a moment. A kernel built without
    netkit (this machine's 6.18) answers EINVAL without looking, as does one older than the type.
    The tcx probe cannot answer for it: tcx is built in wherever bpf is, netkit is a driver."""
    from ebpfpy.sys import bpf
    from ebpfpy.sys.consts import AttachType, ProgType

    ok, why = _load_and_attach(ProgType.SCHED_CLS,
                               lambda prog: bpf.link_create(prog, 0, AttachType.NETKIT_PRIMARY),
                               expected_attach_type=AttachType.NETKIT_PRIMARY, what="netkit",
                               load_absent=ANY_ERRNO, attach_ok={E.ENODEV}, attach_absent=ANY_ERRNO)
    return ok, why and f"{why} (a kernel without CONFIG_NETKIT, or older than 6.7)"


def _probe_netfilter_link() -> tuple[bool, str]:
    """A netfilter link (6.4+) for family 13 (NFPROTO_NUMPROTO): EAFNOSUPPORT is the kernel
    knowing the links and refusing the family, so no hook is registered even for a moment."""
    from ebpfpy.sys import bpf
    from ebpfpy.sys.consts import AttachType, ProgType

    return _load_and_attach(ProgType.NETFILTER, lambda prog: bpf.link_create_netfilter(prog, 13, 0, 0),
                            expected_attach_type=AttachType.NETFILTER, what="netfilter", load_absent=ANY_ERRNO,
                            attach_ok={E.EAFNOSUPPORT}, attach_absent=ANY_ERRNO)


def _pmu(name: str) -> Probe:
    from ebpfpy.sys.perf import PMU_ROOT, pmu_available

    path = os.path.join(PMU_ROOT, name)
    return lambda: (True, "") if pmu_available(name) else (False, f"no {name} PMU ({path} is missing)")


def _vmlinux_func(name: str) -> tuple[int | None, str]:
    """The BTF id of a kernel function a tracing probe targets, or None and why there is none."""
    if not os.path.exists(VMLINUX_BTF):
        return None, f"{VMLINUX_BTF} is missing"
    btf_id = vmlinux_func_id(name)
    return btf_id, "" if btf_id is not None else f"{name} is not in vmlinux BTF"


def _probe_fentry() -> tuple[bool, str]:
    """Load and briefly attach an fentry program on bpf_fentry_test1 (called only by test runs)."""
    from ebpfpy.sys import bpf
    from ebpfpy.sys.consts import AttachType, ProgType

    btf_id, why = _vmlinux_func("bpf_fentry_test1")
    if btf_id is None:
        return False, why
    return _load_and_attach(ProgType.TRACING, lambda prog: bpf.raw_tracepoint_open(None, prog),
                            expected_attach_type=AttachType.TRACE_FENTRY, attach_btf_id=btf_id)


def _probe_iter() -> tuple[bool, str]:
    """Load a task iterator (attach type BPF_TRACE_ITER on bpf_iter_task) and make its link."""
    from ebpfpy.sys import bpf
    from ebpfpy.sys.consts import AttachType, ProgType

    btf_id, why = _vmlinux_func("bpf_iter_task")
    if btf_id is None:
        return False, why
    return _load_and_attach(ProgType.TRACING, bpf.link_create_iter,
                            expected_attach_type=AttachType.TRACE_ITER, attach_btf_id=btf_id)


def _probe_kprobe_multi() -> tuple[bool, str]:
    """libbpf's probe: a kprobe_multi link on one invalid address fails with EINVAL (not EBADF,
    EOPNOTSUPP or E2BIG) where the kernel has them (5.18+, CONFIG_FPROBE)."""
    from ebpfpy.sys import bpf
    from ebpfpy.sys.consts import AttachType, ProgType

    return _load_and_attach(ProgType.KPROBE, lambda prog: bpf.link_create_kprobe_multi(prog, addrs=[0]),
                            expected_attach_type=AttachType.TRACE_KPROBE_MULTI, what="kprobe_multi",
                            load_absent=_ABSENT - {E.ENOENT}, attach_ok={E.EINVAL}, attach_absent=ANY_ERRNO)


def _probe_test_run_raw_tp() -> tuple[bool, str]:
    from ebpfpy.sys import bpf
    from ebpfpy.sys.consts import ProgType

    try:
        with _load(ProgType.RAW_TRACEPOINT, _ret0()) as prog:
            bpf.prog_test_run(prog, ctx_in=bytes(8))
            return True, ""
    except BPFError as exc:
        return False, _err(exc)


def _probe_probe_read_kernel() -> tuple[bool, str]:
    """A tracepoint program calling bpf_probe_read_kernel into the stack."""
    from ebpfpy.isa.helpers import helper
    from ebpfpy.sys.consts import ProgType

    prog = _insns(
        (0xBF, 1, 10),  # r1 = r10
        (0x07, 1, 0, 0, -8),  # r1 += -8
        (0xB7, 2, 0, 0, 8),  # r2 = 8
        (0xB7, 3, 0, 0, 0),  # r3 = 0
        (0x85, 0, 0, 0, helper("probe_read_kernel").id),  # call bpf_probe_read_kernel
        (0xB7, 0, 0, 0, 0),
        (0x95,),
    )
    try:
        with _load(ProgType.TRACEPOINT, prog):
            return True, ""
    except BPFError as exc:
        return False, _err(exc)


def _probe_override_return() -> tuple[bool, str]:
    """A kprobe program calling bpf_override_return: the kernel knows the helper only
    with CONFIG_BPF_KPROBE_OVERRIDE (which needs CONFIG_FUNCTION_ERROR_INJECTION)."""
    from ebpfpy.isa.helpers import helper
    from ebpfpy.sys.consts import ProgType

    prog = _insns(
        (0xB7, 2, 0, 0, 0),  # r2 = 0 (r1 is still the context)
        (0x85, 0, 0, 0, helper("override_return").id),  # call bpf_override_return
        (0xB7, 0, 0, 0, 0),
        (0x95,),
    )
    try:
        with _load(ProgType.KPROBE, prog):
            return True, ""
    except BPFError as exc:
        return False, f"bpf_override_return is not available (CONFIG_BPF_KPROBE_OVERRIDE is off; {exc.strerror})"


def _probe_tracefs() -> tuple[bool, str]:
    from ebpfpy.bpffs import ensure_tracefs, find_tracefs

    if find_tracefs():
        return True, ""
    try:
        ensure_tracefs()
        return True, ""
    except OSError as exc:
        return False, f"tracefs is not mounted and mounting failed: {exc}"


PROBES: dict[str, Probe] = {
    "bpf": _probe_bpf,
    "btf": _probe_btf,
    "ringbuf": _probe_ringbuf,
    "batch_ops": _probe_batch_ops,
    "perf_link": _probe_perf_link,
    "kprobes": _pmu("kprobe"),
    "uprobes": _pmu("uprobe"),
    "uprobe_multi": _probe_uprobe_multi,
    "tcx": _probe_tcx,
    "netkit": _probe_netkit,
    "netfilter_link": _probe_netfilter_link,
    "fentry": _probe_fentry,
    "iter": _probe_iter,
    "kprobe_multi": _probe_kprobe_multi,
    "test_run_raw_tp": _probe_test_run_raw_tp,
    "probe_read_kernel": _probe_probe_read_kernel,
    "override_return": _probe_override_return,
    "tracefs": _probe_tracefs,
}
# Probes that need bpf() itself: skip them (with bpf's reason) when it is missing.
_NEEDS_BPF = {"ringbuf", "batch_ops", "perf_link", "fentry", "test_run_raw_tp", "probe_read_kernel",
              "override_return", "uprobe_multi", "tcx", "netkit", "netfilter_link", "iter", "kprobe_multi"}


def _answer(name: str) -> tuple[bool, str]:
    if name not in PROBES:
        raise KeyError(f"unknown feature {name!r}; known: {', '.join(sorted(PROBES))}")
    if name not in _cache:
        if name in _NEEDS_BPF and not has("bpf"):
            _cache[name] = (False, "bpf() unavailable: " + reason("bpf"))
        else:
            try:
                _cache[name] = PROBES[name]()
            except (OSError, ImportError) as exc:
                _cache[name] = (False, f"probe failed: {exc}")
    return _cache[name]


def has(name: str) -> bool:
    """Whether the running kernel (and machine) offers feature ``name``."""
    return _answer(name)[0]


def reason(name: str) -> str:
    """Why ``name`` is unavailable ("" when it is available)."""
    return _answer(name)[1]


def report() -> dict[str, tuple[bool, str]]:
    """Every probe's answer, for ``ebpfpy`` diagnostics and bug reports."""
    return {name: _answer(name) for name in PROBES}


def forget() -> None:
    """Drop cached answers (after mounting something, in tests)."""
    _cache.clear()


# --------------------------------------------------------------------------
# small helpers the probes need


# Bytes of extra data after the 12-byte header, per BTF kind (kind -> (fixed, per vlen)).
_BTF_KIND_EXTRA = {
    1: (4, 0), 2: (0, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 7: (0, 0), 8: (0, 0),
    9: (0, 0), 10: (0, 0), 11: (0, 0), 12: (0, 0), 13: (0, 8), 14: (4, 0), 15: (0, 12),
    16: (0, 0), 17: (4, 0), 18: (0, 0), 19: (0, 12),
}
BTF_KIND_FUNC = 12


def vmlinux_func_id(name: str, path: str = VMLINUX_BTF) -> int | None:
    """BTF type id of function ``name`` in vmlinux, by a linear walk of the type section.

    A deliberately tiny scanner (the full parser is ``ebpfpy.btf``) so the
    fentry probe costs one read and does not depend on the BTF layer.
    """
    with open(path, "rb") as f:
        data = f.read()
    magic, _ver, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data)
    if magic != 0xEB9F:
        return None
    strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
    want = name.encode() + b"\0"
    candidates = set()
    pos = strings.find(b"\0" + want)
    while pos >= 0:
        candidates.add(pos + 1)
        pos = strings.find(b"\0" + want, pos + 1)
    if not candidates:
        return None
    off, end, tid = hdr_len + type_off, hdr_len + type_off + type_len, 1
    while off < end:
        name_off, info = struct.unpack_from("<II", data, off)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        if kind == BTF_KIND_FUNC and name_off in candidates:
            return tid
        fixed, per = _BTF_KIND_EXTRA.get(kind, (0, 0))
        off += 12 + fixed + per * vlen
        tid += 1
    return None
