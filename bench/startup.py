"""Start-up, wildcard attach and peak memory: wall time and ru_maxrss of whole CLI runs.

One run of a script gives both numbers, so the memory rows reuse the runs of
the timing rows (no extra runs). Timings include interpreter or binary start,
parsing, compiling, map creation, loading, attaching and exiting.
"""
from __future__ import annotations

import time

from harness import (
    DEFAULT_MAP_KEYS_MAX,
    Loop,
    Metric,
    Proc,
    Target,
    ToolFailed,
    attaching,
    in_install,
    interleave,
    median,
    tool_argv,
    tracepoints_attached,
)

BEGIN_EXIT = "BEGIN { exit(); }"

# Five probes: maps keyed by strings and tuples, a hist, filters, a printf, exit from interval.
FIVE_PROBES = """\
tracepoint:syscalls:sys_enter_openat /pid != 0/ { @opens[comm] = count(); }
tracepoint:syscalls:sys_exit_read /args->ret > 0/ { @bytes = hist(args->ret); }
tracepoint:sched:sched_switch /args->prev_pid != 0/ { @switches[cpu] = count(); }
tracepoint:syscalls:sys_enter_getpid { @pids[pid, comm] = sum(1); }
interval:ms:1 { printf("exiting at %llu\\n", nsecs); exit(); }
"""
FIVE_PROBE_TRACEPOINTS = ("syscalls:sys_enter_openat", "syscalls:sys_exit_read", "sched:sched_switch",
                          "syscalls:sys_enter_getpid")

# The wildcard, plus one probe attached after it (both tools attach in script
# order) whose printf is the "first event": it can only fire once every
# wildcard tracepoint is in place, and bench/loop.c in spin mode feeds it.
WILD = "t:syscalls:sys_enter_* { @[probe] = count(); }\n"
FIRST = 't:syscalls:sys_enter_getppid /pid == PID/ { printf("first event\\n"); }\n'
# bpftrace 0.17 attaches a script's probes last to first, ebpfpy first to last:
# the first-event probe goes where each tool attaches it last. A bpftool
# count at the first event checks the assumption (recorded per run).
WILDCARD = {"ebpfpy": WILD + FIRST, "bpftrace": FIRST + WILD}


def kernel_floor(runs: int = 3) -> dict:
    """kernel_floor_here, run by the Python whose ebpfpy pybpftrace runs (harness.in_install)."""
    return in_install("startup", "kernel_floor_here", runs)["result"]


def kernel_floor_here(runs: int = 3) -> dict:
    """Seconds of kernel work in FIVE_PROBES that neither tool can skip, measured in-process.

    Creating its four per-CPU hash maps with BPFTRACE_MAP_KEYS_MAX (4096) entries,
    preallocated (map_flags 0, as bpftrace 0.17 creates them): the kernel makes
    one per-CPU allocation per entry under one mutex. Detaching its four
    tracepoints from four threads at once, as pybpftrace does: each release
    waits for grace periods (the tracepoint's under a global mutex, so they add
    up). Medians of ``runs``.
    """
    import threading

    from ebpfpy.attach import attach_tracepoint
    from ebpfpy.isa import asm
    from ebpfpy.maps import Map
    from ebpfpy.progs import Program

    entries = DEFAULT_MAP_KEYS_MAX
    maps, detach = [], []
    prog = Program.load("tracepoint", asm.assemble("r0 = 0\nexit"), name="bench_floor")
    try:
        for _ in range(runs):
            t = time.perf_counter()
            made = [Map.create("percpu_hash", key_size, 8, entries) for key_size in (16, 8, 8, 24)]
            maps.append(time.perf_counter() - t)
            for m in made:
                m.close()
            atts: list = []
            try:
                for tp in FIVE_PROBE_TRACEPOINTS:
                    atts.append(attach_tracepoint(prog, *tp.split(":")))
            finally:
                t = time.perf_counter()
                threads = [threading.Thread(target=att.close) for att in atts]
                for th in threads:
                    th.start()
                for th in threads:
                    th.join()
                detach.append(time.perf_counter() - t)
    finally:
        prog.close()
    return {"maps": median(maps), "detach": median(detach), "entries": entries}


def run_to_exit(tool: str, script: str, timeout: float = 60) -> tuple:
    """(wall seconds, peak RSS MB) of a script that exits by itself."""
    with Proc(tool_argv(tool, "-e", script)) as p:
        p.drain(timeout)
        status = p.wait(timeout)
        if status != 0 or not any(attaching(line) for line in p.lines):
            raise ToolFailed(p.error_text())
        return p.wall, p.maxrss_mb


def run_wildcard(tool: str, spin_pid: int, timeout: float = 120) -> tuple:
    """(seconds until Attaching and the first event, peak RSS MB, probes, stop seconds)."""
    script = WILDCARD[tool].replace("PID", str(spin_pid))
    with Proc(tool_argv(tool, "-e", script)) as p:
        seen_attach = p.wait_for(attaching, timeout)
        if seen_attach is None:
            p.kill()
            raise ToolFailed(p.error_text())
        first = p.wait_for(lambda line: line.startswith("first event"), timeout)
        attached = tracepoints_attached(p.tool_pid)
        t_int = time.perf_counter()
        status = p.stop(timeout)
        stop_s = time.perf_counter() - t_int
        if first is None:
            raise ToolFailed(p.error_text() if status else "no first event")
        probes = int(p.lines[0].split()[1]) if p.lines and attaching(p.lines[0]) else None
        return first, p.maxrss_mb, probes, stop_s, attached


