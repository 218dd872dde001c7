"""Run every ebpfpy-vs-bpftrace benchmark and write bench/results.md and bench/results.json.

Usage: python bench/run.py [--quick] [--runs N] [--only GROUP ...] [--out DIR] [--from-checkout]
Needs root, gcc, bpftool and bpftrace 0.17. Nothing stays loaded: every
tool is stopped with SIGINT and reaped, and the loaded-program list is
compared before and after (a difference is reported on stderr).

pybpftrace is timed as its users run it: venv/bin/pybpftrace of a fresh venv
holding the wheel built from this tree; the in-process rows run in that venv's
python too. Neither ever has the current directory or the tree on sys.path,
so the results are the same from the repository's root, from any other
directory, from a fresh clone and from a developer checkout.
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
sys.path.insert(0, HERE)  # the bench's modules; the tree's root stays off sys.path

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
        "command": command(args),
    }


def command(args) -> str:
    """The command line of this run (--out left out: it is a path of this machine)."""
    words = ["python bench/run.py"]
    if args.quick:
        words.append("--quick")
    if args.runs is not None:
        words.append(f"--runs {args.runs}")
    if args.only:
        words.append("--only " + " ".join(args.only))
    if args.from_checkout:
        words.append("--from-checkout")
    return " ".join(words)


def choose_install(tmp: str, from_checkout: bool) -> tuple:
    """Point harness at the ebpfpy to time; (what it is, where its package is imported from).

    Exits when a fresh venv's tool would import some other ebpfpy: the results would be
    labelled with an install they did not measure. (The tools run without PYTHONPATH then.)
    """
    venv = None
    if not from_checkout:
        import install

        try:
            venv = install.make_venv(tmp, install.build_wheel(tmp))
        except (OSError, subprocess.CalledProcessError) as err:
            detail = getattr(err, "stderr", None) or b""
            detail = harness.error_line(detail.decode(errors="replace") if isinstance(detail, bytes) else detail)
            print(f"[bench] could not build a venv ({err}{'; ' + detail if detail else ''}); "
                  "timing this interpreter's install", file=sys.stderr)
    if venv is not None:
        harness.use_venv(venv)
        installed = "venv/bin/pybpftrace of a fresh venv holding the wheel built from this tree and its dependencies"
    else:
        harness.use_checkout()
        installed = f"this interpreter's install ({' '.join(['python', *harness.SAFE_PATH, '-m', 'ebpfpy.bpftrace'])})"
    try:
        where = harness.ebpfpy_location()
    except harness.ToolFailed as err:
        where = f"not importable: {err}"
    if venv is not None:
        venv = os.path.realpath(venv)
        if not os.path.realpath(where).startswith(os.path.join(venv, "")):
            sys.exit(f"[bench] the venv's python imports ebpfpy from {where}, not from the venv")
        where = "<venv>/" + os.path.relpath(os.path.realpath(where), venv)
    elif os.path.isdir(where):
        # What pip install does: byte-compile the package, so start-up measures running, not compiling
        # (this environment sets PYTHONDONTWRITEBYTECODE, which would otherwise recompile on every run).
        import compileall

        compileall.compile_dir(where, quiet=1)
    return installed, where


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 runs per tool (1 for the wildcard), not 5 (3)")
    ap.add_argument("--runs", type=int, metavar="N",
                    help="N runs per tool in every group, the wildcard's and the library's included")
    ap.add_argument("--only", nargs="*", choices=GROUPS, help="run only these groups")
    ap.add_argument("--out", default=HERE, help="directory for results.md/results.json (default: bench/)")
    ap.add_argument("--from-checkout", action="store_true",
                    help="run pybpftrace from this interpreter's (editable) install, not a fresh venv")
    args = ap.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        ap.error("--runs must be at least 1")
    runs = 3 if args.quick else 5
    wild_runs = 1 if args.quick else 3
    lib_runs = 1 if args.quick else 3
    if args.runs is not None:
        runs = wild_runs = lib_runs = args.runs
    groups = args.only or GROUPS
    os.makedirs(args.out, exist_ok=True)
    load = harness.LoadWatch()
    if not load.quiet_before():
        print(f"[bench] the machine is busy (1-minute load average {load.before[0]:.2f} on {load.cpus} CPUs): "
              "this run will not count as quiet; do not commit its results", file=sys.stderr)
    harness.ensure_tracefs()
    before = harness.loaded_prog_ids()
    started = time.perf_counter()
    metrics, library = [], []
    with tempfile.TemporaryDirectory(prefix="ebpfpy-bench-") as tmp:
        installed, where = choose_install(tmp, args.from_checkout)
        print(f"[bench] pybpftrace runs from {installed}; ebpfpy is imported from {where}", file=sys.stderr)
        loop = harness.build_c(tmp, "loop")
        harness.SPAWN = harness.build_c(tmp, "spawn")
        steps = {
            "startup": lambda: __import__("startup").measure(runs, wild_runs, loop),
            "codesize": lambda: __import__("codesize").measure(),
            "overhead": lambda: __import__("overhead").measure(runs, loop),
            "delivery": lambda: __import__("delivery").measure(runs, loop),
            "footprint": lambda: __import__("footprint").measure(),
            "library": lambda: __import__("library").compile_time(lib_runs if args.runs else max(lib_runs, 3)),
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
    env["ebpfpy imported from"] = where
    env["load"] = load.finish()
    print(f"[bench] quiet run: {'yes' if env['load']['quiet'] else 'no'} ({env['load']['rule']})", file=sys.stderr)
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
