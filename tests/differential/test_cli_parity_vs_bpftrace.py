"""Whole-CLI parity with bpftrace 0.17 where only the CLI shows it: stdout, stderr and exit status.

Cases from issue #4: ``str($1)`` cut to BPFTRACE_STRLEN, ``$1`` used as a
string (bpftrace goes on and reports the follow-up errors too), the stack
limit error (LLVM's text, no source position), and uprobe/usdt targets that
are missing (a missing file is an error; a missing function is dropped, and a
script left with no probe prints "No probes to attach" on stdout).
"""
import os
import re
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.bpftrace, pytest.mark.kernel]

BIG = 'str($1), str($2), str($3)'
CASES = [
    # (id, script, args, env)
    ("strlen-str-param", 'BEGIN { printf("%s|\\n", str($1)); exit(); }', ["abcdefgh"], {"BPFTRACE_STRLEN": "4"}),
    ("strlen-str-param-n", 'BEGIN { printf("%s|\\n", str($1, 2)); exit(); }', ["abcdefgh"], {"BPFTRACE_STRLEN": "4"}),
    ("strlen-map-key", 'BEGIN { @a = str($1); @b[str($1)] = 1; exit(); }', ["abcdefgh"], {"BPFTRACE_STRLEN": "4"}),
    ("str-param-digits", 'BEGIN { printf("%s|%s|\\n", str($1), str($2)); exit(); }', ["12345678"], {}),
    ("str-param-unset", 'BEGIN { printf("%s|\\n", str($3)); exit(); }', ["1"], {}),
    ("param-as-string-printf", 'BEGIN { printf("%s|\\n", $1); exit(); }', ["abcdefgh"], {}),
    ("param-as-string-compare", 'BEGIN { @a = $1 == "abc"; exit(); }', ["abcdefgh"], {}),
    ("param-as-string-map", 'BEGIN { @a = $1; exit(); }', ["abcdefgh"], {}),
    ("stack-limit-begin", f'BEGIN {{ @a = ({BIG}); exit(); }}', ["a", "b", "c"], {"BPFTRACE_STRLEN": "200"}),
    ("stack-limit-label", f't:syscalls:sys_enter_open*,u:/bin/bash:readline {{ @a = ({BIG}); exit(); }}',
     ["a", "b", "c"], {"BPFTRACE_STRLEN": "200"}),
    ("stack-limit-vars", 'BEGIN { $a = str($1); $b = str($2); $c = str($3); printf("%s%s%s\\n", $a, $b, $c); }',
     ["a", "b", "c"], {"BPFTRACE_STRLEN": "200"}),
    ("uprobe-missing-file", 'uprobe:/nonexistent:foo { 1 } uprobe:/bin/bash:nosuchfn { 2 }', [], {}),
    ("uprobe-missing-file-2", 'uprobe:/bin/bash:nosuchfn { 2 } uprobe:/nonexistent:foo { 1 }', [], {}),
    ("usdt-uprobe-missing-files", 'usdt:/nonexistent:a:b { 1 } uprobe:/nonexistent2:foo { 1 }', [], {}),
    ("uprobe-missing-function", 'uprobe:/bin/bash:nosuchfn { 2 }', [], {}),
    ("uprobe-missing-function-wild", 'uprobe:/bin/bash:nosuch* { 2 }', [], {}),
    ("uprobe-missing-function-dropped", 'uprobe:/bin/bash:nosuchfn { 2 } BEGIN { exit() }', [], {}),
    ("uprobe-one-of-two-missing", 'uprobe:/bin/bash:nosuchfn,uprobe:/bin/bash:readline { 2 } BEGIN { exit() }', [], {}),
    ("usdt-missing-probe", 'usdt:/bin/bash:nosuch { 2 }', [], {}),
    ("tracepoints-not-found", 'tracepoint:nosuch:* { 2 } BEGIN { exit() }', [], {}),
    ("path-outside-kfunc", 'BEGIN { printf("%s\\n", path(1)); exit(); }', [], {}),
    ("tracepoint-unknown-field", 't:syscalls:sys_enter_openat { @ = args->nosuch; }', [], {}),
    ("tracepoint-unknown-field-2", 't:syscalls:sys_enter_openat,t:sched:sched_switch { @ = args->nosuch; }', [], {}),
    ("tracepoint-unknown-field-3", 't:sched:sched_switch,t:syscalls:sys_enter_openat,t:sched:sched_wakeup '
     '{ @ = args->nosuch; }', [], {}),
    ("tracepoint-field-in-one-only", 't:sched:sched_switch,t:syscalls:sys_enter_openat { @ = args->prev_pid; }', [], {}),
]


def _run(argv, env):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=dict(os.environ, **env))


def _stderr(text: str) -> str:
    """bpftrace's RLIMIT_MEMLOCK complaint on this VM is noise, not output."""
    return "".join(line for line in text.splitlines(True) if "RLIMIT_MEMLOCK" not in line)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_same_as_bpftrace(case):
    _, script, args, env = case
    theirs = _run(["bpftrace", "-e", script, *args], env)
    ours = _run([sys.executable, "-m", "ebpfpy.bpftrace", "-e", script, *args], env)
    assert (ours.stdout, _stderr(ours.stderr), ours.returncode) == \
        (theirs.stdout, _stderr(theirs.stderr), theirs.returncode)


# -v: the node count (stderr), "Attaching <probe>" lines (stderr), and after the
# "Attaching N probes..." line one block per program with its id and the verifier's
# statistics line (stdout). Program ids and the instruction counts are ours to differ.
VERBOSE_CASES = [
    "BEGIN { @ = count(); exit(); }",
    't:syscalls:sys_enter_getppid /pid > 1/ { @[comm] = sum(args->__syscall_nr); } i:ms:100 { exit(); }',
    'BEGIN { $x = 1; $x += 2; $x++; if ($x > 1) { printf("%d\\n", $x); } else { print(1); } exit(); }',
    'BEGIN { $t = (1, "a"); @m[1, 2] = $t.0 ? 3 : 4; unroll(2) { $t = (2, "b"); } @x[1] += 2; exit(); }',
    "BEGIN { @ = ((struct task_struct *)curtask)->pid > 0; $i = 0; while ($i < 3) { $i++; } exit(); }",
]


def _verbose_normalised(text: str) -> str:
    text = re.sub(r"Program ID: \d+", "Program ID: N", text)
    return re.sub(r"processed \d+ insns .*", "processed N insns", text)


@pytest.mark.parametrize("script", VERBOSE_CASES)
def test_verbose_same_as_bpftrace(script):
    theirs = _run(["bpftrace", "-v", "-e", script], {})
    ours = _run([sys.executable, "-m", "ebpfpy.bpftrace", "-v", "-e", script], {})
    assert "INFO: node count: " in ours.stderr and "Program ID: " in ours.stdout
    assert (_verbose_normalised(ours.stdout), _stderr(ours.stderr), ours.returncode) == \
        (_verbose_normalised(theirs.stdout), _stderr(theirs.stderr), theirs.returncode)
