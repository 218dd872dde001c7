"""BTF dump and instruction building speed (issue #18), for one or more source trees.

Usage: python bench/btf_speed.py [--runs N] [--tree LABEL=DIR ...] [--no-bpftool] [--btf-only]

Measures, for each tree (default: this checkout), as medians of N interleaved runs:

- ``ebpfpy btf dump /sys/kernel/btf/vmlinux --format c`` and ``--format raw`` to /dev/null:
  wall time, CPU time (user + system: what a busy machine disturbs least) and peak RSS
  (``/usr/bin/time -f "%e %U %S %M"``, as for bpftool below);
- ``btf.vmlinux()`` + ``find_struct("task_struct")`` + member lookups (what pybpftrace does at
  start-up for ``curtask->...``), timed in a fresh process;
- ``Builder`` emission of 1,000,000 instructions + ``build()`` + ``encode_all`` (bench/library.py's
  program, where most instructions repeat), timed in a fresh process, and the same with every
  instruction distinct;

and ``bpftool btf dump file /sys/kernel/btf/vmlinux format c|raw`` for comparison, in the same
rounds; each dump row adds a ``LABEL / bpftool`` ratio column (of the medians), and the interpreter's
own floor (``python -c pass``: start-up with this machine's site-packages, no ebpfpy) is a row of its
own, so what is left for ebpfpy to win is visible. The load average before and after is printed with
the machine's details: the ratios hold on a busy machine better than the times do. Each tree's
ebpfpy runs as ``python -P -c 'from ebpfpy.cli import main; main()'`` with PYTHONPATH=DIR (the
tree byte-compiled first, as pip does), so two trees (before and after a change) can be
compared on the same machine at the same time. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import compileall
import os
import platform
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VMLINUX = "/sys/kernel/btf/vmlinux"
PY = [sys.executable, "-P"] if sys.version_info >= (3, 11) else [sys.executable, "-I"]
CLI = "import sys; from ebpfpy.cli import main; sys.exit(main(prog_name='ebpfpy'))"

STARTUP = """
import time
t = time.perf_counter()
from ebpfpy.btf import vmlinux
spec = vmlinux()
tid = spec.find_struct("task_struct")
pid = spec.member(tid, "pid")
parent = spec.member(tid, "real_parent")
comm = spec.member(spec.resolve(spec[parent.type].type), "comm")
spec.describe(pid.type)
print(time.perf_counter() - t)
"""

BUILD = """
import sys, time
sys.path.insert(0, {bench!r})
from library import N_INSNS, _program
from ebpfpy.isa import insn
if {distinct}:
    from ebpfpy.isa.builder import FP, R0, R1, R2, REGS, Builder
    def _program(n):  # every instruction different: nothing for the builder to share
        b = Builder()
        for i in range(n // 4 - 1):
            b.alu("add", R1, i)
            b.alu("mov", R2, i)
            b.ldx(8, REGS[1 + (i >> 15)], FP, -(i & 0x7fff))
            b.stx(8, FP, REGS[1 + (i >> 15)], i & 0x7fff)
        b.alu("mov", R0, 0)
        b.exit()
        return b.build()
t = time.perf_counter()
insn.encode_all(_program(N_INSNS))
print(time.perf_counter() - t)
"""


def _env(tree: str | None) -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if tree:
        env["PYTHONPATH"] = tree
    return env


def timed_command(argv: list, env: dict | None = None) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS MB) of one run, output to /dev/null."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as rep:
        subprocess.run(["/usr/bin/time", "-o", rep.name, "-f", "%e %U %S %M", *argv], check=True,
                       stdout=subprocess.DEVNULL, env=env)
        wall, user, system, kb = rep.read().split()[-4:]
    return float(wall), float(user) + float(system), int(kb) / 1024


def timed_inside(code: str, tree: str | None) -> float:
    """The seconds a fresh process reports for ``code``."""
    out = subprocess.run([*PY, "-c", code], check=True, capture_output=True, text=True, env=_env(tree))
    return float(out.stdout.split()[-1])


def fmt(values: list, unit: str) -> str:
    med = statistics.median(values)
    text = f"{med:.3g} {unit}"
    if len(values) > 1:
        text += f" [{min(values):.3g}–{max(values):.3g}]"
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tree", action="append", default=[], metavar="LABEL=DIR",
                    help="a source tree to time (its ebpfpy/ package); default: this checkout")
    ap.add_argument("--no-bpftool", action="store_true")
    ap.add_argument("--btf-only", action="store_true", help="leave out the Builder rows (a shorter run)")
    args = ap.parse_args(argv)
    trees = [t.split("=", 1) for t in args.tree] or [["this tree", ROOT]]
    for _, tree in trees:
        compileall.compile_dir(os.path.join(tree, "ebpfpy"), quiet=1)
    rows: dict[str, dict[str, list]] = {}

    def add(label: str, what: str, value) -> None:
        rows.setdefault(what, {}).setdefault(label, []).append(value)

    load_before = os.getloadavg()
    for _ in range(args.runs):  # interleaved: every tree and tool once per round
        for what, value in zip(("wall", "CPU", "peak RSS"), timed_command([*PY, "-c", "pass"], _env(None))):
            add("python", f"interpreter alone (python -c pass): {what}", value)
        for label, tree in trees:
            for fmt_name in ("c", "raw"):
                run = timed_command([*PY, "-c", CLI, "btf", "dump", VMLINUX, "--format", fmt_name], _env(tree))
                for what, value in zip(("wall", "CPU", "peak RSS"), run):
                    add(label, f"btf dump vmlinux, format {fmt_name}: {what}", value)
            add(label, "vmlinux() + find_struct(task_struct) + 3 member lookups", timed_inside(STARTUP, tree))
            for distinct in () if args.btf_only else (False, True):
                what = "Builder + build() + encode_all, 1,000,000 insns" + (" (all distinct)" if distinct else "")
                add(label, what, timed_inside(BUILD.format(bench=HERE, distinct=distinct), tree))
        if not args.no_bpftool:
            for fmt_name in ("c", "raw"):
                run = timed_command(["bpftool", "btf", "dump", "file", VMLINUX, "format", fmt_name])
                for what, value in zip(("wall", "CPU", "peak RSS"), run):
                    add("bpftool", f"btf dump vmlinux, format {fmt_name}: {what}", value)
    load_after = os.getloadavg()
    print(f"- {platform.node()}, kernel {platform.release()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}, {_bpftool_version()}")
    print(f"- load average (1, 5, 15 min) before: {_load(load_before)}; after: {_load(load_after)}")
    print()
    labels = [label for label, _ in trees] + ([] if args.no_bpftool else ["bpftool"])
    ratios = [] if args.no_bpftool else [label for label, _ in trees]
    print(f"| what ({args.runs} runs, median [min–max]) | " + " | ".join(labels)
          + "".join(f" | {label} / bpftool" for label in ratios) + " |")
    print("|---|" + "---|" * (len(labels) + len(ratios)))
    for what, by_label in rows.items():
        unit = "MB" if "RSS" in what else "s"
        if "python" in by_label:  # the interpreter's floor: one cell, in the first column
            cells = [fmt(by_label["python"], unit)] + ["—"] * (len(labels) + len(ratios) - 1)
        else:
            cells = [fmt(by_label[label], unit) if label in by_label else "—" for label in labels]
            for label in ratios:
                ref, mine = by_label.get("bpftool"), by_label.get(label)
                cells.append(f"{statistics.median(mine) / statistics.median(ref):.2f}" if ref and mine else "—")
        print(f"| {what} | " + " | ".join(cells) + " |")
    return 0


def _load(avg: tuple) -> str:
    return ", ".join(f"{x:.2f}" for x in avg)


def _bpftool_version() -> str:
    try:
        out = subprocess.run(["bpftool", "version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "no bpftool"
    return out.splitlines()[0]


if __name__ == "__main__":
    sys.exit(main())
