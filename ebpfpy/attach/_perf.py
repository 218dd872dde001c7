"""The two calls every perf-based provider needs: open a perf event, hang a program on it.

They delegate to `ebpfpy.sys.perf` and `ebpfpy.links` (the loader layer);
this module only adds what every provider wants on top: PMU type and
format-bit lookup from sysfs, errors naming the probe, and one attachment
object owning both the perf fds and the links.
"""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from ebpfpy.sys.errors import BPFError
from ebpfpy.sys.fd import FD

from .errors import ProbeUnavailableError
from .provider import Attachment

PMU_ROOT = "/sys/bus/event_source/devices"

# ---------------------------------------------------------------------------
# dynamic PMUs (uprobe, kprobe) described in sysfs

def pmu_available(name: str) -> bool:
    return os.path.exists(os.path.join(PMU_ROOT, name, "type"))


@lru_cache(maxsize=None)
def pmu_type(name: str) -> int:
    """perf_event_attr.type of a dynamic PMU such as `uprobe` or `kprobe`."""
    try:
        with open(os.path.join(PMU_ROOT, name, "type")) as f:
            return int(f.read())
    except FileNotFoundError:
        raise ProbeUnavailableError(f"the {name} perf PMU is not available on this kernel") from None


@lru_cache(maxsize=None)
def pmu_format_bit(pmu: str, fmt: str) -> tuple[str, int, int]:
    """(config field, first bit, last bit) of a PMU format entry, e.g. retprobe -> ("config", 0, 0)."""
    path = os.path.join(PMU_ROOT, pmu, "format", fmt)
    try:
        with open(path) as f:
            text = f.read().strip()
    except FileNotFoundError:
        raise ProbeUnavailableError(f"the {pmu} PMU has no {fmt!r} format bit ({path} missing)") from None
    return parse_format_bits(text)


def parse_format_bits(text: str) -> tuple[str, int, int]:
    """`config:0` -> ("config", 0, 0); `config:32-63` -> ("config", 32, 63)."""
    field, _, bits = text.partition(":")
    lo, _, hi = bits.partition("-")
    return field, int(lo), int(hi or lo)


def format_value(pmu: str, fmt: str, value: int) -> int:
    """`value` placed in the config bits a PMU format entry names (only `config` here)."""
    field, lo, hi = pmu_format_bit(pmu, fmt)
    if field != "config":
        raise ProbeUnavailableError(f"{pmu} format {fmt} lives in {field}, which ebpfpy does not set")
    width = hi - lo + 1
    if value >> width:
        raise ValueError(f"{fmt}={value:#x} does not fit {width} bits of the {pmu} PMU's config")
    return value << lo


# ---------------------------------------------------------------------------
# perf_event_open

def open_perf_event(ptype: int, config: int, *, pid: int = -1, cpu: int = 0, what: str = "",
                    **kwargs: Any) -> FD:
    """perf_event_open with the failing probe named in the error."""
    from ebpfpy.sys.perf import perf_event_open

    try:
        return perf_event_open(ptype, config, pid=pid, cpu=cpu, **kwargs)
    except BPFError as exc:
        if what:
            exc.detail = f"{what}; {exc.detail}" if exc.detail else what
        raise


def perf_attachment(prog: Any, probe: str, opens: list[dict], target: Any = None) -> Attachment:
    """Open one perf event per entry of `opens` (kwargs of open_perf_event) and attach `prog` to each.

    Each `ebpfpy.links.Link` owns its perf event fd (and the bpf link, when
    the kernel has BPF_LINK_CREATE for perf events); the Attachment owns the
    Links.
    """
    from ebpfpy.links import attach_perf_event

    att = Attachment(probe, target=target)
    try:
        for kwargs in opens:
            perf_fd = open_perf_event(what=probe, **kwargs)
            try:
                link = attach_perf_event(prog, perf_fd, description=probe)
            except BaseException:
                perf_fd.close()
                raise
            att.add(link)
    except BaseException:
        att.close()
        raise
    return att


def online_cpus(path: str = "/sys/devices/system/cpu/online") -> list[int]:
    """CPU numbers from a sysfs range list such as `0-3,6`."""
    with open(path) as f:
        return parse_cpu_list(f.read())


def parse_cpu_list(text: str) -> list[int]:
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus
