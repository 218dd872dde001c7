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
    # a variable holding a map a later probe writes with a string is a string (#12)
    ("map-written-later-string", 'BEGIN { $s = @m; printf("%s|%d\\n", $s, 1); print($s); exit(); } '
                                 'END { @m = "xy"; }', [], {}),
    # literals folded past 64 bits wrap, as 0.17's arithmetic does
    ("literal-wraps", 'BEGIN { @x = -0xffffffffffffffff; printf("%d %u\\n", -0xfffffffffffffffe, 0xfffffffffffffff0); '
                      'exit(); }', [], {}),
    # tuples of string literals fit the 512-byte stack as in 0.17: each element is built in its place
    ("tuple-of-literals", 'BEGIN { $t = ("a", "b", "c"); print($t); exit(); }', [], {}),
    ("tuple-print-literal", 'BEGIN { print(("a", "b", "c")); @m = ("x", "y", "z", "w"); exit(); }', [], {}),
    ("tuple-swap-reads-itself", 'BEGIN { $u = ("x", "y"); $u = ($u.1, $u.0); print($u); exit(); }', [], {}),
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
    # positional parameters as numbers (C's stoll in any base, all the text), in unroll (base 10),
    # and in attach points (their text, before the attach point is read)
    ("param-hex", 'BEGIN { print($1 + 1); @x = $1; exit(); }', ["0x10"], {}),
    ("param-octal", 'BEGIN { print($1 + 1); @x = $1; exit(); }', ["010"], {}),
    ("param-space-plus", 'BEGIN { print($1 + $2); exit(); }', [" 5", "+5"], {}),
    ("param-not-octal", 'BEGIN { print($1 + 1); @x = $1; exit(); }', ["08"], {}),
    ("param-too-big", 'BEGIN { print($1 + 1); exit(); }', ["9223372036854775808"], {}),
    ("param-trailing-space", 'BEGIN { print($1 + 1); exit(); }', ["5 "], {}),
    ("param-unroll-base10", 'BEGIN { unroll($1) { @i++; } exit(); }', ["010"], {}),
    ("param-unroll-hex", 'BEGIN { unroll($1) { @i++; } exit(); }', ["0x3"], {}),
    ("param-unroll-nan", 'BEGIN { unroll($1) { @i++; } exit(); }', ["3x"], {}),
    ("param-interval-hex", 'i:ms:$1 { printf("%s\\n", probe); exit(); }', ["0x3"], {}),
    ("param-interval-plus", 'i:ms:$1 { printf("%s\\n", probe); exit(); }', ["+3"], {}),
    ("param-attach-kind", '$1 { printf("%s\\n", probe); exit(); }', ["BEGIN"], {}),
    ("param-attach-unset", 'BEGIN,$1 { printf("%s\\n", probe); exit(); }', [], {}),
    ("param-attach-trailing", 'k:a$1b { 1 }', ["x"], {}),
    ("param-attach-two-parts", '$1:$2 { 1 }', ["BEGIN"], {}),
    ("param-attach-quoted", 'uprobe:"$1":f { 1 }', ["/bin/sh"], {}),
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
    # /pid == 0/: no task calls getppid as pid 0, so the maps printed at exit do not depend on
    # what else runs on the machine during the 100 ms
    't:syscalls:sys_enter_getppid /pid == 0/ { @[comm] = sum(args->__syscall_nr); } i:ms:100 { exit(); }',
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


def test_verbose_uprobe_wildcard_loads_a_program_per_target_as_bpftrace():
    """Without -v a uprobe wildcard is one program on one uprobe_multi link; with -v it is one
    program per target again, so the per-program blocks on stdout are bpftrace's. (The order
    and wording of the "Attaching <probe>" lines on stderr still differ for wildcards.)"""
    script = "uprobe:/bin/bash:sh_set* { @ = count(); } i:ms:100 { exit(); }"
    theirs = _run(["bpftrace", "-v", "-e", script], {})
    ours = _run([sys.executable, "-m", "ebpfpy.bpftrace", "-v", "-e", script], {})
    assert ours.stdout.count("Program ID: ") == theirs.stdout.count("Program ID: ") >= 3
    # the count is of any bash on the machine calling sh_set* meanwhile (the test's own tools
    # run bash): timing, not the output's form
    def form(text):
        return re.sub(r"^@: \d+$", "@: N", _verbose_normalised(text), flags=re.M)
    assert (form(ours.stdout), ours.returncode) == (form(theirs.stdout), theirs.returncode)


