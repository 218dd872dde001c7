"""``pybpftrace -l [pattern]``, ``-lv`` and ``--info``: what this system offers, printed like bpftrace.

Probe lines come from ``ebpfpy.attach.listing``. With no pattern (or ``*``)
bpftrace 0.17 prints one summary line per kind it cannot enumerate
(``hardware:*:``, ``software:*:``, the iterators) and every tracepoint,
the whole list sorted as plain strings; we do the same.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Optional

# What bpftrace prints for the kinds it does not enumerate in a full listing.
SUMMARY_LINES = ("hardware:*:", "iter:task", "iter:task_file", "software:*:")


def probe_lines(pattern: Optional[str], verbose: bool = False, pid: int = -1) -> Iterator[str]:
    from ebpfpy.attach import listing

    if pattern in (None, "", "*"):
        lines = [line for line in listing.list_probes(None, pid=pid)
                 if not line.startswith(("software:", "hardware:"))]
        for line in sorted([*SUMMARY_LINES, *lines]):
            yield line
            if verbose:
                yield from listing.describe(line)
        return
    lister = listing.list_probes_verbose if verbose else listing.list_probes
    yield from lister(pattern, pid=pid)


_KPROBE_KINDS = ("kprobe", "kretprobe", "k", "kr")


def _kprobe_warning(pattern: Optional[str]) -> Optional[str]:
    """bpftrace warns that it cannot read kernel symbols; we say why there are none to list."""
    if not pattern or pattern.split(":", 1)[0] not in _KPROBE_KINDS:
        return None
    from ebpfpy import features

    if features.has("kprobes"):
        return None
    return "WARNING: no kprobes to list: kprobes are not available on this kernel (CONFIG_KPROBES is off)"


def list_probes(pattern: Optional[str], verbose: bool = False, pid: int = -1) -> int:
    from ebpfpy.attach.errors import AttachError

    warning = _kprobe_warning(pattern)
    if warning:
        sys.stderr.write(warning + "\n")
    try:
        for line in probe_lines(pattern, verbose, pid):
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except AttachError as err:
        sys.stderr.write(f"ERROR: {err}\n")
        return 1
    except BrokenPipeError:
        # like `bpftrace -l | head`: stop quietly, and keep Python from complaining at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def info_text() -> str:
    """``--info``: bpftrace's report layout, answered by ``ebpfpy.features`` (real probes of this kernel).

    Where bpftrace says only "no" we add the reason, since the point of the
    report is to tell the user what will not work and why.
    """
    from ebpfpy import features

    uname = os.uname()
    report = features.report()

    def row(label: str, name: str) -> str:
        ok, why = report[name]
        return f"  {label}: {_yes(ok)}" + (f" ({why})" if not ok and why else "") + "\n"

    out = ["System\n", f"  OS: {uname.sysname} {uname.release} {uname.version}\n", f"  Arch: {uname.machine}\n\n"]
    out += ["Build\n", "  version: v0.17.0 (pybpftrace, ebpfpy)\n", "  LLVM: none (instructions are built in Python)\n",
            "  unsafe uprobe: no\n\n"]
    out += ["Kernel helpers\n", "  probe_read: yes\n", "  probe_read_str: yes\n", row("probe_read_kernel", "probe_read_kernel"),
            row("probe_read_user", "probe_read_kernel"), "\n"]
    out += ["Kernel features\n", row("btf", "btf"), row("map batch", "batch_ops"), row("ringbuf", "ringbuf"),
            row("bpf_link for perf events", "perf_link"), row("BPF_PROG_TEST_RUN for BEGIN/END", "test_run_raw_tp"),
            row("tracefs", "tracefs"), "\n"]
    out += ["Probe types\n", row("kprobe", "kprobes"), "  tracepoint: " + _yes(report["tracefs"][0]) + "\n",
            "  perf_event: yes\n", row("uprobe", "uprobes"), row("kfunc", "fentry")]
    return "".join(out)
