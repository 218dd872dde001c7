"""pybpftrace against bpftrace 0.17: the same scripts, the same workload, the same stdout.

Every script of ``corpus/scripts.py`` runs once under each tool with
``-c 'workload N'``; the outputs are compared after normalising only what is
truly nondeterministic: the order of map entries whose values are equal
(bpftrace's sort is unstable) and bpftrace's RLIMIT_MEMLOCK complaint, which
goes to stderr and so never reaches the comparison.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = [pytest.mark.bpftrace, pytest.mark.kernel]

def _load_corpus():
    """The corpus is a plain module next to this file (tests/ is not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parent / "corpus" / "scripts.py"
    spec = importlib.util.spec_from_file_location("pybpftrace_corpus", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CASES


CASES = _load_corpus()
ROUNDS = 3
TIMEOUT = 60


def _options(case) -> dict:
    return case[2] if len(case) > 2 else {}


def _run(argv: list, env: dict) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **env)
    # surrogateescape: a string's bytes that are not UTF-8 are printed raw (the non_utf8 cases)
    return subprocess.run(argv, capture_output=True, text=True, errors="surrogateescape", timeout=TIMEOUT,
                          env=full_env)


def run_case(case, workload: str) -> tuple:
    """Run one script under both tools; returns (ours, theirs) as CompletedProcess."""
    script = case[1].replace("@WORKLOAD@", workload)
    opts = _options(case)
    command = f"{workload} {opts.get('rounds', ROUNDS)}"
    tail = ["-c", command, *opts.get("flags", ()), "-e", script, *opts.get("args", ())]
    env = opts.get("env", {})
    theirs = _run(["bpftrace", *tail], env)
    ours = _run([sys.executable, "-m", "ebpfpy.bpftrace", *tail], env)
    return ours, theirs


_MAP_LINE = re.compile(r"^(@[A-Za-z0-9_]*)(\[.*\])?: (.*)$")


def _sort_equal_runs(lines: list) -> list:
    """Sort the lines of each run of map entries that share the map name and the value."""
    out, run, run_id = [], [], None
    for line in lines + [None]:
        m = _MAP_LINE.match(line) if line is not None else None
        ident = (m.group(1), m.group(3)) if m and m.group(2) else None
        if ident is None or ident != run_id:
            out.extend(sorted(run))
            run, run_id = [], ident
        if ident is None:
            if line is not None:
                out.append(line)
        else:
            run.append(line)
    return out


def _normalise_json_line(line: str) -> str:
    try:
        doc = json.loads(line)
    except ValueError:
        return line
    if doc.get("type") == "map":
        for name, data in doc["data"].items():
            if isinstance(data, dict):
                items = list(data.items())
                # order within runs of equal values is unspecified
                groups, out = [], []
                for key, value in items:
                    if groups and groups[-1][0][1] == value:
                        groups[-1].append((key, value))
                    else:
                        groups.append([(key, value)])
                for group in groups:
                    out.extend(sorted(group))
                doc["data"][name] = dict(out)
        return json.dumps(doc)
    return line


def normalise(text: str, is_json: bool) -> str:
    lines = text.split("\n")
    if is_json:
        lines = [_normalise_json_line(line) for line in lines]
    return "\n".join(_sort_equal_runs(lines))


@pytest.fixture(scope="module")
def results(workload):
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {case[0]: pool.submit(run_case, case, workload) for case in CASES}
        return {name: fut.result() for name, fut in futures.items()}


def _same(ours, theirs, is_json: bool) -> bool:
    return ours.returncode == theirs.returncode and normalise(ours.stdout, is_json) == normalise(theirs.stdout, is_json)


def test_corpus_is_large_enough():
    assert len(CASES) >= 100
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_same_output(case, results, workload):
    ours, theirs = results[case[0]]
    is_json = "json" in _options(case).get("flags", ())
    if not _same(ours, theirs, is_json):
        # three scripts at a time on a loaded machine: one serial rerun before judging
        ours, theirs = run_case(case, workload)
    assert ours.returncode == theirs.returncode, ours.stderr
    assert normalise(ours.stdout, is_json) == normalise(theirs.stdout, is_json), ours.stderr
    if theirs.returncode:  # a script error: the same message (bpftrace may add later ones)
        assert _errors(theirs.stderr).startswith(_errors(ours.stderr))


def _errors(stderr: str) -> str:
    return "\n".join(line for line in stderr.splitlines() if "RLIMIT_MEMLOCK" not in line)


def test_normalise_sorts_only_equal_runs():
    text = "@[b]: 1\n@[a]: 1\n@[c]: 2\n@x: 1\n"
    assert normalise(text, False) == "@[a]: 1\n@[b]: 1\n@[c]: 2\n@x: 1\n"
    assert normalise("@[b]: 2\n@[a]: 1\n", False) == "@[b]: 2\n@[a]: 1\n"
