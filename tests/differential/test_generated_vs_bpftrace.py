"""Programs drawn from a grammar of the language (bt_grammar.py), run by bpftrace 0.17 and by us.

Hypothesis draws the programs, seeded (``derandomize``), so every run compares the same
ones and a failure reproduces: the program is in the assertion message. Most are correct
``BEGIN``/``END`` programs; some trace the syscalls of a deterministic workload under
``-c``; one in eight holds a deliberate mistake, so error text and exit status are
compared too. Both tools run each program as a script file; we compare the exit status,
stderr (minus this VM's RLIMIT_MEMLOCK line) and stdout byte for byte, except that map
entries with equal values may come in any order (0.17 prints ties in the kernel's hash
order, which changes from run to run; ours are by key).

``GEN_COUNT`` (default 240) and ``GEN_TRACED`` (default 40) set how many programs of each.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import bt_grammar
import pytest
from hypothesis import HealthCheck, given, settings

pytestmark = [pytest.mark.bpftrace, pytest.mark.kernel]

GEN_COUNT = int(os.environ.get("GEN_COUNT", "240"))
GEN_TRACED = int(os.environ.get("GEN_TRACED", "40"))
ENV = dict(os.environ, PYBPFTRACE_COMPAT="0.17", PYTHONDONTWRITEBYTECODE="1")
TIMEOUT = 60


def draw(strategy, count: int) -> list:
    """``count`` programs from ``strategy``, the same ones on every run."""
    out: list = []

    @settings(max_examples=count, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(program):
        out.append(program)

    collect()
    return list(dict.fromkeys(out))  # hypothesis may repeat an example


_ENTRY = re.compile(r"^(@\w*)(\[.*\])?: (.*)$")
_ROW = re.compile(r"^[\[(].*[\])] +(\d+) \|")


def _entries(lines: list) -> list:
    """Split printed output into items: a map entry (with a histogram's rows) or any other line."""
    items: list = []
    for line in lines:
        if items and items[-1][0] == "entry" and (_ROW.match(line) or (line == "" and items[-1][3])):
            items[-1][1].append(line)  # a histogram row, or the blank line that ends the histogram
            items[-1][3] = line != ""
            continue
        m = _ENTRY.match(line)
        if m and m.group(2):
            items.append(["entry", [line], m.group(1), m.group(3) == ""])
        else:
            items.append(["line", [line], None, False])
    return items


def _sort_value(item: list) -> str:
    """What bpftrace sorts a map's entries by: the value, or a histogram's total count."""
    first = item[1][0]
    if len(item[1]) == 1:
        return _ENTRY.match(first).group(3)
    return str(sum(int(_ROW.match(row).group(1)) for row in item[1][1:] if _ROW.match(row)))


def normalise(stdout: str) -> str:
    """Sort each run of one map's entries that share a sort value (ties have no order in 0.17)."""
    out: list = []
    run: list = []
    for item in _entries(stdout.split("\n")) + [["line", [], None, False]]:
        if item[0] == "entry" and run and (item[2], _sort_value(item)) == (run[0][2], _sort_value(run[0])):
            run.append(item)
            continue
        for entry in sorted(run, key=lambda e: e[1]):
            out.extend(entry[1])
        run = [item] if item[0] == "entry" else []
        if item[0] != "entry":
            out.extend(item[1])
    return "\n".join(out)


def _stderr(text: str) -> str:
    return "".join(line for line in text.splitlines(True) if "RLIMIT_MEMLOCK" not in line)


def run_both(program: str, directory: str, index: int, workload: str | None = None) -> tuple:
    """((rc, stdout, stderr) of bpftrace 0.17, the same of ours) for one program."""
    path = os.path.join(directory, f"g{index}.bt")
    with open(path, "w") as f:
        f.write(program)
    extra = ["-c", f"{workload} 3"] if workload else []
    out = []
    for argv in (["bpftrace", *extra, path], [sys.executable, "-m", "ebpfpy.bpftrace", *extra, path]):
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, errors="surrogateescape", timeout=TIMEOUT,
                                  env=ENV, stdin=subprocess.DEVNULL, cwd=directory, check=False)
        except subprocess.TimeoutExpired:
            out.append(("timeout", "", ""))
            continue
        out.append((proc.returncode, proc.stdout, _stderr(proc.stderr).replace(path, "G.bt")))
    return tuple(out)


def _without_repeats(stdout: str) -> str:
    """``stdout`` with a map entry that repeats the one before it dropped."""
    out: list = []
    for line in stdout.split("\n"):
        if not (out and line == out[-1] and _ENTRY.match(line)):
            out.append(line)
    return "\n".join(out)


