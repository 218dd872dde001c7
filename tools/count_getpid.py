#!/usr/bin/env python3
"""Count getpid() calls per process with a BPF program written in Python.

Real tracing, end to end, with no compiler: a program assembled with
``ebpfpy.isa.builder`` sits on the ``syscalls:sys_enter_getpid`` tracepoint
(perf_event_open(PERF_TYPE_TRACEPOINT) + a BPF link) and counts calls per
tgid in a hash map. A child Python process then calls ``os.getpid()`` N
times; the count read back from the map must be exactly N.

The child waits on stdin before and after its loop, so the interpreter's own
start-up and shutdown (which may call getpid) fall outside the window we
measure: we read the child's counter at both fences and report the difference.

    sudo python tools/count_getpid.py 1000
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

from ebpfpy.bpffs import ensure_tracefs
from ebpfpy.isa.builder import FP, R0, R1, R2, R3, R4, Builder
from ebpfpy.links import Link, attach_perf_event
from ebpfpy.maps import Map
from ebpfpy.progs import Program
from ebpfpy.sys import perf
from ebpfpy.sys.consts import UpdateFlag

CHILD = r"""
import os, sys
n = int(sys.argv[1])
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
for _ in range(n):
    os.getpid()
sys.stdout.write("done\n"); sys.stdout.flush()
sys.stdin.readline()
"""


def build_program(counts: Map) -> list:
    """counts[tgid] += 1, inserting 1 when the tgid is new (atomic, so exact on every CPU)."""
    b = Builder()
    b.call("get_current_pid_tgid")
    b.rsh(R0, 32)  # upper half: tgid, the process id user space sees
    b.stx("w", FP, R0, -4)
    _lookup_and_add(b, counts, miss="insert")
    b.ja("out")
    b.label("insert")
    b.st("dw", FP, 1, -16)
    b.ld_map_fd(R1, counts)
    b.mov(R2, FP)
    b.add(R2, -4)
    b.mov(R3, FP)
    b.add(R3, -16)
    b.mov(R4, int(UpdateFlag.NOEXIST))
    b.call("map_update_elem")
    b.jeq(R0, 0, "out")
    # Another CPU inserted this tgid between our lookup and update: add to its entry.
    _lookup_and_add(b, counts, miss="out")
    b.label("out")
    b.mov(R0, 0)
    b.exit()
    return b.build()


def _lookup_and_add(b: Builder, counts: Map, miss: str) -> None:
    """r0 = counts[*(fp-4)]; if found, atomically add 1, else jump to ``miss``."""
    b.ld_map_fd(R1, counts)
    b.mov(R2, FP)
    b.add(R2, -4)
    b.call("map_lookup_elem")
    b.jeq(R0, 0, miss)
    b.mov(R1, 1)
    b.atomic_add("dw", R0, R1, 0)


def tracepoint_id(category: str, event: str) -> int:
    root = ensure_tracefs()
    with open(os.path.join(root, "events", category, event, "id")) as f:
        return int(f.read())


def attach_tracepoint(prog: Program, category: str, event: str) -> Link:
    ev = perf.perf_event_open(perf.PerfType.TRACEPOINT, tracepoint_id(category, event), pid=-1, cpu=0)
    return attach_perf_event(prog, ev, description=f"tracepoint:{category}:{event}")


def count_child(n: int) -> tuple[int, int, str]:
    """Run a child that calls getpid() n times; return (child pid, calls counted, link kind)."""
    with Map.create("hash", key="I", value="Q", max_entries=1024, name="getpid_counts") as counts, \
            Program.load("tracepoint", build_program(counts), name="count_getpid") as prog, \
            attach_tracepoint(prog, "syscalls", "sys_enter_getpid") as link:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(n)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "ready"
            before = counts.get(child.pid, 0)
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "done"
            after = counts.get(child.pid, 0)
            child.stdin.write("exit\n")
            child.stdin.flush()
        finally:
            child.stdin.close()
            child.wait(timeout=30)
        return child.pid, after - before, link.kind


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=1000, help="getpid() calls the child makes")
    args = parser.parse_args(argv)
    pid, count, kind = count_child(args.n)
    print(f"pid {pid}: {count} getpid() calls counted (expected {args.n}, attached via {kind})")
    return 0 if count == args.n else 1


if __name__ == "__main__":
    sys.exit(main())
