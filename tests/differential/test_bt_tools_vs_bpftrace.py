"""A corpus we did not write: Debian's bpftrace tools (``/usr/sbin/*.bt``) under both tools.

Each tool is checked twice:

- **front end and load**: ``bpftrace -d TOOL`` (0.17's dry run: parse, analyse,
  compile, attach nothing) against ``pybpftrace -dd TOOL`` (the same, and every
  program loaded into the kernel, so the verifier has accepted all we generate).
  Both accept or both reject, with the same exit status and the same stderr
  (errors and warnings, byte for byte, minus this VM's RLIMIT_MEMLOCK line).
- **a run** (tools with no kprobe, which this kernel lacks; the 6.1 guest has no
  bpftrace to compare with): both tools run the tool with ``-c 'workload 3'``, so
  the run ends when the workload does. Same exit status, same stderr, and the
  same stdout wherever bpftrace's own stdout is reproducible: a second bpftrace
  run tells which leading lines are (the ``Attaching`` line and BEGIN's header),
  and ours must repeat those exactly; the maps printed must include those bpftrace prints
  in both of its runs, and be among those it prints in either.

Disagreements we know of are listed in KNOWN with their cause (strict xfail: a fix
shows up as a failure until the entry goes).
"""
from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.bpftrace, pytest.mark.kernel, pytest.mark.btf]

TOOLS = sorted(glob.glob("/usr/sbin/*.bt"))
TIMEOUT = 90
ENV = dict(os.environ, PYBPFTRACE_COMPAT="0.17", PYTHONDONTWRITEBYTECODE="1")
OURS = [sys.executable, "-m", "ebpfpy.bpftrace"]


def _no_kprobes() -> bool:
    from ebpfpy import features

    return not features.has("kprobes")


# tool -> why ours differs from 0.17's dry run (each with a reproducer in docs/pybpftrace.md)
KNOWN_FRONT_END = {
    "loads": "kaddr() of a missing symbol: 0.17 says 'ERROR: Failed to compile: Failed to resolve kernel "
             "symbol: avenrun' without a location; the message is made in emit/calls.py",
    "runqlat": "0.17's clang fails on /usr/include/linux/sched.h (unknown type name '__aligned_u64'): "
               "we have no C compiler to fail the same way",
    "runqlen": "0.17 takes the kernel's BTF 'struct cfs_rq' over the script's own definition "
               "(6.18 renamed nr_running); ours uses the script's",
    "tcpdrop": "0.17's clang retries without BTF (BPFTRACE_HAVE_BTF undefined) when the BTF types conflict "
               "with <sys/socket.h>, then misses <net/sock.h>; we do not run clang",
}
KPROBE_ONLY = {
    # a kprobe wildcard or kretprobe on a kernel without kprobes: ours says why at compile time
    # (deliberate); 0.17 warns that it cannot read available_filter_functions and drops the probe
    "dcsnoop": "kretprobe/wildcard without kprobes", "vfscount": "kprobe wildcard without kprobes",
    "vfsstat": "kprobe wildcard without kprobes",
}


def _name(path: str) -> str:
    return os.path.basename(path)[:-3]


def _front_end_params():
    out = []
    for path in TOOLS:
        name = _name(path)
        marks = []
        if name in KNOWN_FRONT_END:
            marks.append(pytest.mark.xfail(reason=KNOWN_FRONT_END[name], strict=True))
        elif name in KPROBE_ONLY:
            marks.append(pytest.mark.xfail(_no_kprobes(), reason=KPROBE_ONLY[name], strict=True))
        out.append(pytest.param(path, id=name, marks=marks))
    return out


def _stderr(text: str) -> str:
    return "".join(line for line in text.splitlines(True) if "RLIMIT_MEMLOCK" not in line)


def _run(argv: list, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, errors="surrogateescape", timeout=timeout,
                          env=ENV, stdin=subprocess.DEVNULL, check=False)


def _has_traceback(text: str) -> bool:
    return "Traceback (most recent call last)" in text or "internal compiler error" in text


def test_corpus_is_there():
    if not TOOLS:
        pytest.skip("bpftrace's tools are not installed (/usr/sbin/*.bt)")
    assert len(TOOLS) >= 30


@pytest.mark.parametrize("path", _front_end_params())
def test_front_end_and_load(path):
    theirs = _run(["bpftrace", "-d", path])
    ours = _run([*OURS, "-dd", path])
    assert not _has_traceback(ours.stderr), ours.stderr
    assert (ours.returncode, ours.stderr) == (theirs.returncode, _stderr(theirs.stderr))
    if ours.returncode == 0:  # -dd loaded every program: the verifier's log of each is in stdout
        assert "Program for " in ours.stdout or "processed " in ours.stdout


