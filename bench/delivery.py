"""Event delivery (printf from a tracepoint, 1,000,000 times, to a file) and map printing (100,000 keys).

Delivery: bench/loop.c makes N getppid calls; the tool prints one line for
each (filtered on the loop's pid) with ``-o FILE``. The clock runs from
releasing the loop to the last growth of the file (polled every 20 ms;
final once unchanged for 1 s). Lost events are summed from the
``Lost N events`` lines.

Map printing: ``@[nsecs] = count()`` over 100,000 getpid calls of the loop
(distinct keys), then SIGINT; the time is from SIGINT until the tool has
exited, printing the map to a file with ``-o``.
"""
from __future__ import annotations

import os
import re
import tempfile
import time

from harness import Loop, Metric, Proc, Target, ToolFailed, interleave, tool_argv, tool_env, wait_attached

N_EVENTS = 1_000_000
N_KEYS = 100_000
EVENT_LINE = re.compile(rb"^ev \d+$", re.M)
LOST_LINE = re.compile(rb"Lost (\d+) events")


# Both tools may keep every key of the map-printing metric.
MAP_PRINT_ENV = {"BPFTRACE_MAP_KEYS_MAX": "200000"}


def _start(tool: str, script: str, out_path: str, env: dict | None = None) -> Proc:
    p = Proc(tool_argv(tool, "-o", out_path, "-e", script), env=tool_env(env))
    if not wait_attached(p, 1, 30):
        p.kill()
        err = p.error_text()
        p.close()
        raise ToolFailed(err)
    return p


def deliver_once(tool: str, loop_binary: str) -> tuple:
    """(events/s, delivered, lost) for one run."""
    loop = Loop(loop_binary, "getppid", N_EVENTS)
    fd, out = tempfile.mkstemp(prefix="bench-delivery-")
    os.close(fd)
    try:
        script = f't:syscalls:sys_enter_getppid /pid == {loop.pid}/ {{ printf("ev %d\\n", pid); }}'
        p = _start(tool, script, out)
        with p:
            t0 = loop.go()
            loop.finish()
            size, t_last = -1, time.perf_counter()
            while time.perf_counter() - t_last < 1.0 and time.perf_counter() - t0 < 120:
                cur = os.path.getsize(out)
                if cur != size:
                    size, t_last = cur, time.perf_counter()
                time.sleep(0.02)
            p.stop(60)
        with open(out, "rb") as f:
            data = f.read()
        delivered = len(EVENT_LINE.findall(data))
        lost = sum(int(n) for n in LOST_LINE.findall(data))
        if delivered == 0:
            raise ToolFailed("no events delivered")
        return delivered / (t_last - t0), delivered, lost
    finally:
        loop.kill()
        os.unlink(out)


def print_map_once(tool: str, loop_binary: str) -> tuple:
    """(seconds from SIGINT to exit, lines printed)."""
    loop = Loop(loop_binary, "getpid", N_KEYS)
    fd, out = tempfile.mkstemp(prefix="bench-mapprint-")
    os.close(fd)
    try:
        script = f"t:syscalls:sys_enter_getpid /pid == {loop.pid}/ {{ @[nsecs] = count(); }}"
        p = _start(tool, script, out, MAP_PRINT_ENV)
        with p:
            loop.go()
            loop.finish()
            time.sleep(0.2)
            t = time.perf_counter()
            status = p.stop(120)
            took = p.t_exit - t
            if status != 0:
                raise ToolFailed(p.error_text())
        with open(out, "rb") as f:
            keys = f.read().count(b"]: ")
        return took, keys
    finally:
        loop.kill()
        os.unlink(out)


def measure(runs: int, loop_binary: str) -> list:
    got: dict = {}

    def one(tool):
        rate, delivered, lost = deliver_once(tool, loop_binary)
        got.setdefault(tool, []).append((delivered, lost))
        return rate

    samples, errors = interleave(runs, {t: (lambda t=t: one(t)) for t in ("ebpfpy", "bpftrace")})
    rate = Metric("event delivery: printf rate to file", "events/s", Target("ge", 1.0),
                  f"{N_EVENTS:,} getppid calls of bench/loop.c, each printed by "
                  "`t:syscalls:sys_enter_getppid /pid == LOOP/ { printf(\"ev %d\\n\", pid); }` with -o FILE; "
                  "lines in the file / (time from releasing the loop to the file's last growth); "
                  f"{runs}x per tool interleaved.")
    rate.samples.update(samples)
    rate.na.update(errors)
    lost = Metric("event delivery: events lost", "events", Target("not_more"),
                  "sum of `Lost N events` lines in the same runs (median per run); also N minus lines "
                  "delivered is listed in the notes.")
    lost.samples = {t: [n for _, n in got.get(t, [])] for t in ("ebpfpy", "bpftrace")}
    lost.na.update(errors)
    for t, rows in got.items():
        lost.notes.append(f"{t}: delivered per run {[d for d, _ in rows]} of {N_EVENTS:,}; "
                          f"reported lost {[n for _, n in rows]}")

    keys: dict = {}

    def pm(tool):
        took, n = print_map_once(tool, loop_binary)
        keys.setdefault(tool, []).append(n)
        return took

    samples, errors = interleave(runs, {t: (lambda t=t: pm(t)) for t in ("ebpfpy", "bpftrace")})
    mp = Metric(f"map printing: {N_KEYS:,} keys, SIGINT to exit", "s", Target("le", 1.0),
                f"`@[nsecs] = count()` filtered on bench/loop.c making {N_KEYS:,} getpid calls "
                "(BPFTRACE_MAP_KEYS_MAX=200000 for both), printed with -o FILE at exit; time from SIGINT "
                f"to the tool's exit; {runs}x per tool interleaved.")
    mp.samples.update(samples)
    mp.na.update(errors)
    for t, n in keys.items():
        mp.notes.append(f"{t}: map lines printed per run {n}")
    return [rate, lost, mp]
