"""Today's bpftrace language (0.26 mode) end to end, against bpftrace 0.26's observed output
(/work/shared/bpftrace-0.26-notes.md, examples En), and the same scripts in 0.17 mode, which
must keep 0.17's answer. Each runs ``python -m ebpfpy.bpftrace`` as a child and waits for it
to exit (the scripts end themselves with exit() or -c)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.kernel

PYBPFTRACE = [sys.executable, "-m", "ebpfpy.bpftrace"]


def run(*args: str, compat: str = "0.26", timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*PYBPFTRACE, f"--compat={compat}", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_lowercase_begin_end_and_several_blocks_e1():
    res = run("-e", 'begin { printf("one\\n"); } begin { printf("two\\n"); } '
                    'end { printf("e1\\n"); } end { printf("e2\\n"); } begin { exit(); }')
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[:4] == ["one", "two", "e1", "e2"]
    assert res.stderr == "Attached 5 probes\n"
    old = run("-e", "begin { exit(); }", compat="0.17")
    assert old.returncode == 1 and "ERROR: Invalid probe type: begin" in old.stderr


def test_map_functions_e11():
    res = run("-e", 'begin { @a[1] = (int64)10; @a[2] = (int64)20; @a[3] = (int64)30; @b[1, "x"] = (int64)5;'
                    ' printf("has1=%d has9=%d\\n", has_key(@a, 1), has_key(@a, 9));'
                    ' delete(@a, 2); _ = delete(@b, (1, "x")); exit(); }')
    assert res.returncode == 0, res.stderr
    assert res.stdout == "has1=1 has9=0\n\n\n@a[1]: 10\n@a[3]: 30\n"  # nothing for the emptied @b


def test_let_scoping_e4():
    script = 'begin {\n  if (pid > 0) { $x = 1; } else { $x = 2; }\n  printf("x=%d\\n", $x);\n  exit();\n}\n'
    res = run("-e", script)
    assert res.returncode == 1
    assert res.stderr.startswith("stdin:3:20-22: ERROR: Undefined or undeclared variable: $x\n")
    ok = run("-e", script.replace("begin {\n", "begin {\n  let $x; let $y: uint16 = 7;")
             .replace('"x=%d\\n", $x', '"x=%d y=%d\\n", $x, $y'))
    assert ok.returncode == 0 and "x=1 y=7" in ok.stdout, ok.stderr
    old = run("-e", script.replace("begin", "BEGIN"), compat="0.17")
    assert old.returncode == 0 and "x=1" in old.stdout


def test_small_syntax_e17_e18():
    res = run("-e", 'begin { $x = 3; if $x { printf("no-parens if\\n"); } '
                    'printf("1500ms=%ld 2m=%ld 5us=%ld\\n", 1500ms, 2m, 5us); '
                    'printf("same=%d ppid>0=%d\\n", pid() == pid, ppid > 0); exit(); }')
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[:3] == ["no-parens if", "1500ms=1500000000 2m=120000000000 5us=5000",
                                            "same=1 ppid>0=1"]


def test_dot_through_tracepoint_pointer_e14():
    res = run("-c", "sleep 0.25", "-e", 'tracepoint:syscalls:sys_enter_clock_nanosleep /pid == cpid/ { '
              'printf("sec=%d nsec=%d legacy=%d\\n", args.rqtp.tv_sec, args.rqtp.tv_nsec, args->rqtp->tv_nsec); }')
    assert res.returncode == 0, res.stderr
    assert "sec=0 nsec=250000000 legacy=250000000" in res.stdout
    old = run("-c", "sleep 0", "-e", "tracepoint:syscalls:sys_enter_clock_nanosleep { @ = args.rqtp.tv_nsec; }",
              compat="0.17")
    assert old.returncode == 1 and "Try dereferencing it first, or using '->'" in old.stderr


def test_interval_duration_e15():
    res = run("-e", 'interval:100ms { printf("%s\\n", probe); exit(); }')
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == "interval:us:100000"
    old = run("-e", "interval:100ms { exit(); }", compat="0.17")
    assert old.returncode == 1 and "interval probe type requires 2 arguments" in old.stderr


@pytest.mark.skipif(not os.path.exists("/bin/bash"), reason="the script's uprobe target /bin/bash is not here")
@pytest.mark.parametrize("mode", ["error", "warn", "ignore"])
def test_missing_probes_policy_e7(tmp_path, mode):
    script = tmp_path / f"d07{mode}.bt"
    script.write_text(f'config = {{ missing_probes = "{mode}" }}\nbegin {{ printf("started\\n"); exit(); }}\n'
                      "uprobe:/bin/bash:no_such_fn_xyz { exit(); }\n")
    res = run(str(script))
    point = "uprobe:/bin/bash:no_such_fn_xyz { exit(); }\n" + "~" * 31 + "\n"
    if mode == "error":
        assert res.returncode == 1
        assert res.stderr == f"{script}:3:1-32: ERROR: No matches for uprobe /bin/bash:no_such_fn_xyz.\n{point}"
        return
    assert res.returncode == 0 and "started" in res.stdout
    warned = (f"{script}:3:1-32: WARNING: No matches for uprobe /bin/bash:no_such_fn_xyz. Skipping.\n{point}"
              f"{script}:3:1-32: WARNING: Probe has no valid attach points. It is being removed which may "
              f"cause issues with program behavior.\n{point}")
    assert (warned in res.stdout) == (mode == "warn")  # 0.26 prints a successful compile's warnings on stdout


def test_config_errors_e6():
    res = run("-e", "config = { bogus = 1 } begin { exit(); }")
    assert res.returncode == 1 and "stdin:1:12-21: ERROR: bogus: not a known configuration option" in res.stderr


def test_dry_run_e25():
    res = run("--dry-run", "-e", 'begin { printf("x\\n"); } tracepoint:syscalls:sys_enter_getpid { @n = count(); }')
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_compat_env_and_bad_version():
    res = subprocess.run([*PYBPFTRACE, "-e", "begin { exit(); }"], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "PYBPFTRACE_COMPAT": "0.17"})
    assert res.returncode == 1 and "Invalid probe type: begin" in res.stderr
    bad = run("-e", "begin { }", compat="0.9")
    assert bad.returncode == 1 and bad.stderr == "ERROR: --compat: unknown bpftrace version '0.9' (known: 0.17, 0.26)\n"


# -- for loops, bool, and the newer functions (issue #14) ---------------------------------

E03 = """begin {
  @one[1] = 10; @one[2] = 20;
  for ($kv : @one) { printf("key=%d val=%d\\n", $kv.0, $kv.1); }
  @two[1, "a"] = 5; @two[2, "b"] = 6;
  for ($kv : @two) { printf("k1=%d k2=%s val=%d\\n", $kv.0.0, $kv.0.1, $kv.1); }
  for ($i : 0..6) {
    if ($i == 1) { continue; }
    if ($i == 4) { break; }
    printf("i=%d\\n", $i);
  }
  clear(@one); clear(@two);
  exit();
}
"""


def test_for_loops_e3():
    res = run("-e", E03)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split("\n")
    # map loops go in hash order (bpftrace 0.26 printed key=2 first): compare each loop's lines as sets
    assert sorted(lines[0:2]) == ["key=1 val=10", "key=2 val=20"]
    assert sorted(lines[2:4]) == ["k1=1 k2=a val=5", "k1=2 k2=b val=6"]
    assert lines[4:] == ["i=0", "i=2", "i=3", "", "", ""]
    old = run("-e", E03.replace("begin", "BEGIN"), compat="0.17")
    assert old.returncode == 1 and "stdin:3:3-6: ERROR: syntax error, unexpected for, expecting }" in old.stderr


def test_for_loop_bodies_share_the_probes_variables():
    res = run("-e", 'begin { @m[1] = 5; @m[2] = 7; $tot = 0;'
                    ' for ($i : 0..2) { for ($kv : @m) { $tot += $i * $kv.1; } }'
                    ' for $j : 10..$tot { if ($j == 11) { break; } $tot++; }'
                    ' $s = "none"; for ($kv : @m) { if ($kv.0 == 2) { $s = "two"; } }'
                    ' printf("tot=%d s=%s len=%d\\n", $tot, $s, len(@m)); clear(@m); exit(); }')
    assert res.returncode == 0, res.stderr
    assert res.stdout == "tot=13 s=two len=2\n\n\n"


def test_nested_loops_too_big_for_the_stack_are_a_clear_error():
    # each loop body keeps a copy of the variables loop bodies use, and the kernel gives a probe
    # and the loop bodies it runs 512 bytes together: three levels of 64-byte strings do not fit
    res = run("-e", 'begin { $a = "x"; $b = "y"; for ($i : 0..2) { for ($j : 0..2) { for ($k : 0..2) '
                    '{ printf("%s %s %d %d %d\\n", $a, $b, $i, $j, $k); } } } }')
    assert res.returncode == 1 and "ERROR: this loop's body does not fit the BPF stack" in res.stderr
    assert "Traceback" not in res.stderr


def test_for_loop_in_a_syscall_dispatch_program_keeps_probe():
    # the raw_syscalls dispatch program keeps its probe index on its stack: a loop body (another
    # frame) gets it through the loop's context, so it counts what the plain body counts
    script = "tracepoint:syscalls:sys_enter_* /pid == cpid/ { BODY }"
    looped = run("-c", "true", "-e", script.replace("BODY", "for ($i : 0..1) { @[probe] = count(); }"))
    plain = run("-c", "true", "-e", script.replace("BODY", "@[probe] = count();"))
    assert looped.returncode == plain.returncode == 0, looped.stderr + plain.stderr
    assert "@[tracepoint:syscalls:sys_enter_execve]: 1\n" in looped.stdout
    assert looped.stdout == plain.stdout


def test_for_loop_errors():
    res = run("-e", "begin { for ($i : 0..3) { exit(); } }")
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == ("stdin:1:27-33: ERROR: 'return' statement is not allowed in a for-loop\n"
                          "begin { for ($i : 0..3) { exit(); } }\n" + " " * 26 + "~~~~~~\n")
    res = run("-e", "begin { for ($i : 0..3) { return; } }")
    assert res.returncode == 1 and "ERROR: 'return' statement is not allowed in a for-loop" in res.stderr


def test_while_warns_in_026_only():
    script = 'begin { $x = 0; while ($x < 2) { $x++; } printf("%d\\n", $x); exit(); }'
    res = run("-e", script)
    assert res.returncode == 0 and "2\n" in res.stdout, res.stderr
    both = res.stdout + res.stderr
    assert "stdin:1:17-22: WARNING: While loops are deprecated and may be removed in the future." in both
    assert "HINT: For loops support ranges (e.g. `for ($x : $start..$end) { ... }`)" in both
    old = run("-e", script.replace("begin", "BEGIN"), compat="0.17")
    assert old.returncode == 0 and "deprecated" not in old.stdout + old.stderr


E10 = ('begin { $b = true; print($b); print(!$b); printf("%d %s\\n", $b, $b ? "yes" : "no"); @m[1] = (int64)1; '
       '@hk = has_key(@m, 1); @sc = strcontains("hello", "ell"); @bk[false] = (int64)3; exit(); }')


def test_booleans_e10():
    res = run("-e", E10)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "true\nfalse\n1 yes\n\n\n@bk[false]: 3\n@hk: true\n@m[1]: 1\n@sc: true\n"
    js = run("-f", "json", "-e", E10)
    assert js.returncode == 0, js.stderr
    assert js.stdout.splitlines()[1:] == [
        '{"type": "value", "data": true}', '{"type": "value", "data": false}',
        '{"type": "printf", "data": "1 yes\\n"}', '{"type": "map", "data": {"@bk": {"false": 3}}}',
        '{"type": "map", "data": {"@hk": true}}', '{"type": "map", "data": {"@m": {"1": 1}}}',
        '{"type": "map", "data": {"@sc": true}}']
    old = run("-e", 'BEGIN { $b = true; print($b); @sc = strcontains("hello", "ell"); exit(); }', compat="0.17")
    assert old.returncode == 0 and old.stdout == "Attaching 1 probe...\n1\n\n\n@sc: 1\n"


def test_map_functions_with_len_and_bool_e11():
    res = run("-e", 'begin { @a[1] = (int64)10; @a[2] = (int64)20; @a[3] = (int64)30; @b[1, "x"] = (int64)5;'
                    ' printf("has1=%d has9=%d len=%d\\n", has_key(@a, 1), has_key(@a, 9), len(@a));'
                    ' print(has_key(@b, (1, "x")));'
                    ' $ok = delete(@a, 2); $miss = delete(@a, 99); print(($ok, $miss, len(@a)));'
                    ' _ = delete(@b, (1, "x")); exit(); }')
    assert res.returncode == 0, res.stderr
    assert res.stdout == "has1=1 has9=0 len=3\ntrue\n(true, false, 2)\n\n\n@a[1]: 10\n@a[3]: 30\n"


WARNF = 'begin { warnf("w %d", 1); errorf("e %s", "x"); printf("after\\n"); exit(); }'


def test_warnf_errorf_e13():
    res = run("-e", WARNF)
    assert res.returncode == 0
    assert res.stdout == "after\n\n\n"
    assert res.stderr == "Attached 1 probe\nstdin:1:9-25: WARNING: w 1\nstdin:1:27-46: ERROR: e x\n"
    js = run("-f", "json", "-e", WARNF)
    assert js.returncode == 0, js.stderr
    assert js.stdout.splitlines() == [
        '{"type": "attached_probes", "count": 1, "data": {"probes": 1}}',
        '{"type": "warnf", "msg": "w 1", "filename": "stdin", "line": 1, "col": 9}',
        '{"type": "errorf", "msg": "e x", "filename": "stdin", "line": 1, "col": 27}',
        '{"type": "printf", "data": "after\\n"}']


def test_offsetof_names_and_exit_code_e18():
    res = run("-e", 'begin { printf("off=%d\\n", offsetof(struct task_struct, pid)); '
                    'printf("%s %s %s %s\\n", syscall_name(0), syscall_name(39), signal_name(9), signal_name(15)); '
                    'exit(3); }')
    assert res.returncode == 3, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("off=") and int(lines[0][4:]) > 0  # 1264 on the notes' kernel
    assert lines[1] == "read getpid Killed Terminated"
    old = run("-e", "BEGIN { exit(3); }", compat="0.17")
    assert old.returncode == 1 and "exit() requires no arguments (1 provided)" in old.stderr


def test_len_of_kstack_counts_the_frames_print_shows():
    res = run("-c", "true", "-e", 'tracepoint:syscalls:sys_enter_execve /pid == cpid/ '
              '{ printf("len=%d\\n", len(kstack)); print(kstack); }')
    assert res.returncode == 0, res.stderr
    head, _, stack = res.stdout.partition("\n")
    frames = [line for line in stack.splitlines() if line.strip()]
    # (len and print agree; 6.1's syscall tracepoints give no kernel stack at all, so no frames there)
    assert head == f"len={len(frames)}", res.stdout


def test_elvis_and_string_indexing_e17():
    res = run("-e", 'begin { $s = "hello"; printf("%c %c %d\\n", $s[0], $s[4], $s[1]); $x = 3; $z = 0; '
                    '$i = 4; printf("elvis=%d,%d var=%c past=%d\\n", $z ?: 7, $x ?: 7, $s[$i], $s[$i + 9]); exit(); }')
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[:2] == ["h o 101", "elvis=7,3 var=o past=0"]
    bad = run("-e", 'begin { $s = "ab"; print($s[5]); exit(); }')
    assert bad.returncode == 1 and "ERROR: the index 5 is out of bounds for array of size 3" in bad.stderr
    old = run("-e", "BEGIN { $z = 0; print($z ?: 7); exit(); }", compat="0.17")
    assert old.returncode == 1 and "syntax error, unexpected :" in old.stderr


def test_tuple_indexing_and_one_tuples_e9():
    script = 'begin { $t = (1, "a", true); print($t[1]); print((7,)); exit(); }'
    res = run("-e", script)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "a\n(7)\n\n\n"
    js = run("-f", "json", "-e", script)
    assert js.stdout.splitlines()[-2:] == ['{"type": "value", "data": "a"}', '{"type": "value", "data": [7]}']
    none = run("-e", "begin { print(()); exit(); }")
    assert none.returncode == 1 and "ERROR: none type passed to print() is not printable" in none.stderr


E09 = ('begin { $r = (name="bob", age=42); print($r); printf("%s %d\\n", $r.name, $r.age); '
       '@rec[1] = (x=1, y="two"); $t = (1, "a", true); print($t[1]); print((7,)); exit(); }')


def test_records_e9():
    res = run("-e", E09)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "{ .name = bob, .age = 42 }\nbob 42\na\n(7)\n\n\n@rec[1]: { .x = 1, .y = two }\n"
    js = run("-f", "json", "-e", E09)
    assert js.returncode == 0, js.stderr
    assert '{"type": "value", "data": {"name": "bob", "age": 42}}' in js.stdout.splitlines()
    assert js.stdout.splitlines()[-3:] == ['{"type": "value", "data": "a"}', '{"type": "value", "data": [7]}',
                                           '{"type": "map", "data": {"@rec": {"1": {"x": 1, "y": "two"}}}}']


def test_map_declarations_and_lru_eviction_e8():
    res = run("-e", 'let @lru = lruhash(2); let @h = hash(10); begin { @lru[1] = (int64)1; @lru[2] = (int64)2; '
                    '@lru[3] = (int64)3; @h[1] = (int64)100; printf("len(@lru)=%d\\n", len(@lru)); exit(); }')
    assert res.returncode == 0, res.stderr
    if res.stdout.startswith("len(@lru)=1\n"):
        # older kernels' LRU lists (6.1) may evict more than one entry from a 2-entry map
        assert res.stdout == "len(@lru)=1\n\n\n@h[1]: 100\n@lru[3]: 3\n", res.stdout
    else:
        assert res.stdout == "len(@lru)=2\n\n\n@h[1]: 100\n@lru[2]: 2\n@lru[3]: 3\n", res.stdout
    bad = run("-e", "let @a = array(4); begin { @a[1] = 1; exit(); }")
    assert bad.returncode == 1 and bad.stderr.startswith("stdin:1:1-19: ERROR: Invalid bpf map type: array\n")
    assert "HINT: Valid map types: " in bad.stderr
    empty = run("-e", "let @a = hash(); begin { exit(); }")
    assert empty.returncode == 1
    assert "ERROR: syntax: expected positive integer for map declaration max entries" in empty.stderr


def test_address_of_block_expressions_and_elvis_e17():
    res = run("-e", 'begin { $x = 3; $v = 10; $p = &$v; printf("deref=%d\\n", *$p); '
                    '$blk = { let $t = 4; $t * 10 }; $z = 0; '
                    'printf("block=%d elvis=%d,%d\\n", $blk, $z ?: 7, $x ?: 7); '
                    '$v = 0; for ($i : 0..3) { $v += 2; } printf("after loop=%d\\n", *$p); exit(); }')
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[:3] == ["deref=10", "block=40 elvis=7,3", "after loop=6"]
    old = run("-e", "BEGIN { $v = 1; $p = &$v; exit(); }", compat="0.17")
    assert old.returncode == 1 and "syntax error, unexpected &" in old.stderr


def test_macros_e5():
    res = run("-e", 'macro twice(x) { x * 2 }\nmacro bump($v, @m) { $v += 1; @m += 10; }\nmacro answer() { 42 }\n'
                    'begin { $a = 5; @c = (int64)1; bump($a, @c);\n'
                    '  printf("%d %d %d %d %d\\n", twice(3), twice($a), $a, @c, answer); exit(); }')
    assert res.returncode == 0, res.stderr
    assert res.stdout == "6 12 6 11 42\n\n\n@c: 11\n"
    bad = run("-e", "macro peek() { @hidden }\nbegin { @hidden = 1; print(peek()); exit(); }")
    assert bad.returncode == 1
    assert bad.stderr.startswith("stdin:1:16-23: ERROR: Unhygienic access to map: @hidden. Maps must be passed "
                                 "into the macro as arguments.\n")
    assert "ERROR: expanded from\n" in bad.stderr
    old = run("-e", "macro twice(x) { x * 2 } BEGIN { exit(); }", compat="0.17")
    assert old.returncode == 1 and "syntax error, unexpected (, expecting {" in old.stderr


GETOPT_E12 = ('begin { print((getopt("count", 5), getopt("name", "anon"), getopt("verbose"), '
              'getopt("flag", true, "a flag"))); print(($1, $#)); exit(); }')


@pytest.mark.parametrize("argv, rc, out, err", [
    (["--", "--count=9", "--name=zed", "--verbose", "--flag=false"], 0, "(9, zed, true, false)\n(0, 0)\n", ""),
    (["p1", "--", "--count=9", "p2"], 0, "(9, anon, false, true)\n(p1, 2)\n", ""),
    (["--", "--count", "9"], 1, "", "ERROR: program command line option --count expects an integer (value: true)\n"),
    (["--", "--bogus=1"], 1, "", "ERROR: unexpected program command line options: --bogus\n"
                                 "HINT: expected program options: --flag: --verbose: --name: --count\n"),
])
def test_getopt_e12(argv, rc, out, err):
    res = run("-e", GETOPT_E12, *argv)
    assert res.returncode == rc, res.stderr
    assert res.stdout.startswith(out)
    assert res.stderr.endswith(err) if rc else res.stderr == "Attached 1 probe\n"


def test_only_begin_and_end_ends_by_itself():
    """0.24+: a script whose probes are all begin/end ends after begin, END and the maps
    printed; 0.17 mode keeps waiting for a signal (checked by its timeout)."""
    res = run("-e", 'begin { printf("hi\\n"); @x = 1; } end { printf("bye\\n"); }', timeout=30)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "hi\nbye\n\n\n@x: 1\n"
    with pytest.raises(subprocess.TimeoutExpired):
        run("-e", 'BEGIN { printf("hi\\n"); }', compat="0.17", timeout=3)
    ticking = run("-e", 'begin { printf("hi\\n"); } interval:ms:100 { exit(); }', timeout=30)
    assert ticking.returncode == 0 and ticking.stdout.startswith("hi\n"), ticking.stderr


E11 = """begin {
  @a[1] = (int64)10; @a[2] = (int64)20; @a[3] = (int64)30; @b[1, "x"] = (int64)5;
  printf("has1=%d has9=%d len=%d\\n", has_key(@a, 1), has_key(@a, 9), len(@a));
  print(has_key(@b, (1, "x")));
  $ok = delete(@a, 2); $miss = delete(@a, 99); print(($ok, $miss, len(@a)));
  _ = delete(@b, (1, "x"));
  let $v; if (find(@a, 3, $v)) { printf("found %d\\n", $v); }
  exit();
}
"""


def test_map_functions_with_find_e11():
    res = run("-e", E11)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "has1=1 has9=0 len=3\ntrue\n(true, false, 2)\nfound 30\n\n\n@a[1]: 10\n@a[3]: 30\n"


def test_find_strings_aggregations_and_misses():
    res = run("-e", 'begin { @s["x"] = "hello"; @c[7] = count(); let $t; let $n; $m = 5;'
                    ' if (find(@s, "x", $t)) { printf("str %s\\n", $t); }'
                    ' printf("%d %d\\n", find(@c, 7, $n), $n);'
                    ' printf("%d %d\\n", find(@c, 8, $m), $m); clear(@s); clear(@c); exit(); }')
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("str hello\n1 1\n0 5\n")
    bad = run("-e", "begin { @a[1] = 1; $x = find(@a, 1, 2); }")
    assert bad.returncode == 1 and "find() expects a map, a key and a variable" in bad.stderr


E14_PRINT = ("tracepoint:syscalls:sys_enter_clock_nanosleep /pid == cpid/ { "
             'printf("sec=%d nsec=%d legacy=%d\\n", args.rqtp.tv_sec, args.rqtp.tv_nsec, args->rqtp->tv_nsec); '
             "print(*args.rqtp); }")


def test_print_a_whole_struct_e14():
    res = run("-c", "sleep 0.25", "-e", E14_PRINT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("sec=0 nsec=250000000 legacy=250000000\n{ .tv_sec = 0, .tv_nsec = 250000000 }\n")
    js = run("-f", "json", "-c", "sleep 0.25", "-e", E14_PRINT)
    assert '{"type": "value", "data": {"tv_sec": 0, "tv_nsec": 250000000}}\n' in js.stdout, js.stderr
    by_value = run("-c", "sleep 0.1", "-e", "tracepoint:syscalls:sys_enter_clock_nanosleep /pid == cpid/ "
                   "{ $t = *args.rqtp; printf(\"%d %d\\n\", $t.tv_nsec, (*args.rqtp).tv_nsec); }")
    assert by_value.stdout.startswith("100000000 100000000\n"), by_value.stderr
    big = run("-e", "begin { print(*curtask->mm); }")
    assert big.returncode == 1 and "too large to print" in big.stderr


def test_rawtracepoint_args_from_btf_e22():
    res = run("-e", 'rawtracepoint:sched_switch { printf("%s prev-is-arg1=%d\\n", probe, arg1 == (uint64)args.prev); '
                    "exit(); }")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("rawtracepoint:vmlinux:sched_switch prev-is-arg1=1\n")
    typed = run("-c", "true", "-e", 'rawtracepoint:sched_process_exec /pid == cpid/ '
                '{ printf("%s %d\\n", args.p->comm, (uint64)args.old_pid == pid); exit(); }')
    assert typed.returncode == 0 and typed.stdout.startswith("true 1\n"), typed.stderr
    bad = run("-e", "rawtracepoint:sched_switch { @ = args.nope; }")
    assert bad.returncode == 1 and "Can't find function parameter nope" in bad.stderr


@pytest.mark.parametrize("program, old, new", [
    ("BEGIN { foo(1); }", "stdin:1:9-12: ERROR: Unknown function: foo\n", "stdin:1:9-15: ERROR: Unknown function: 'foo'\n"),
    ("tracepoint:syscalls:sys_enter_nosuch { }", "stdin:1:1-37: ERROR: tracepoint not found: syscalls:sys_enter_nosuch\n",
     "stdin:1:1-37: ERROR: No matches for tracepoint syscalls:sys_enter_nosuch.\n"),
])
def test_error_wording_e26(program, old, new):
    """E26's rows whose 0.26 text does not depend on 0.26's integer typing."""
    res = run("-e", program)
    assert res.returncode == 1 and res.stderr.startswith(new), res.stderr
    was = run("-e", program, compat="0.17")
    assert was.returncode == 1 and was.stderr.startswith(old), was.stderr


@pytest.mark.iter
def test_iterators_run_once_over_the_kernels_objects():
    """iter:task / task_file / task_vma (0.19+): ctx typed from BTF, run once, then the end."""
    me = os.getpid()
    with open("/proc/self/comm") as f:
        comm = f.read().strip()
    res = run("-e", f'iter:task /ctx.task.pid == {me}/ {{ printf("%s:%d\\n", ctx.task.comm, ctx.task.pid); }}')
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"{comm}:{me}\n")
    fds = run("-e", f"iter:task_file /ctx.task.tgid == {me}/ {{ @fds[ctx.fd] = count(); }}")
    assert fds.returncode == 0, fds.stderr
    assert "@fds[0]: 1\n" in fds.stdout and "@fds[2]: 1\n" in fds.stdout
    vmas = run("-e", f"iter:task_vma /ctx.task.tgid == {me}/ {{ @vmas = count(); }}")
    assert vmas.returncode == 0, vmas.stderr
    assert int(vmas.stdout.split("@vmas: ")[1]) > 5  # a Python process maps dozens
    mixed = run("-e", "iter:task { } interval:s:1 { }")
    assert mixed.returncode == 1 and "Iterator probe can't be mixed with any other probe" in mixed.stderr
    old = run("-e", "iter:task { }", compat="0.17")  # bpftrace 0.17's refusal on this machine
    assert old.returncode == 1 and "iter task not available for your kernel version." in old.stderr


def _read_until(stream, wanted: str, deadline: float) -> str:
    """What ``stream`` (a pipe) gives until it ends with ``wanted``, or the deadline passes;
    read unbuffered, so that nothing waits in a buffer select() cannot see."""
    import select
    import time

    seen = b""
    while time.monotonic() < deadline and not seen.endswith(wanted.encode()):
        ready, _, _ = select.select([stream.fileno()], [], [], 0.5)
        if ready:
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
    return seen.decode()


@pytest.mark.parametrize("with_probe", [True, False])
def test_self_signal_probe_e20(with_probe):
    """0.22+: SIGUSR1 runs self:signal:SIGUSR1 probes; without one it prints nothing (0.17
    printed the maps, which 0.17 mode keeps: test_pybpftrace_signals)."""
    import signal
    import time

    body = 'self:signal:SIGUSR1 { printf("got usr1\\n"); print(@b); }' if with_probe else \
        'interval:s:1 { @ticks = count(); }'
    proc = subprocess.Popen([*PYBPFTRACE, "--compat=0.26", "-e", "begin { @b[1] = (int64)2; } " + body],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        assert _read_until(proc.stderr, "Attached 2 probes\n", deadline).endswith("Attached 2 probes\n")
        proc.send_signal(signal.SIGUSR1)
        if with_probe:
            assert _read_until(proc.stdout, "@b[1]: 2\n", deadline) == "got usr1\n@b[1]: 2\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.decode().startswith("\n\n@b[1]: 2\n")  # nothing printed by SIGUSR1 without the probe


def test_rawtracepoint_listing_names_the_module():
    """0.26 lists raw tracepoints as rawtracepoint:vmlinux:NAME, the kernel's btf_trace_ typedefs
    (tracefs also lists events, like the syscall ones, that are no raw tracepoints)."""
    res = run("-l", "rawtracepoint:sched_sw*")
    assert res.returncode == 0 and "rawtracepoint:vmlinux:sched_switch\n" in res.stdout, res.stderr
    assert run("-l", "rt:vmlinux:sys_e*").stdout == "rawtracepoint:vmlinux:sys_enter\nrawtracepoint:vmlinux:sys_exit\n"
    old = run("-l", "rawtracepoint:*", compat="0.17")  # 0.17 has no such kind (it aborts: we say so)
    assert old.returncode == 1 and "Invalid probe type: rawtracepoint" in old.stderr