def _same_keys_apart_from_repeats(theirs: str, ours: str) -> bool:
    """Whether ``theirs`` prints some key of a map twice, and both print the same keys and the same
    lines outside map entries (the values of the repeated keys are split between the copies)."""
    def parts(stdout: str) -> tuple:
        items = _entries(stdout.split("\n"))
        headers = [_ENTRY.match(item[1][0]).group(1, 2) for item in items if item[0] == "entry"]
        others = [item[1][0] for item in items if item[0] != "entry"]
        return headers, others
    (their_keys, their_lines), (our_keys, our_lines) = parts(theirs), parts(ours)
    return len(set(their_keys)) < len(their_keys) and set(their_keys) == set(our_keys) and \
        sorted(their_lines) == sorted(our_lines)


def known_class(program: str, theirs: tuple, ours: tuple) -> str | None:
    """The open disagreement a pair of runs belongs to, or None (they must then agree)."""
    if "Error loading program" in theirs[2] and ours[0] == 0:
        return "0.17's own code fails the kernel's verifier ('Error loading program'); ours loads and runs"
    if theirs[:1] + theirs[2:] == ours[:1] + ours[2:] and (
            normalise(_without_repeats(theirs[1])) == normalise(_without_repeats(ours[1]))
            or _same_keys_apart_from_repeats(theirs[1], ours[1])):
        return ("0.17 leaves stack bytes after a string's NUL in a map key, so one key becomes several "
                "entries that print alike; ours zero-pads keys")
    return None


def describe(program: str, theirs: tuple, ours: tuple) -> str:
    """The program and, for each of exit status, stdout and stderr that differ, both versions."""
    parts = [f"program:\n{program}"]
    for what, a, b in zip(("exit status", "stdout", "stderr"), theirs, ours):
        if a != b:
            parts.append(f"{what} of 0.17:\n{a}\n{what} of ours:\n{b}")
    return "\n".join(parts)


def _compare(programs: list, directory: str, workload: str | None = None) -> list:
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda ip: run_both(ip[1], directory, ip[0], workload), enumerate(programs)))
    mismatched = []
    for program, (theirs, ours) in zip(programs, runs):
        context = describe(program, theirs, ours)
        assert ours[0] != "timeout", context
        assert "Traceback" not in ours[2] and "internal compiler error" not in ours[2], context
        if theirs[0] == "timeout":
            continue
        same = (theirs[0], normalise(theirs[1]), theirs[2]) == (ours[0], normalise(ours[1]), ours[2])
        if not same and known_class(program, theirs, ours) is None:
            mismatched.append(context)
    return mismatched


def test_programs_are_varied_and_seeded():
    first = draw(bt_grammar.begin_programs(), 30)
    assert len(first) >= 25
    assert first == draw(bt_grammar.begin_programs(), 30)  # a failure reproduces


def test_normalise_orders_only_ties():
    theirs = "@a[2]: 1\n@a[1]: 1\n@a[3]: 5\n\n@b: 2\n"
    ours = "@a[1]: 1\n@a[2]: 1\n@a[3]: 5\n\n@b: 2\n"
    assert normalise(theirs) == normalise(ours)
    assert normalise("@a[3]: 5\n@a[1]: 1\n") != normalise("@a[1]: 1\n@a[3]: 5\n")
    h1 = "@h[1]: \n[2, 4)                 1 |@@@@|\n\n"
    h2 = "@h[-9]: \n[1]                    1 |@@@@|\n\n"
    h3 = "@h[7]: \n[1]                    2 |@@@@|\n\n"
    assert normalise(h1 + h2 + "\n") == normalise(h2 + h1 + "\n")  # equal totals: a tie
    assert normalise(h1 + h3) != normalise(h3 + h1)
    assert normalise(theirs) == theirs.replace("@a[2]: 1\n@a[1]: 1", "@a[1]: 1\n@a[2]: 1")


def test_known_classes_are_narrow():
    ok = (0, "", "")
    theirs = (0, "Attaching 1 probe...\n\n\n@m[1, a]: 1\n@m[1, a]: 1\n", "")
    assert known_class("", theirs, (0, "Attaching 1 probe...\n\n\n@m[1, a]: 2\n", ""))
    assert known_class("", theirs, (0, "Attaching 1 probe...\n\n\n@m[1, b]: 2\n", "")) is None
    assert known_class("", theirs, (1, "Attaching 1 probe...\n\n\n@m[1, a]: 2\n", "")) is None
    assert known_class("", ok, (0, "x\n", "")) is None


def test_begin_end_programs_match_bpftrace(tmp_path):
    programs = draw(bt_grammar.begin_programs(), GEN_COUNT)
    mismatched = _compare(programs, str(tmp_path))
    assert not mismatched, f"{len(mismatched)} of {len(programs)} differ; the first:\n\n" + \
        "\n\n".join(mismatched[:3])


def test_traced_programs_match_bpftrace(tmp_path, workload):
    programs = draw(bt_grammar.traced_programs(), GEN_TRACED)
    mismatched = _compare(programs, str(tmp_path), workload)
    assert not mismatched, f"{len(mismatched)} of {len(programs)} differ; the first:\n\n" + \
        "\n\n".join(mismatched[:3])
