"""``pybpftrace --emulate`` against pybpftrace on the kernel: the same script, the same stdout.

Every case of the differential corpus (tests/differential/corpus/scripts.py) whose probes
are all ones the emulator runs (BEGIN, END, interval, profile) is run twice, as the
differential test runs it (``-c 'workload N'``, its flags, arguments and environment): once
loaded into the kernel, once in ``ebpfpy.vm``. Exit status and stdout must be the same,
after the differential test's own normalisation (the order of map entries of equal value).
``NONDETERMINISTIC`` lists the cases whose output differs from run to run even on the kernel.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ebpfpy.bpftrace.emulate import KINDS
from ebpfpy.bpftrace.parser import parse

pytestmark = pytest.mark.kernel

HERE = Path(__file__).resolve().parent
DIFFERENTIAL = HERE.parent / "differential"
TIMEOUT = 60

# case name -> why its output differs between two runs on the kernel itself (none of today's cases)
NONDETERMINISTIC: dict[str, str] = {}


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CORPUS = _module(DIFFERENTIAL / "corpus" / "scripts.py", "emulate_corpus").CASES
# the differential test's normalisation; its module is a plain file beside the corpus
NORMALISE = _module(DIFFERENTIAL / "test_pybpftrace_vs_bpftrace.py", "emulate_differential").normalise


def _options(case) -> dict:
    return case[2] if len(case) > 2 else {}


def emulated_only(script: str) -> bool:
    """Whether every probe of the script is one the emulator runs (a script that does not
    parse is not one: its error is the parser's, not the emulator's, to compare)."""
    try:
        program = parse(script, "stdin")
    except Exception:
        return False
    return all(point.kind in KINDS for probe in program.probes for point in probe.attach_points)


# The corpus has no timers: these run interval and profile probes (and -kk), without a -c command
# (which would end the run when it exits), each ended by its own exit().
_ALONE = {"command": False}
EXTRA = [
    ("interval_s_ticks", 'i:s:1 { printf("%d\\n", @n); @n++; if (@n == 2) { exit(); } }', _ALONE),
    ("interval_ms_end", 'interval:ms:20 { @n++; printf("tick %d\\n", @n); if (@n == 3) { exit(); } } '
                        'END { print(@n); clear(@n); }', _ALONE),
    ("two_intervals", 'interval:ms:30 { @a++; } interval:ms:100 { printf("%d\\n", @a >= 2); exit(); } '
                      'END { clear(@a); }', _ALONE),
    # every online CPU takes samples, in the emulator as on the kernel
    ("profile_every_cpu", "profile:hz:99 { @cpus[cpu] = 1; } interval:ms:300 { exit(); }", _ALONE),
    # in the kernel the timer starts before BEGIN runs: a first tick within a few ms could come
    # before it (under load, 10 ms did once)
    ("begin_then_interval", 'BEGIN { @s = "go"; printf("begin\\n"); } interval:ms:200 { printf("%s\\n", @s); exit(); }',
     _ALONE),
    # -kk: failed reads report the kernel's errno (probe_read_kernel of a user address: -ERANGE)
    ("kk_read_errors", 'BEGIN { $x = *(int64 *)0; printf("%d|%s|%s\\n", $x, str(0), str(uptr(8))); exit(); }',
     {"command": False, "flags": ("-kk",)}),
]
CASES = [c for c in CORPUS if emulated_only(c[1].replace("@WORKLOAD@", "/bin/true"))] + EXTRA
# bpftrace 0.26's language and output (--compat=0.26): the timers and every fourth corpus case
MODERN_CASES = CASES[:-len(EXTRA):4] + EXTRA


def _run(argv: list, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, errors="surrogateescape", timeout=TIMEOUT,
                          env=dict(os.environ, **env))


def run_case(case, workload: str, emulate: bool, compat: str = "0.17") -> subprocess.CompletedProcess:
    opts = _options(case)
    script = case[1].replace("@WORKLOAD@", workload)
    command = ["-c", f"{workload} {opts.get('rounds', 3)}"] if opts.get("command", True) else []
    argv = [sys.executable, "-m", "ebpfpy.bpftrace", *(["--emulate"] if emulate else []),
            f"--compat={compat}", *command, *opts.get("flags", ()), "-e", script, *opts.get("args", ())]
    return _run(argv, opts.get("env", {}))


@pytest.fixture(scope="module")
def results(workload):
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {(c[0], emulate, compat): pool.submit(run_case, c, workload, emulate, compat)
                   for compat, cases in (("0.17", CASES), ("0.26", MODERN_CASES))
                   for c in cases for emulate in (False, True)}
        return {key: fut.result() for key, fut in futures.items()}


def test_the_corpus_has_emulated_cases():
    """The filter keeps BEGIN/END scripts and drops the tracepoint ones (a filter gone wrong
    would leave nothing, or everything, to compare)."""
    from_corpus = [c for c in CASES if c in CORPUS]
    assert len(from_corpus) >= 40
    assert len(from_corpus) < len(CORPUS)
    assert emulated_only('BEGIN { exit(); } interval:s:1 { } profile:hz:99 { } END { }')
    assert not emulated_only('BEGIN { exit(); } t:syscalls:sys_enter_getpid { }')


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_emulated_output_is_the_kernels(case, results):
    _compare(case, results, "0.17")


@pytest.mark.parametrize("case", MODERN_CASES, ids=[c[0] for c in MODERN_CASES])
def test_in_todays_language_too(case, results):
    _compare(case, results, "0.26")


def _compare(case, results, compat: str) -> None:
    if case[0] in NONDETERMINISTIC:
        pytest.skip(NONDETERMINISTIC[case[0]])
    kernel, emulated = results[(case[0], False, compat)], results[(case[0], True, compat)]
    assert emulated.stderr == kernel.stderr
    is_json = "json" in _options(case).get("flags", ())
    assert "Traceback" not in emulated.stderr, emulated.stderr
    assert emulated.returncode == kernel.returncode, emulated.stderr
    assert NORMALISE(emulated.stdout, is_json) == NORMALISE(kernel.stdout, is_json), emulated.stderr
