"""Run every ebpfpy-vs-bpftrace benchmark and write bench/results.md and bench/results.json.

Usage: python bench/run.py [--quick] [--only GROUP ...] [--from-checkout]
Needs root, gcc, bpftool and bpftrace 0.17. Nothing stays loaded: every
tool is stopped with SIGINT and reaped, and the loaded-program list is
compared before and after (a difference is reported on stderr).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))

import harness  # noqa: E402

GROUPS = ("startup", "codesize", "overhead", "delivery", "footprint", "library")


def environment(runs: int, args) -> dict:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    bt = subprocess.run(["bpftrace", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "bpftrace": bt,
        "runs": runs,
        "command": "python bench/run.py" + (" --quick" if args.quick else ""),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 runs per tool (1 for the wildcard), not 5 (3)")
    ap.add_argument("--only", nargs="*", choices=GROUPS, help="run only these groups")
    ap.add_argument("--out", default=HERE, help="directory for results.md/results.json")
    ap.add_argument("--from-checkout", action="store_true",
                    help="run pybpftrace from this interpreter's (editable) install, not a fresh venv")
    args = ap.parse_args(argv)
    runs = 3 if args.quick else 5
    wild_runs = 1 if args.quick else 3
    lib_runs = 1 if args.quick else 3
    groups = args.only or GROUPS
    harness.ensure_tracefs()
    # What pip install does: byte-compile the package, so start-up measures running, not compiling
    # (this environment sets PYTHONDONTWRITEBYTECODE, which would otherwise recompile on every run).
    import compileall

    compileall.compile_dir(os.path.join(os.path.dirname(HERE), "ebpfpy"), quiet=1)
    before = harness.loaded_prog_ids()
    started = time.perf_counter()
    metrics, library = [], []
    with tempfile.TemporaryDirectory(prefix="ebpfpy-bench-") as tmp:
        installed = "this interpreter's install of the checkout"
        if not args.from_checkout:
            import install

            try:
                python = install.venv_python(tmp, install.build_wheel(tmp))
                harness.TOOLS["ebpfpy"] = [python, "-m", "ebpfpy.bpftrace"]
                installed = "a fresh venv holding the wheel built from this tree and its dependencies"
            except (OSError, subprocess.CalledProcessError) as err:
                print(f"[bench] could not build a venv ({err}); timing the checkout's install", file=sys.stderr)
        print(f"[bench] pybpftrace runs from {installed}", file=sys.stderr)
        loop = harness.build_c(tmp, "loop")
        harness.SPAWN = harness.build_c(tmp, "spawn")
        steps = {
            "startup": lambda: __import__("startup").measure(runs, wild_runs, loop),
            "codesize": lambda: __import__("codesize").measure(),
            "overhead": lambda: __import__("overhead").measure(runs, loop),
            "delivery": lambda: __import__("delivery").measure(runs, loop),
            "footprint": lambda: __import__("footprint").measure(),
            "library": lambda: __import__("library").compile_time(max(lib_runs, 3)),
        }
        for group in groups:
            t = time.perf_counter()
            print(f"[bench] {group} ...", file=sys.stderr, flush=True)
            try:
                metrics.extend(steps[group]())
            except Exception as err:  # one broken group must not lose the others
                print(f"[bench] {group} failed: {type(err).__name__}: {err}", file=sys.stderr)
                m = harness.Metric(f"{group} (group failed)", "", harness.Target("report"), "—")
                m.na = {"ebpfpy": f"{type(err).__name__}: {err}", "bpftrace": "not run"}
                metrics.append(m)
            if group == "library":
                library = __import__("library").measure(lib_runs)
            print(f"[bench] {group} done in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    env = environment(runs, args)
    env["duration"] = f"{time.perf_counter() - started:.0f} s"
    env["pybpftrace"] = installed
    harness.write_results(metrics, env, library, os.path.join(args.out, "results.md"),
                          os.path.join(args.out, "results.json"))
    # Other users of the machine may be running programs of their own: only
    # a new program that no live process holds (and bpftool perf does not
    # show attached) could be one we leaked.
    time.sleep(0.5)
    perf = subprocess.run(["bpftool", "perf", "list", "-j"], capture_output=True, text=True).stdout
    attached = {int(x) for x in __import__("re").findall(r'"prog_id":(\d+)', perf)}
    orphans = harness.loaded_prog_ids() - before - harness.held_prog_ids() - attached
    if orphans:
        print(f"[bench] WARNING: programs loaded during the run that no process holds: {sorted(orphans)}",
              file=sys.stderr)
    else:
        print("[bench] no programs left loaded by the benchmark (bpftool prog list checked)", file=sys.stderr)
    print(open(os.path.join(args.out, "results.md")).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