# uprobe/uretprobe/usdt on relative paths (issue #12): a copy of tests/progs/uprobe_target.c
# in a temporary directory, run from there. Maps only, so the program's own line ("0")
# comes at a fixed place: after "Attaching...", before the exit-time maps.
RELATIVE_CASES = [
    # (id, argv after the tool)
    ("dot-slash", ["-e", 'uprobe:./prog:work { @[probe] = sum(arg0); }', "-c", "./prog 3"]),
    ("dot-dot", ["-e", 'uretprobe:./sub/../prog:work { @[probe] = sum(retval); }', "-c", "./prog 3"]),
    ("wildcard", ["-e", 'uprobe:./prog:wo* { @[probe] = count(); }', "-c", "./prog 3"]),
    ("no-leading-dot", ["-e", 'uprobe:sub/prog:work { @[probe] = count(); }', "-c", "./sub/prog 2"]),
    ("after-struct", ["-e", 'struct A { int x[4]; } uprobe:./prog:work { @[probe] = count(); }', "-c", "./prog 2"]),
    ("after-struct-newlines", ["-e", 'struct A { int x[4]; }\nuprobe:./prog:work,\n  uretprobe:./prog:negate '
                               '{ @[probe] = count(); }', "-c", "./prog 2"]),
    ("two-relative", ["-e", 'uprobe:./prog:work,uprobe:../rel/prog:negate { @[probe] = count(); }',
                      "-c", "./prog 2"]),
    ("quoted", ["-e", 'uprobe:"./prog":work { @[probe] = count(); }', "-c", "./prog 2"]),
    ("param-path", ["-e", 'uprobe:$1:work { @[probe] = count(); }', "-c", "./prog 2", "./prog"]),
    ("param-func", ["-e", 'uprobe:./prog:$1 { @[probe] = count(); }', "-c", "./prog 2", "work"]),
    ("param-kind", ["-e", '$1:./prog:$2,$3 { @[probe] = count(); }', "-c", "./prog 2", "uretprobe", "negate"]),
    ("usdt-none", ["-e", 'usdt:./prog:a:b { 1 }']),
    ("usdt", ["-e", 'usdt:./workload:workload:round { @[probe] = count(); }', "-c", "./workload 3"]),
    ("usdt-no-provider", ["-e", 'usdt:./workload:round { @[probe] = sum(arg0); }', "-c", "./workload 2"]),
    ("usdt-wildcard", ["-e", 'U:./workload:* { @[probe] = count(); }', "-c", "./workload 2"]),
    ("missing", ["-e", 'uprobe:./nope:work { 1 }']),
    ("missing-dir", ["-e", 'uprobe:nope/prog:work { 1 }']),
    ("list", ["-l", 'uprobe:./prog:w*']),
    ("list-sub", ["-l", 'uprobe:sub/prog:*ork']),
]


@pytest.fixture(scope="module")
def relative_dir(tmp_path_factory):
    import shutil

    if not shutil.which("gcc"):
        pytest.skip("no gcc")
    root = tmp_path_factory.mktemp("rel") / "rel"
    (root / "sub").mkdir(parents=True)
    src = os.path.join(os.path.dirname(__file__), "..", "progs", "uprobe_target.c")
    subprocess.run(["gcc", "-O1", "-o", str(root / "prog"), src], check=True)
    workload = os.path.join(os.path.dirname(__file__), "..", "progs", "workload.c")  # has a USDT probe
    subprocess.run(["gcc", "-O1", "-o", str(root / "workload"), workload], check=True)
    shutil.copy(root / "prog", root / "sub" / "prog")
    return str(root)


@pytest.mark.parametrize("case", RELATIVE_CASES, ids=[c[0] for c in RELATIVE_CASES])
def test_relative_paths_same_as_bpftrace(case, relative_dir):
    argv = case[1]
    run = dict(capture_output=True, text=True, timeout=60, cwd=relative_dir)
    theirs = subprocess.run(["bpftrace", *argv], **run)
    ours = subprocess.run([sys.executable, "-m", "ebpfpy.bpftrace", *argv], **run,
                          env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(
                              os.path.abspath(__file__))))))
    assert (ours.stdout, _stderr(ours.stderr), ours.returncode) == \
        (theirs.stdout, _stderr(theirs.stderr), theirs.returncode)