def _floor_notes(m: Metric) -> None:
    """What the kernel alone costs in this script, and the best ratio that leaves for ebpfpy."""
    try:
        floor = kernel_floor()
    except Exception as err:  # the notes are extra; the metric stands without them
        m.notes.append(f"kernel floor not measured: {type(err).__name__}: {err}")
        return
    m.raw["kernel_floor"] = floor
    bt = m.result("bpftrace")
    total = floor["maps"] + floor["detach"]
    m.notes.append(f"kernel work both tools wait for: creating the four {floor['entries']:,}-entry per-CPU "
                   f"hash maps preallocated, as bpftrace 0.17 does (map_flags 0): {floor['maps']:.3f} s; "
                   f"detaching the four tracepoints from four threads at once: {floor['detach']:.3f} s "
                   "(bpftrace detaches them one after the other)")
    if bt:
        m.notes.append(f"with no Python at all, ebpfpy's time would be at least {total:.3f} s = "
                       f"{total / bt:.2f} of bpftrace's median {bt:.3f} s; the rest of ebpfpy's time is "
                       "interpreter start-up, imports and compiling")


def measure(runs: int, wildcard_runs: int, loop_binary: str) -> list:
    metrics = []
    mem_rows = []
    for label, script, desc in (
        ("start to exit: BEGIN { exit(); }", BEGIN_EXIT, "`BEGIN { exit(); }`"),
        ("start to exit: 5 probes, exit from interval:ms:1", FIVE_PROBES,
         "a 5-probe script (tracepoints with filters, count/hist/sum maps keyed by comm, cpu, "
         "(pid, comm), printf, exit() from interval:ms:1)"),
    ):
        got = {}

        def one(tool, script=script, got=got):
            wall, rss = run_to_exit(tool, script)
            got.setdefault(tool, []).append(rss)
            return wall

        samples, errors = interleave(runs, {t: (lambda t=t: one(t)) for t in ("ebpfpy", "bpftrace")})
        m = Metric(label, "s", Target("le", 0.5),
                   f"wall time from fork to exit of {desc}, run {runs}x per tool interleaved; median [min–max].")
        m.samples.update(samples)
        m.na.update(errors)
        if script is FIVE_PROBES:
            _floor_notes(m)
        metrics.append(m)
        mm = Metric(f"peak RSS: {label.split(': ', 1)[1]}", "MB", Target("le", 0.5),
                    f"ru_maxrss of the CLI process in the runs of '{label}' (wait4 by bench/spawn.c, "
                    "whose child it is, so the benchmark's own RSS is no floor).")
        mm.samples.update({t: got.get(t, []) for t in ("ebpfpy", "bpftrace")})
        mm.na.update(errors)
        mem_rows.append(mm)

    spin = Loop(loop_binary, "spin", 0)
    spin.go()
    try:
        got = {}
        extra = {}

        def wild(tool):
            first, rss, probes, stop_s, attached = run_wildcard(tool, spin.pid)
            got.setdefault(tool, []).append(rss)
            extra.setdefault(tool, []).append({"probes": probes, "attached_at_first_event": attached,
                                               "stop_s": round(stop_s, 3)})
            return first

        samples, errors = interleave(wildcard_runs, {t: (lambda t=t: wild(t)) for t in ("ebpfpy", "bpftrace")})
    finally:
        spin.kill()
    m = Metric("wildcard attach: t:syscalls:sys_enter_* (to first event)", "s", Target("le", 0.1),
               "wall time from fork until the `Attaching N probes...` line and then the first event "
               "were read from the tool's stdout, for `t:syscalls:sys_enter_* { @[probe] = count(); }` "
               "followed by a `sys_enter_getppid` probe (filtered on a helper that calls getppid every "
               f"ms) whose printf is the first event; stopped with SIGINT. {wildcard_runs}x per tool.")
    m.samples.update(samples)
    m.na.update(errors)
    m.raw = {"per_run": extra}
    for tool, rows in extra.items():
        if rows:
            attached = ", ".join(str(r["attached_at_first_event"]) for r in rows)
            m.notes.append(f"{tool}: {rows[0]['probes']} probes; tracepoints attached when the first "
                           f"event arrived (bpftool perf): {attached}; "
                           f"SIGINT to exit took "
                           f"{', '.join(str(r['stop_s']) for r in rows)} s")
    m.notes.append("bpftrace's long wildcard runs (~26 s) are its exit, detaching the tracepoints "
                   "after SIGINT; see the next row")
    metrics.append(m)
    stop = Metric("wildcard: SIGINT to exit (detach 361 tracepoints)", "s", Target("report"),
                  "in the wildcard runs: time from sending SIGINT to the tool's exit (includes printing the "
                  "@[probe] map of ~360 keys).")
    stop.samples = {t: [r["stop_s"] for r in extra.get(t, [])] for t in ("ebpfpy", "bpftrace")}
    stop.na.update(errors)
    metrics.append(stop)
    mm = Metric("peak RSS: wildcard sys_enter_*", "MB", Target("le", 0.5),
                "ru_maxrss of the CLI process in the wildcard attach runs (wait4 by bench/spawn.c).")
    mm.samples.update({t: got.get(t, []) for t in ("ebpfpy", "bpftrace")})
    mm.na.update(errors)
    mem_rows.append(mm)
    return metrics + mem_rows
