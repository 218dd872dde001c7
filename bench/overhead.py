"""In-kernel cost per event: how much slower 2,000,000 getpid calls get while a tool traces them.

bench/loop.c times its own loop (CLOCK_MONOTONIC), so the number is the
traced syscall path only: tool start-up and exit are outside it. Untraced
runs are interleaved with the traced ones; added ns per event is
(traced - median untraced) / N.
"""
from __future__ import annotations

from harness import Loop, Metric, Proc, Target, ToolFailed, attaching, interleave, median, tool_argv, wait_attached

N = 2_000_000

SCRIPTS = (
    ("@[comm] = count()", "t:syscalls:sys_enter_getpid { @[comm] = count(); }"),
    ("@ = hist(args->ret) (sys_exit)", "t:syscalls:sys_exit_getpid { @ = hist(args->ret); }"),
    ("@[pid, comm] = sum(1)", "t:syscalls:sys_enter_getpid { @[pid, comm] = sum(1); }"),
)


def untraced(loop_binary: str) -> int:
    loop = Loop(loop_binary, "getpid", N)
    try:
        loop.go()
        return loop.finish()
    finally:
        loop.kill()


def traced(tool: str, script: str, loop_binary: str) -> int:
    loop = Loop(loop_binary, "getpid", N)
    try:
        with Proc(tool_argv(tool, "-e", script)) as p:
            if p.wait_for(attaching, 30) is None or not wait_attached(p, 1, 30):
                p.kill()
                raise ToolFailed(p.error_text())
            loop.go()
            ns = loop.finish()
            p.stop(30)
            return ns
    finally:
        loop.kill()


def measure(runs: int, loop_binary: str) -> list:
    metrics = []
    for label, script in SCRIPTS:
        base: list = []

        def one(tool, script=script, base=base):
            if tool == "untraced":
                base.append(untraced(loop_binary))
                return None
            return traced(tool, script, loop_binary)

        samples, errors = interleave(runs, {t: (lambda t=t: one(t)) for t in ("untraced", "ebpfpy", "bpftrace")},
                                     order=("untraced", "ebpfpy", "bpftrace"))
        b = median(base) or 0
        m = Metric(f"added cost per event: {label}", "ns", Target("le", 1.0),
                   f"bench/loop.c times {N:,} getpid() calls itself; with the tool attached to "
                   f"`{script}` minus untraced (interleaved, {runs}x each), divided by {N:,}.")
        m.samples = {t: [(s - b) / N for s in samples.get(t, [])] for t in ("ebpfpy", "bpftrace")}
        m.na.update({t: r for t, r in errors.items() if t != "untraced"})
        m.notes.append(f"untraced loop: {b / N:.1f} ns per call (median)")
        m.raw = {"untraced_ns": base, "traced_ns": {t: samples.get(t, []) for t in ("ebpfpy", "bpftrace")}}
        metrics.append(m)
    return metrics
