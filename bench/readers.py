"""Records per second delivered by ebpfpy's perf buffer and ring buffer readers.

A tracepoint program on syscalls:sys_enter_getpid (``ebpfpy.events.demo``)
writes one 24-byte record per getpid of tests/progs/getpid_loop, which
makes N calls; the reader counts what reaches its callback. The clock runs
from releasing the loop until the loop has exited and every record is
delivered, so the producer's own cost is included: compare the rows with
each other, and with the ``loop alone`` row (no program attached).

Lost is N minus delivered (N is known exactly). "reported" is what the
perf buffer's PERF_RECORD_LOST records said; it can lag, because the kernel
writes one only when a later record fits again. The ring buffer reports
nothing: its drops are failed bpf_ringbuf_output calls in the program.

Usage: python bench/readers.py [-n 1000000] [--pages 256] [--ringbuf-mb 8]
Needs root, gcc, and the kernel's perf_event_array and ringbuf maps.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from ebpfpy.events import demo  # the installed ebpfpy (the tree is not put on sys.path: see run.py)
from ebpfpy.events.perfbuf import PerfBuffer
from ebpfpy.events.ringbuf import RingBuffer
from ebpfpy.maps import Map

HERE = os.path.dirname(os.path.abspath(__file__))

SOURCE = os.path.join(os.path.dirname(HERE), "tests", "progs", "getpid_loop.c")


class Counter:
    def __init__(self):
        self.n = 0

    def perf(self, cpu, records):
        self.n += len(records)

    def ring(self, records):
        self.n += len(records)


def run(loop: str, n: int, kind: str, make_reader) -> tuple[int, str, float]:
    """(delivered, kernel-reported lost or "-", seconds) for one reader."""
    counter = Counter()
    out_kind = "ringbuf" if kind == "ringbuf" else "perf"
    with make_reader(counter) as (out_map, reader):
        child = subprocess.Popen([loop, str(n), "--wait"], stdin=subprocess.PIPE)
        try:
            prog = atts = None
            if reader is not None:
                prog, atts = demo.load_on_getpid(demo.syscall_output_program(out_kind, out_map, child.pid))
            start = time.perf_counter()
            child.stdin.write(b"x")
            child.stdin.close()
            if reader is not None:
                while child.poll() is None:
                    reader.poll(100)
                reader.consume()
                while reader.poll(0):
                    pass
            else:
                child.wait()
            seconds = time.perf_counter() - start
            for att in atts or ():
                att.close()
            if prog is not None:
                prog.close()
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
        if reader is None:
            return n, "-", seconds
        reported = f"{reader.lost:,}" if kind.startswith("perf") else "-"
        return counter.n, reported, seconds


class _Readers:
    """Context managers yielding (map, reader) for each table row."""

    def __init__(self, pages: int, ring_bytes: int):
        self.pages, self.ring_bytes = pages, ring_bytes

    def none(self, counter):
        return _Ctx(None, None)

    def perf(self, counter, **kw):
        m = Map.create("perf_event_array", 4, 4, os.cpu_count())
        return _Ctx(m, PerfBuffer(m, counter.perf, pages=self.pages, **kw))

    def ring(self, counter):
        m = Map.create("ringbuf", 0, 0, self.ring_bytes)
        return _Ctx(m, RingBuffer(m, counter.ring))


class _Ctx:
    def __init__(self, m, reader):
        self.m, self.reader = m, reader

    def __enter__(self):
        return self.m, self.reader

    def __exit__(self, *exc):
        if self.reader is not None:
            self.reader.close()
        if self.m is not None:
            self.m.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1_000_000, help="getpid calls (default 1,000,000)")
    ap.add_argument("--pages", type=int, default=256, help="perf ring pages per CPU (power of 2)")
    ap.add_argument("--ringbuf-mb", type=int, default=8, help="ring buffer size in MiB (power of 2)")
    args = ap.parse_args(argv)
    readers = _Readers(args.pages, args.ringbuf_mb << 20)
    watermark = args.pages * 4096 // 4
    rows = [
        ("loop alone (no program)", "none", readers.none),
        ("perfbuf, wakeup per record", "perf", lambda c: readers.perf(c)),
        (f"perfbuf, watermark {watermark >> 10} KiB", "perf-wm",
         lambda c: readers.perf(c, watermark=watermark)),
        ("ringbuf", "ringbuf", readers.ring),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        loop = demo.compile_c(SOURCE, tmp, "getpid_loop", "-O2")
        header = (f"{'reader':<32} {'records':>10} {'lost':>9} {'reported':>9} {'seconds':>8} "
                  f"{'records/s':>11}")
        print(header)
        print("-" * len(header))
        for label, kind, make in rows:
            delivered, reported, seconds = run(loop, args.n, kind, make)
            print(f"{label:<32} {delivered:>10,} {args.n - delivered:>9,} {reported:>9} {seconds:>8.3f} "
                  f"{delivered / seconds:>11,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
