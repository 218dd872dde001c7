"""``--test`` and ``--bench`` (bpftrace 0.24/0.25): run a script's ``test:NAME`` or
``bench:NAME`` probes on demand, and nothing else.

Why here and not in the runtime: these probes are not traced events but programs we run
ourselves, as BEGIN is (``BPF_PROG_TEST_RUN`` through ``ebpfpy.attach.special``). The run
reuses the ordinary runtime for everything else (maps, the perf buffer, the decoders), with
its output sent to a buffer: a passing test's output is dropped and a failing one's printed,
a benchmark's is dropped, as bpftrace 0.26 does (the notes' E23).

A test fails when its program returns non-zero. pybpftrace's programs return 0 (``return N``
with a value is not in its grammar yet), so for now a test fails only by not loading.
Benchmarks are timed around each ``BPF_PROG_TEST_RUN`` call from Python, so ``Time(ns)``
includes the system call (raw tracepoint test runs take no repeat count); bpftrace times
inside the kernel, so its numbers are smaller.
"""
from __future__ import annotations

import copy
import io
import sys
import time

KINDS = ("test", "bench")
# a normal run drops these probes; a script left with none says which flag runs them
NOTHING_LEFT = {"bench": "ERROR: No probes attached; use --bench to run benchmark probes.",
                "test": "ERROR: No probes attached; use --test to run test probes."}
NO_PROBES_STATUS = 255  # bpftrace's exit status there
BENCH_MIN_SECONDS = 0.1  # each benchmark runs in batches until this much time has passed
BENCH_BATCH = 1000


def kind_of(plan) -> str:
    return plan.probe.partition(":")[0]


def drop_on_demand(script) -> str | None:
    """A normal run: the test and bench probes go; the error when nothing else is left."""
    kinds = [kind_of(p) for p in script.probes]
    script.probes = [p for p in script.probes if kind_of(p) not in KINDS]
    if script.probes:
        return None
    for kind in ("bench", "test"):
        if kind in kinds:
            return NOTHING_LEFT[kind]
    return None


def run(script, options, mode: str, make_runtime) -> int:
    """``--test`` or ``--bench``: those probes alone, each run and reported; the exit status.
    ``make_runtime`` is the driver's (passed in: the driver imports this module)."""
    from .output.writer import make_writer

    script = copy.copy(script)
    script.probes = [p for p in script.probes if kind_of(p) == mode]
    buffer = io.StringIO()
    writer = make_writer(options.fmt, buffer, buffering="full", modern=True)
    quiet = copy.copy(options)
    quiet.quiet = True
    runtime = make_runtime(script, quiet, writer)
    runtime.stop_after_begin = False
    runtime.exit_output = lambda: None  # no exit lines, no maps: only the report
    with runtime:
        names = [(p.probe.partition(":")[2], att) for p in script.probes
                 for att in runtime._attached if att.probe == p.probe]
        report = _tests(runtime, names, buffer) if mode == "test" else _bench(runtime, names, buffer)
        runtime._stop = True
    sys.stdout.write(report[0])
    sys.stdout.flush()
    return report[1]


def _take(runtime, buffer: io.StringIO) -> str:
    """What the probe printed since the last take."""
    runtime._drain(runtime._events)
    runtime.writer.stream.flush()
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _tests(runtime, names, buffer) -> tuple[str, int]:
    """gtest's layout, as bpftrace prints it (without its colours)."""
    out = [f"[==========] Running {_plural(len(names), 'test')}.\n"]
    failed = []
    for name, att in names:
        out.append(f"[ RUN      ] {name}\n")
        start = time.monotonic()
        retval = att.fire()
        micros = round((time.monotonic() - start) * 1_000_000)
        printed = _take(runtime, buffer)
        if retval:
            failed.append(name)
            out.append(printed)
            out.append(f"[  FAILED  ] {name} ({micros} μs)\n")
        else:
            out.append(f"[       OK ] {name} ({micros} μs)\n")
    out.append(f"[==========] {_plural(len(names), 'test')} ran.\n")
    out.append(f"[  PASSED  ] {_plural(len(names) - len(failed), 'test')}.\n")
    if failed:
        out.append(f"[  FAILED  ] {_plural(len(failed), 'test')}, listed below:\n")
        out.extend(f"[  FAILED  ] {name}\n" for name in failed)
    return "".join(out), 1 if failed else 0


def _bench(runtime, names, buffer) -> tuple[str, int]:
    out = [f"{'Benchmark':<41}{'Time(ns)':<15}Iterations\n", "-" * 66 + "\n"]
    for name, att in names:
        iterations, elapsed = 0, 0
        while elapsed < BENCH_MIN_SECONDS * 1e9:
            elapsed += att.run_timed(BENCH_BATCH)
            iterations += BENCH_BATCH
        _take(runtime, buffer)  # a benchmark's output is not shown
        out.append(f"{name:<41}{elapsed // iterations:<15}{iterations}\n")
    return "".join(out), 0
