"""Code size: the kernel's own count of BPF instructions for what each tool loads.

While a tool runs a script, the ids of the programs it holds come from
``/proc/PID/fdinfo`` (prog fds and links), and their ``bytes_xlated`` from
``bpftool prog show`` (the instructions after the verifier's rewrites, the
same for both tools). Compared per script as total instructions, since
the tools may split a multi-attach-point probe into a different number
of programs; the program counts are kept alongside.
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from harness import HERE, ROOT, Metric, Proc, Target, ToolFailed, attaching, median, prog_ids_of, tool_argv


def corpus() -> list:
    """bench/corpus/*.bt then the 0.17-language copies of our tools (path list): the bench compares
    with bpftrace 0.17, which cannot read tools/*.bt, written in today's language."""
    return sorted(glob.glob(os.path.join(HERE, "corpus", "*.bt"))) + \
        sorted(glob.glob(os.path.join(ROOT, "tests", "kernel", "tools_017", "*.bt")))


def xlated_sizes(ids: set) -> dict:
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True).stdout
    sizes = {}
    for p in json.loads(out or "[]"):
        # bpftrace 0.17 does not keep its BEGIN/END programs loaded while the
        # script runs, so neither tool's are counted.
        if p.get("id") in ids and p.get("name") not in ("BEGIN", "END"):
            sizes[p["id"]] = p.get("bytes_xlated", 0) // 8
    return sizes


def loaded_size(tool: str, path: str, timeout: float = 30.0) -> tuple:
    """(total xlated instructions, number of programs) while ``tool`` runs ``path``."""
    with Proc(tool_argv(tool, path)) as p:
        if p.wait_for(attaching, timeout) is None:
            p.kill()
            raise ToolFailed(p.error_text())
        # The set of programs is final once it has not changed for three polls.
        deadline = time.perf_counter() + timeout
        last, same = None, 0
        while same < 3 and time.perf_counter() < deadline:
            if not p.alive():
                break
            ids = prog_ids_of(p.tool_pid)
            same = same + 1 if ids and ids == last else 0
            last = ids
            time.sleep(0.1)
        sizes = xlated_sizes(last or set())
        p.stop(30)
        if not sizes:
            raise ToolFailed(p.error_text() if p.status else "no programs seen")
        return sum(sizes.values()), len(sizes)


def measure() -> list:
    rows = []

    def size_of(tool: str, path: str) -> dict:
        try:
            insns, progs = loaded_size(tool, path)
            return {"insns": insns, "progs": progs}
        except ToolFailed as err:
            return {"na": str(err)}

    # Sizes do not depend on timing, so both tools run each script at once.
    with ThreadPoolExecutor(2) as pool:
        for path in corpus():
            row = {"script": os.path.relpath(path, ROOT)}
            futures = {tool: pool.submit(size_of, tool, path) for tool in ("ebpfpy", "bpftrace")}
            row.update({tool: f.result() for tool, f in futures.items()})
            a, b = row["ebpfpy"].get("insns"), row["bpftrace"].get("insns")
            row["ratio"] = a / b if a and b else None
            rows.append(row)

    both = [r for r in rows if r["ratio"] is not None]
    how = ("total BPF instructions (kernel `bytes_xlated`/8 from `bpftool prog show`) of the programs the "
           "tool holds while running each script (prog ids from /proc/PID/fdinfo), over "
           f"{len(rows)} scripts (bench/corpus/*.bt and tests/kernel/tools_017/*.bt); one run each "
           "(deterministic; both tools run a script side by side). "
           f"{len(both)} scripts ran under both tools; ratios are per script. BEGIN/END programs are "
           "left out for both tools (bpftrace 0.17 does not keep them loaded while a script runs).")
    med = Metric("code size: median per-script ratio", "insns", Target("le", 1.0), how)
    worst = Metric("code size: worst per-script ratio", "insns", Target("le", 1.5),
                   "largest ebpfpy/bpftrace instruction ratio over the same scripts; "
                   "cells show that script's instruction totals.")
    for m in (med, worst):
        m.raw = {"per_script": rows}
    med.details = table(rows)
    if not both:
        for m in (med, worst):
            m.na["ebpfpy"] = "no script ran under both tools"
        return [med, worst]
    med.samples = {"ebpfpy": [r["ebpfpy"]["insns"] for r in both],
                   "bpftrace": [r["bpftrace"]["insns"] for r in both]}
    med.ratio_fn = lambda m: median([r["ratio"] for r in both])
    med.notes.append("cells: median total instructions per script; ratio: median of the per-script ratios")
    top = max(both, key=lambda r: r["ratio"])
    worst.samples = {"ebpfpy": [top["ebpfpy"]["insns"]], "bpftrace": [top["bpftrace"]["insns"]]}
    worst.notes.append(f"worst script: {top['script']}")
    over = [r["script"] for r in both if r["ratio"] > 1.5]
    if over:
        worst.notes.append("scripts over 1.5: " + ", ".join(over))
    failed = [f"{r['script']} ({t}: {r[t]['na']})" for r in rows for t in ("ebpfpy", "bpftrace")
              if "na" in r[t]]
    if failed:
        med.notes.append("not measured: " + "; ".join(failed))
    return [med, worst]


def table(rows: list) -> str:
    """Per-script markdown table for results.md."""
    out = ["| script | ebpfpy insns (progs) | bpftrace insns (progs) | ratio |", "|---|---|---|---|"]
    for r in rows:
        cells = []
        for t in ("ebpfpy", "bpftrace"):
            c = r[t]
            cells.append(f"{c['insns']} ({c['progs']})" if "insns" in c else f"n/a ({c['na'][:80]})")
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "n/a"
        out.append(f"| {r['script']} | {cells[0]} | {cells[1]} | {ratio} |")
    return "\n".join(out)
