"""``Link``: an attachment that ends when its owner closes it.

Two kinds exist. A *bpf link* (BPF_LINK_CREATE, BPF_RAW_TRACEPOINT_OPEN)
is a kernel object of its own; a *perf-event attachment* (the pre-5.15
``PERF_EVENT_IOC_SET_BPF``) lives as long as the perf event fd. ``Link``
hides the difference: it owns whatever fds hold the attachment, and
``close()`` releases them, which detaches the program. fd-based forms mean
a crashed process never leaves a probe behind.
"""
from __future__ import annotations

import errno as E
from typing import Optional

from ebpfpy.sys import bpf, perf
from ebpfpy.sys.consts import AttachType
from ebpfpy.sys.errors import ENOTSUPP, BPFError
from ebpfpy.sys.fd import FD, fd_number

_NO_PERF_LINK = (E.EINVAL, E.EOPNOTSUPP, ENOTSUPP)


class Link:
    """Owns a link fd and/or a perf event fd; closing detaches."""

    def __init__(self, fd: Optional[FD] = None, *, perf_fd: Optional[FD] = None,
                 kind: str = "link", prog=None, description: str = "") -> None:
        if fd is None and perf_fd is None:
            raise ValueError("a Link needs a link fd or a perf event fd")
        self._fd = fd
        self._perf_fd = perf_fd
        self.kind = kind  # "link" | "perf_event" (ioctl attach) | "perf_link"
        self.prog = prog  # kept so the program outlives its attachment in this process
        self.description = description

    @classmethod
    def from_id(cls, link_id: int) -> "Link":
        return cls(bpf.link_get_fd_by_id(link_id))

    @classmethod
    def from_pin(cls, path: str) -> "Link":
        return cls(bpf.obj_get(path))

    @property
    def fd(self) -> int:
        """The link fd, or for an ioctl attachment the perf event fd."""
        owner = self._fd or self._perf_fd
        return owner.fd

    def fileno(self) -> int:
        return self.fd

    @property
    def perf_fd(self) -> Optional[int]:
        return self._perf_fd.fd if self._perf_fd is not None else None

    @property
    def is_bpf_link(self) -> bool:
        return self._fd is not None

    @property
    def closed(self) -> bool:
        return all(f is None or f.closed for f in (self._fd, self._perf_fd))

    def info(self) -> bpf.LinkInfo:
        if self._fd is None:
            raise TypeError("a perf-event attachment made with PERF_EVENT_IOC_SET_BPF has no link info")
        return bpf.link_info(self._fd)

    def pin(self, path: str) -> None:
        if self._fd is None:
            raise TypeError("only bpf links can be pinned")
        bpf.obj_pin(self._fd, path)

    def detach(self) -> None:
        """Detach now, even if the link is pinned elsewhere (BPF_LINK_DETACH)."""
        if self._fd is None:
            self.close()
        else:
            bpf.link_detach(self._fd)

    def close(self) -> None:
        for owner in (self._fd, self._perf_fd):
            if owner is not None:
                if owner is self._perf_fd and not owner.closed and self.kind == "perf_event":
                    try:
                        perf.disable(owner)
                    except BPFError:
                        pass
                owner.close()

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self.fd}"
        return f"<Link {self.kind} {self.description} {state}>"


def _perf_link_supported() -> bool:
    from ebpfpy import features

    return features.has("perf_link")


def attach_perf_event(prog, perf_fd: FD, *, cookie: int = 0, description: str = "",
                      use_link: Optional[bool] = None) -> Link:
    """Attach ``prog`` to an open perf event; the returned Link owns ``perf_fd``.

    Prefers BPF_LINK_CREATE (attach type BPF_PERF_EVENT, kernel 5.15+), which
    also carries a bpf_cookie; falls back to PERF_EVENT_IOC_SET_BPF + ENABLE.
    ``use_link`` forces one way (True: link or error, False: ioctl).
    """
    if not isinstance(perf_fd, FD):
        raise TypeError("attach_perf_event takes ownership of perf_fd: pass an FD")
    forced = use_link is True
    if use_link is None:
        use_link = _perf_link_supported()
    if use_link:
        try:
            link_fd = bpf.link_create(prog, perf_fd, AttachType.PERF_EVENT, bpf_cookie=cookie)
        except BPFError as exc:
            if forced or exc.errno not in _NO_PERF_LINK:
                raise
        else:
            return _enabled(Link(link_fd, perf_fd=perf_fd, kind="perf_link", prog=prog, description=description))
    if cookie:
        raise BPFError(E.EOPNOTSUPP, "PERF_EVENT_IOC_SET_BPF", detail="bpf_cookie needs BPF_LINK_CREATE")
    perf.set_bpf(perf_fd, fd_number(prog))
    return _enabled(Link(None, perf_fd=perf_fd, kind="perf_event", prog=prog, description=description))


def _enabled(link: Link) -> Link:
    """Enable the perf event under ``link``; on failure close the link (detaching) and re-raise."""
    try:
        perf.enable(link._perf_fd)
    except BPFError:
        link.close()
        raise
    return link


def attach_raw_tracepoint(prog, name: str) -> Link:
    """Attach a raw_tracepoint program to tracepoint ``name`` (e.g. "sys_enter")."""
    return Link(bpf.raw_tracepoint_open(name, prog), kind="link", prog=prog,
                description=f"raw_tracepoint:{name}")


def attach_tracing(prog, *, cookie: int = 0) -> Link:
    """Attach an fentry/fexit/fmod_ret/tp_btf program to the BTF target it was loaded for."""
    if cookie:
        return Link(bpf.link_create(prog, 0, prog.expected_attach_type, tracing_cookie=cookie),
                    prog=prog, description="tracing")
    return Link(bpf.raw_tracepoint_open(None, prog), prog=prog, description="tracing")