# -- runs ----------------------------------------------------------------------------------------

# tools whose maps fill from what the whole machine does meanwhile: profile ticks on busy CPUs
# (cpuwalk's `profile:hz:99 /pid/`), block I/O by anyone (bitesize's block_rq_issue). A run as short
# as the workload's may see none, in either tool; the maps it prints must be ones the tool fills
SAMPLED = frozenset(("cpuwalk", "bitesize"))
_KPROBE_LINE = re.compile(r"^\s*(kprobe|kretprobe|k|kr):", re.M)
KNOWN_RUN = dict(KNOWN_FRONT_END)


def _runnable(path: str) -> bool:
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    return not (_KPROBE_LINE.search(text) and _no_kprobes())


def _run_params():
    out = []
    for path in TOOLS:
        name = _name(path)
        if not _runnable(path):
            continue  # kprobe tools: the front-end test above; their runs need the 6.1 guest
        marks = [pytest.mark.xfail(reason=KNOWN_RUN[name], strict=True)] if name in KNOWN_RUN else []
        out.append(pytest.param(path, id=name, marks=marks))
    return out


def _common_prefix(a: list, b: list) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


_MAP_LINE = re.compile(r"^(@\w*)(\[.*\])?: ")


_HIST_ROW = re.compile(r"^([\[(][^|]*[\])])\s+\d+ \|[@ ]*\|$")


def _timing_free(line: str) -> str:
    """A histogram row with its count and bar masked; any other line as it is."""
    m = _HIST_ROW.match(line)
    return f"{m.group(1)} N" if m else line


def _maps(stdout: str) -> set:
    """The names of the maps printed (at exit or by print())."""
    return {m.group(1) for line in stdout.splitlines() if (m := _MAP_LINE.match(line))}


@pytest.mark.parametrize("path", _run_params())
def test_run_under_workload(path, workload):
    argv = ["-c", f"{workload} 3", path]
    theirs = _run(["bpftrace", *argv])
    ours = _run([*OURS, *argv])
    assert not _has_traceback(ours.stderr), ours.stderr
    assert ours.returncode == theirs.returncode, ours.stderr
    assert ours.stderr == _stderr(theirs.stderr)
    if ours.stdout == theirs.stdout:
        return
    # what bpftrace itself prints the same way twice is what ours must print
    again = _run(["bpftrace", *argv])
    mine, first, second = (p.stdout.split("\n") for p in (ours, theirs, again))
    stable = _common_prefix(first, second)
    # what comes after the first empty line is what the tool saw of the whole system (bitesize's
    # `@[git]` is whatever else did I/O meanwhile): the map names are compared below, not the lines
    if "" in first[:stable]:
        stable = first.index("")
    assert stable >= 1 or not first[0], "bpftrace's own first line changed between runs"
    # a histogram's counts are timing (cpuwalk's profile ticks per CPU under a loaded machine):
    # its buckets and the layout must be 0.17's, the counts and bars need not
    assert [_timing_free(line) for line in mine[:stable]] == [_timing_free(line) for line in first[:stable]]
    if _name(path) in SAMPLED:  # whether a tick or an I/O came meanwhile is timing: maps may be empty
        with open(path, encoding="utf-8", errors="replace") as f:
            declared = set(re.findall(r"@\w*", f.read()))  # in either direction: maps the tool fills
        assert _maps(ours.stdout) <= declared and _maps(theirs.stdout) | _maps(again.stdout) <= declared
        return
    assert _maps(theirs.stdout) & _maps(again.stdout) <= _maps(ours.stdout) <= _maps(theirs.stdout) | _maps(
        again.stdout)


def test_timing_free_masks_only_histogram_counts():
    assert _timing_free("[0, 1)                10 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|") == \
        _timing_free("[0, 1)                11 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|")
    assert _timing_free("[0, 1)  1 |@|") != _timing_free("[1, 2)  1 |@|")
    assert _timing_free("@[comm]: 12") == "@[comm]: 12"


def test_maps_and_prefix_helpers():
    out = "Attaching 2 probes...\nhdr\nev 1: 2\n\n\n@a[x]: 1\n@b: \n[1]  1 |@|\n\n@c: 3\n@d[1, a: b]: 4\n"
    assert _maps(out) == {"@a", "@b", "@c", "@d"}
    assert _maps("Attaching 1 probe...\n") == set()
    assert _common_prefix(["a", "b", "c"], ["a", "b", "d"]) == 2
