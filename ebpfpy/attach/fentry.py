"""kfunc/kretfunc probes: BPF trampolines (fentry/fexit) on kernel functions.

Unlike kprobes, the target is chosen at load time, not attach time: the
program is loaded as BPF_PROG_TYPE_TRACING with `expected_attach_type`
(fentry or fexit) and `attach_btf_id` (the function's BTF FUNC id), and the
verifier checks every context read against the function's BTF prototype.
So `context()` carries both ids plus the prototype; the program sees an
array of u64 arguments (`args->NAME` is slot i, `retval` slot nparams).
Attaching is BPF_RAW_TRACEPOINT_OPEN with no name (works on 5.5+; 6.1 has
it), which returns a link fd: closing it detaches.

Kernels without trampolines (no CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS,
or, like this project's dev VM, no TRACING programs at all) are told apart
by `ebpfpy.features.has("fentry")` and get one clear error.
"""
from __future__ import annotations

import errno
import fnmatch
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ebpfpy.sys.consts import AttachType, ProgType

from . import tracefs
from .binary import has_wildcard
from .errors import (
    AttachError,
    ProbeNotFoundError,
    ProbeSpecError,
    ProbeUnavailableError,
)
from .provider import Attachment, ProbeContext

UNAVAILABLE = "kfunc probes need the BPF tracing program type (fentry), which this kernel does not support"


def require_fentry() -> None:
    from ebpfpy import features

    if not features.has("fentry"):
        raise ProbeUnavailableError(f"{UNAVAILABLE} ({features.reason('fentry')})")


@dataclass(frozen=True)
class FentryTarget:
    function: str
    retprobe: bool = False
    kind: str = ""  # the kind as spelled for `probe` ("kfunc"/"kretfunc")

    @property
    def probe(self) -> str:
        return f"{self.kind or ('kretfunc' if self.retprobe else 'kfunc')}:{self.function}"


def parse_spec(spec: str) -> str:
    """`func`; `module:func` (bpftrace 0.18+) keeps only func (vmlinux functions only here)."""
    text = spec.strip()
    if ":" in text:
        text = text.rsplit(":", 1)[1]
    if not text:
        raise ProbeSpecError("kfunc probe needs a function name: kfunc:func")
    if not all(c.isalnum() or c in "_.*?[]" for c in text):
        raise ProbeSpecError(f"bad kfunc function name {text!r}")
    return text


def _btf():
    from ebpfpy import btf

    return btf.vmlinux()


def btf_functions() -> list[str]:
    """Names of every FUNC in vmlinux BTF (the candidates for kfunc probes)."""
    from ebpfpy.btf import Kind

    spec = _btf()
    return [spec.name_of(i) for i in spec.ids() if spec.kind_of(i) == Kind.FUNC]


def _traceable() -> set | None:
    """available_filter_functions when tracefs has it (functions ftrace can patch), else None."""
    try:
        path = tracefs.tracefs_path("available_filter_functions")
    except (OSError, AttachError):  # tracefs not mounted and not mountable
        return None
    if not os.access(path, os.R_OK):
        return None
    names = set()
    try:
        with open(path) as f:
            for line in f:
                if line.strip():
                    names.add(line.split()[0])
    except OSError:  # readable by mode but refused (lockdown, no ftrace): BTF alone decides
        return None
    return names


def match_functions(pattern: str) -> list[str]:
    """BTF functions matching a wildcard, restricted to traceable ones when tracefs says."""
    names = fnmatch.filter(btf_functions(), pattern)
    traceable = _traceable()
    if traceable is not None:
        names = [n for n in names if n in traceable]
    return sorted(set(names))


def func_btf_id(name: str) -> int:
    from ebpfpy.btf import Kind

    ids = _btf().find_all(name, Kind.FUNC)
    if not ids:
        raise ProbeNotFoundError(f"kernel function not found in BTF: {name}")
    return ids[0]


def btf_context(target: FentryTarget) -> ProbeContext:
    """ProbeContext of a kfunc target: TRACING program, BTF ids and prototype."""
    spec = _btf()
    fid = func_btf_id(target.function)
    proto = spec[spec[fid].type]
    return ProbeContext(ProgType.TRACING, "btf_func", retval=target.retprobe,
                        expected_attach_type=AttachType.TRACE_FEXIT if target.retprobe
                        else AttachType.TRACE_FENTRY,
                        attach_btf_id=fid, func_proto=proto, space="kernel")


def attach_fentry_target(prog: Any, target: FentryTarget) -> Attachment:
    """Attach a TRACING program (loaded for `target`'s BTF id and attach type)."""
    from ebpfpy.links import attach_tracing
    from ebpfpy.sys.errors import BPFError

    require_fentry()
    try:
        link = attach_tracing(prog)
    except BPFError as exc:
        if exc.errno in (errno.ENOENT, errno.EINVAL, errno.ESRCH):
            exc.detail = f"{target.probe}; {exc.detail}" if getattr(exc, "detail", "") else target.probe
        raise
    return Attachment(target.probe, [link], target=target)


class FentryProvider:
    def __init__(self, kind: str = "kfunc", retprobe: bool = False):
        self.kind = kind
        self.retprobe = retprobe

    def expand(self, spec: str, pid: int = -1) -> list[FentryTarget]:
        name = parse_spec(spec)
        require_fentry()
        if not has_wildcard(name):
            func_btf_id(name)  # a clear "not found" now rather than at load time
            return [FentryTarget(name, self.retprobe, self.kind)]
        return [FentryTarget(n, self.retprobe, self.kind) for n in match_functions(name)]

    def context(self, target: FentryTarget) -> ProbeContext:
        return btf_context(target)

    def attach(self, prog: Any, target: FentryTarget, pid: int = -1) -> Attachment:
        return attach_fentry_target(prog, target)

    def list(self, pattern: str, pid: int = -1) -> Iterator[str]:
        from ebpfpy import features

        if not features.has("btf") or not features.has("fentry"):
            return
        for name in match_functions(parse_spec(pattern) if pattern else "*"):
            yield f"{self.kind}:{name}"


def attach_fentry(prog: Any, function: str, *, retprobe: bool = False) -> Attachment:
    """Attach a TRACING program loaded for `function` (fentry, or fexit with `retprobe`)."""
    if has_wildcard(function):
        raise ProbeSpecError("attach_fentry takes one function; a program is loaded for one BTF id")
    return attach_fentry_target(prog, FentryTarget(function, retprobe))