# Scripts as bytes (issue #12): bpftrace's lexer reads bytes, so a byte that is not UTF-8
# is reported (and printed back) as it is, columns count bytes, and a NUL ends the script.
# (id, how the script is given: "file", "-e" or "stdin", its bytes)
BYTES_CASES = [
    ("invalid-byte", "file", b"BEGIN { @x = 1 \xff; }"),
    ("invalid-byte-e", "-e", b"BEGIN { @x = 1 \xff; }"),
    ("invalid-byte-stdin", "stdin", b"BEGIN { @x = 1 \xfe; }"),
    ("utf8-outside-string", "file", b"BEGIN { @x = \xc3\xa9; }"),
    ("utf8-before-error", "file", b"// \xc3\xa9\xc3\xa9\nBEGIN { @x = \"\xc3\xa9\" + 1 ` \xc3\xa9; }"),
    ("utf8-in-string", "file", b'BEGIN { @x = "\xc3\xa9t\xc3\xa9"; printf("%s|\\n", "\xc3\xa9"); exit(); }'),
    ("byte-in-printf", "file", b'BEGIN { printf("\xff|\\n"); exit(); }'),
    ("byte-in-comment", "file", b"// \xff\nBEGIN { exit(); }"),
    ("nul-ends-script", "file", b"BEGIN { print(1); exit(); }\x00 garbage {{{"),
    ("nul-in-error-line", "file", b"BEGIN { @x = 1 2 \x00 }"),
    ("nul-in-string", "file", b'BEGIN { @x = "ab\x00cd"; exit(); }'),
]


def _raw_stderr(data: bytes) -> bytes:
    return b"".join(line for line in data.splitlines(True) if b"RLIMIT_MEMLOCK" not in line)


@pytest.mark.parametrize("case", BYTES_CASES, ids=[c[0] for c in BYTES_CASES])
def test_script_bytes_same_as_bpftrace(case, tmp_path):
    _, how, script = case
    path = tmp_path / "script.bt"
    path.write_bytes(script)
    args = {"file": [str(path)], "-e": ["-e", script], "stdin": ["-"]}[how]
    stdin = script if how == "stdin" else b""
    results = []
    for tool in (["bpftrace"], [sys.executable, "-m", "ebpfpy.bpftrace"]):
        proc = subprocess.run([*tool, *args], input=stdin, capture_output=True, timeout=60)
        results.append((proc.stdout, _raw_stderr(proc.stderr).replace(str(path).encode(), b"FILE"),
                        proc.returncode))
    theirs, ours = results
    assert ours == theirs


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_stacks_in_values_are_indented_as_values(fmt):
    """A stack in a value (print(), a map value, a tuple in either) is indented by 8 as 0.17
    does; in a key by 4. Frames are BPF programs' names, which differ: compared by layout."""
    script = ('BEGIN { @x = (kstack(1), 1); print(kstack(1)); print((kstack(1), 2)); '
              '@y[kstack(1)] = (1, kstack(1)); exit(); }')

    def layout(text):
        return re.sub(r"(bpf_prog_[0-9a-f]+_\w+|_einittext)\+\d+", "FRAME", text)
    args = ["-f", "json"] if fmt == "json" else []
    theirs = _run(["bpftrace", *args, "-e", script], {})
    ours = _run([sys.executable, "-m", "ebpfpy.bpftrace", *args, "-e", script], {})
    assert (layout(ours.stdout), ours.returncode) == (layout(theirs.stdout), theirs.returncode)
    assert "        FRAME" in layout(ours.stdout) and "\n    FRAME" in layout(ours.stdout).replace("\\n", "\n")


def test_json_top_hist_bucket_is_0_17s():
    """0.17's JSON gives the top hist bucket ([2G, 4G), which also counts larger values) the
    bounds its 32-bit arithmetic computes: min -2147483648, max 0. 0.17 mode keeps them."""
    script = "BEGIN { @h = hist(1 << 62); @h = hist(-1); @g = hist(3000000000); exit(); }"
    theirs = _run(["bpftrace", "-f", "json", "-e", script], {})
    ours = _run([sys.executable, "-m", "ebpfpy.bpftrace", "-f", "json", "-e", script], {})
    assert (ours.stdout, ours.returncode) == (theirs.stdout, theirs.returncode)
    assert '{"min": -2147483648, "max": 0, "count": 1}' in ours.stdout
