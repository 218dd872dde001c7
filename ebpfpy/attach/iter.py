"""BPF iterator probes (bpftrace 0.19+): `iter:task`, `iter:task_file`, `iter:task_vma`, and `:PIN`.

An iterator program (BPF_PROG_TYPE_TRACING, attach type BPF_TRACE_ITER, loaded
against the BTF function `bpf_iter_<NAME>`) runs once per kernel object when
its iterator is read. Unlike the other probes it does not wait for events: the
attachment holds the iterator link, and `run()` reads one pass through it (each
read runs the program over the next objects; the program's own output goes
through the script's events, not through the seq file). So a pin path
(`iter:task:PIN`, read later by someone else) is refused for now.

The context is `struct bpf_iter__<NAME>`: `meta`, then the object (`task`, and
`fd`/`file` or `vma`), which the kernel passes as NULL on the last call.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ebpfpy.sys.consts import AttachType, ProgType

from .errors import AttachError, ProbeNotFoundError, ProbeSpecError
from .provider import ProbeContext

# The iterators bpftrace offers, as its docs list them.
ITERATORS = ("task", "task_file", "task_vma")


@dataclass(frozen=True)
class IterTarget:
    name: str
    pin: str = ""  # `iter:task:PIN` (refused for now: see the module's docstring)

    @property
    def probe(self) -> str:
        return f"iter:{self.name}" + (f":{self.pin}" if self.pin else "")

    @property
    def context_struct(self) -> str:
        return f"struct bpf_iter__{self.name}"


class IterAttachment:
    """An iterator link: `run()` reads one pass of it (the program runs over every object);
    `close()` drops the link."""

    def __init__(self, link: Any, target: IterTarget):
        self.probe = target.probe
        self.target = target
        self._link = link

    @property
    def closed(self) -> bool:
        return self._link is None

    def run(self) -> int:
        """One pass over the objects; the bytes the seq file gave (none: output is events)."""
        from ebpfpy.links import read_iter

        if self._link is None:
            raise AttachError(f"{self.probe} is closed")
        return len(read_iter(self._link))

    def close(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.close()


def iter_function(name: str) -> int:
    """The BTF id of `bpf_iter_<name>`, which an iterator program is loaded against."""
    from ebpfpy import btf
    from ebpfpy.btf import Kind

    try:
        ids = btf.vmlinux().find_all(f"bpf_iter_{name}", Kind.FUNC)
    except Exception as exc:  # no BTF here
        raise ProbeNotFoundError(f"iter {name} not available: no kernel BTF ({exc})") from None
    if not ids:
        raise ProbeNotFoundError(f"iter {name} not available for your kernel version.")
    return ids[0]


class IterProvider:
    def __init__(self, kind: str = "iter"):
        self.kind = kind

    def expand(self, spec: str, pid: int = -1) -> list[IterTarget]:
        name, _, pin = spec.partition(":")
        if not name:
            raise ProbeSpecError("iter probe needs an iterator name (iter:task, iter:task_file, iter:task_vma)")
        if name not in ITERATORS:
            raise ProbeNotFoundError(f"iter {name} not available for your kernel version.")
        if pin:
            # a pinned iterator is read later by someone else (cat): its output would have to go
            # through the seq file (bpf_seq_printf), while ours goes through the run's events
            raise ProbeSpecError(f"iter:{name}:{pin}: pinned iterators are not supported by pybpftrace yet")
        iter_function(name)
        return [IterTarget(name, pin)]

    def context(self, target: IterTarget) -> ProbeContext:
        return ProbeContext(ProgType.TRACING, "iter", expected_attach_type=AttachType.TRACE_ITER,
                            attach_btf_id=iter_function(target.name), space="kernel")

    def attach(self, prog: Any, target: IterTarget, pid: int = -1) -> IterAttachment:
        from ebpfpy.links import attach_iter

        return IterAttachment(attach_iter(prog), target)

    def list(self, pattern: str, pid: int = -1) -> Iterator[str]:
        import fnmatch

        for name in ITERATORS:
            try:
                iter_function(name)
            except ProbeNotFoundError:
                continue
            if fnmatch.fnmatchcase(name, pattern or "*"):
                yield f"iter:{name}"
