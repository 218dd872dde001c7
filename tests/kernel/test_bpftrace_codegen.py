"""Tricky corners of pybpftrace's code generator, checked against a Python model (and bpftrace where cheap).

Each test runs a BEGIN-only script with literal values through the real
kernel and compares what pybpftrace prints with what a few lines of Python
compute for the same values. The scripts also pin down programs the verifier
once rejected (unreachable code after break/exit, stack overflows from
string temporaries, a helper clobbering an aggregation's value).
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter

import pytest

pytestmark = pytest.mark.kernel

MASK = (1 << 64) - 1


def pybpftrace(script: str, *flags: str, env: dict | None = None) -> str:
    proc = subprocess.run([sys.executable, "-m", "ebpfpy.bpftrace", *flags, "-e", script], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, **(env or {})))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def bpftrace(script: str) -> str:
    proc = subprocess.run(["bpftrace", "-e", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def json_maps(out: str) -> dict:
    maps = {}
    for line in out.splitlines():
        if line.startswith("{"):
            doc = json.loads(line)
            if doc["type"] in ("map", "hist", "stats"):
                maps.update(doc["data"])
    return maps


def signed(v: int) -> int:
    v &= MASK
    return v - (1 << 64) if v >> 63 else v


# -- histograms ---------------------------------------------------------------------------

def hist_bucket(v: int) -> tuple:
    if v < 0:
        return (None, -1)
    if v == 0:
        return (0, 0)
    k = min(v.bit_length() - 1, 31)  # bpftrace 0.17: everything from 2**32 up is in [2G, 4G)
    return (1 << k, (1 << (k + 1)) - 1)


def lhist_bucket(v: int, low: int, high: int, step: int) -> tuple:
    if v < low:
        return (None, low - 1)
    index = (v - low) // step
    if v >= high or index >= (high - low) // step:
        return (high, None)  # a partial last step counts as overflow, as in bpftrace
    lo = low + index * step
    return (lo, lo + step - 1)


# 0.17's JSON gives the top hist bucket, [2G, 4G), the bounds its 32-bit ints compute (0.17 mode
# prints them too: test_cli_parity_vs_bpftrace); the model's bucket is the true one
_TOP_BUCKET_017 = {(-(1 << 31), 0): (1 << 31, (1 << 32) - 1)}


def buckets_of(entries: list) -> Counter:
    bounds = ((e.get("min"), e.get("max")) for e in entries if e["count"])
    counts = (e["count"] for e in entries if e["count"])
    return Counter({_TOP_BUCKET_017.get(b, b): c for b, c in zip(bounds, counts)})


def _hist_values() -> list:
    rng = random.Random(4)
    edges = [0, 1, 2, 3, -1, -(1 << 40)]
    for k in range(1, 48):
        edges += [(1 << k) - 1, 1 << k, (1 << k) + 1]
    return edges + [rng.randrange(0, 1 << 50) for _ in range(40)]


def test_hist_buckets_match_model():
    values = _hist_values()
    body = " ".join(f"@h = hist({v});" for v in values)
    got = json_maps(pybpftrace(f"BEGIN {{ {body} exit(); }}", "-f", "json"))
    assert buckets_of(got["@h"]) == Counter(hist_bucket(v) for v in values)


@pytest.mark.parametrize("low,high,step", [(0, 100, 10), (0, 10, 1), (5, 50, 7), (0, 1000, 300)])
def test_lhist_edges_match_model(low, high, step):
    values = sorted({low - 1, low, low + 1, high - 1, high, high + 1, 0, -5, 3 * high}
                    | {low + k * step + d for k in range((high - low) // step + 1) for d in (-1, 0, 1)})
    body = " ".join(f"@l = lhist({v}, {low}, {high}, {step});" for v in values)
    got = json_maps(pybpftrace(f"BEGIN {{ {body} exit(); }}", "-f", "json"))
    assert buckets_of(got["@l"]) == Counter(lhist_bucket(v, low, high, step) for v in values)


# -- integer arithmetic ----------------------------------------------------------------------

PAIRS = [(7, 2), (-7, 2), (7, -2), (1 << 40, 3), (-1, 1), (12345, 100), (0, 5), (-(1 << 62), 7)]


def arith_model(a: int, b: int) -> list:
    ua, ub = a & MASK, b & MASK
    return [signed(a + b), signed(a - b), signed(a * b), signed(ua // ub), signed(ua % ub),
            signed(ua >> 3), signed(a << 5), int(a < b), int(a >= b), int(a == b),
            signed(a & b), signed(a | b), signed(a ^ b)]


def arith_script(pairs) -> str:
    lines = []
    for a, b in pairs:
        exprs = ["$a + $b", "$a - $b", "$a * $b", "$a / $b", "$a % $b", "$a >> 3", "$a << 5", "$a < $b",
                 "$a >= $b", "$a == $b", "$a & $b", "$a | $b", "$a ^ $b"]
        fmt = " ".join(["%ld"] * len(exprs))
        lines.append(f'$a = {a}; $b = {b}; printf("{fmt}\\n", {", ".join(exprs)});')
    return "BEGIN { " + " ".join(lines) + " exit(); }"


def test_arithmetic_matches_model():
    out = pybpftrace(arith_script(PAIRS)).splitlines()[1:1 + len(PAIRS)]
    assert [list(map(int, line.split())) for line in out] == [arith_model(a, b) for a, b in PAIRS]


@pytest.mark.bpftrace
def test_arithmetic_matches_bpftrace():
    script = arith_script(PAIRS[:4])
    assert pybpftrace(script) == bpftrace(script)


CASTS = [("int8", 8, True), ("uint8", 8, False), ("int16", 16, True), ("uint16", 16, False),
         ("int32", 32, True), ("uint32", 32, False), ("int64", 64, True), ("uint64", 64, False)]


def cast_model(v: int, bits: int, is_signed: bool) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if is_signed and v >> (bits - 1) else v


@pytest.mark.parametrize("value", [300, -1, 70000, 4294967295, -129, 1 << 40, 255])
def test_casts_match_model(value):
    exprs = ", ".join(f"(int64)({name})$v" if not name.startswith("u") or bits < 64 else f"({name})$v"
                      for name, bits, _ in CASTS)
    fmt = " ".join(["%ld"] * len(CASTS))
    out = pybpftrace(f'BEGIN {{ $v = {value}; printf("{fmt}\\n", {exprs}); exit(); }}').splitlines()[1]
    want = [signed(cast_model(value, bits, s)) for _, bits, s in CASTS]
    assert list(map(int, out.split())) == want


def test_signed_unsigned_compare():
    # a negative value compared with an unsigned one compares as unsigned (bpftrace 0.17)
    out = pybpftrace('BEGIN { $a = -1; $u = (uint64)1; printf("%d %d %d %d\\n", $a < $u, $a < 1, '
                     '$u > $a, (uint32)$a > 5); exit(); }').splitlines()[1]
    assert out == "0 1 0 1"


# -- strings, maps and control flow the verifier once rejected ----------------------------------

def test_string_compare():
    out = pybpftrace('BEGIN { printf("%d %d %d %d %d\\n", "abc" == "abc", "abc" == "abd", "ab" != "abc", '
                     'strncmp("abcd", "abcx", 3), strncmp("abcd", "abcx", 4) != 0); exit(); }')
    assert out.splitlines()[1] == "1 0 1 0 1"


def test_missing_map_key_reads_zero():
    out = pybpftrace('BEGIN { @m[1] = 5; @n["a"] = 7; printf("%d %d %d %d\\n", @m[1], @m[2], @n["a"], '
                     '@n["zz"]); clear(@m); clear(@n); exit(); }')
    assert out.splitlines()[1] == "5 0 7 0"


def test_break_and_exit_leave_no_unreachable_code():
    out = pybpftrace('BEGIN { $i = 0; while ($i < 50) { $i++; if ($i == 9) { break; } continue; } '
                     'if ($i == 9) { printf("%d\\n", $i); exit(); } else { return; } printf("never\\n"); }')
    assert out.splitlines()[1:2] == ["9"]


def test_aggregation_value_survives_string_key():
    # str() in the key used to clobber the register holding sum()'s argument
    got = json_maps(pybpftrace('BEGIN { @s[comm, str(0)] = sum(5); @s[comm, str(0)] = sum(6); exit(); }',
                               "-f", "json"))
    assert list(got["@s"].values()) == [11]


def test_string_ternary_fits_the_stack():
    out = pybpftrace('BEGIN { $x = 1; @[$x ? "yes" : "no", $x ? "a" : "b"] = count(); exit(); }')
    assert "@[yes, a]: 1" in out


def test_strings_of_different_sizes_share_a_map():
    out = pybpftrace('BEGIN { @["a"] = 1; @["abcdefghijklmnopqrstuvwxyz"] = 2; @v = "x"; @v = "abcdefghijklmnopqrst"; '
                     '$s = "long string value here"; $s = "s"; @[$s] = 3; exit(); }', env={"BPFTRACE_STRLEN": "16"})
    assert "@[abcdefghijklmnopqrstuvwxyz]: 2" in out
    assert "@[s]: 3" in out
    assert "@v: abcdefghijklmnopqrst" in out


def test_syscall_wildcard_is_one_raw_tracepoint_program():
    from ebpfpy.attach.syscalls import syscall_numbers, syscall_of
    from ebpfpy.bpftrace.driver import Options, compile_source

    if not syscall_numbers():
        pytest.skip("no syscall table for this architecture")
    _, script = compile_source(Options(source="t:syscalls:sys_enter_* { @[probe] = count(); }"))
    dispatch = [p for p in script.probes if p.covers]
    assert [p.probe for p in dispatch] == ["rawtracepoint:sys_enter"]
    covered = dispatch[0].covers
    # the rest (syscalls newer than the table) are attached one by one
    assert all(syscall_of(p) for p in covered)
    assert not any(syscall_of(p.probe) for p in script.probes if not p.covers)
    assert len(covered) + len(script.probes) - 1 == len(list(_syscall_tracepoints("sys_enter_")))
    table = next(m for name, m in script.maps.items() if name.startswith("$syscalls"))
    assert len(table.initial) == len(covered)


def test_syscall_wildcard_reading_shared_args_is_one_program(workload):
    """``args`` fields every syscall tracepoint has at the same place (sys_exit's ``ret``,
    ``__syscall_nr``, a common argument) keep a wildcard on the one dispatch program (or
    a list of them on one shared program), reading them where the tracepoint takes them
    (the raw tracepoint's ``ret``, the saved registers), so exit does not wait for 360
    detaches (issue #18's 15 s). The maps are bpftrace 0.17's, which loads one program per
    tracepoint, where it is installed."""
    import shutil
    import subprocess
    import sys

    from ebpfpy.attach.syscalls import syscall_numbers
    from ebpfpy.bpftrace.driver import Options, compile_source

    if not syscall_numbers():
        pytest.skip("no syscall table for this architecture")
    text = ("t:syscalls:sys_exit_* /pid == cpid/ { @[probe] = hist(args->ret); @n[args->__syscall_nr] = count(); } "
            "t:syscalls:sys_enter_read,t:syscalls:sys_enter_write /pid == cpid/ { @fd[args->fd] = sum(args->count); }")
    _, script = compile_source(Options(source=text, command="/bin/true"), cpid=1)
    assert [p.probe for p in script.probes if p.covers] == ["rawtracepoint:sys_exit"]
    uncovered = len(_listed("sys_exit_")) - len(next(p for p in script.probes if p.covers).covers)
    assert len(script.probes) == 1 + uncovered + 2  # the dispatch, syscalls newer than its table, read and write

    def maps(cmd):
        res = subprocess.run([*cmd, "-c", f"{workload} 3", "-e", text], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "PYBPFTRACE_COMPAT": "0.17"})
        assert res.returncode == 0, res.stderr
        return sorted(line for line in res.stdout.split("\n") if line[:1] in ("@", "[", "("))
    ours = maps([sys.executable, "-m", "ebpfpy.bpftrace"])
    assert any("sys_exit_read" in line for line in ours) and any(line.startswith("@fd[") for line in ours)
    if shutil.which("bpftrace") and os.geteuid() == 0:
        assert ours == maps(["bpftrace"])


def _listed(prefix: str) -> list:
    return list(_syscall_tracepoints(prefix))


def test_few_syscall_tracepoints_are_attached_one_by_one():
    from ebpfpy.bpftrace.driver import Options, compile_source
    from ebpfpy.bpftrace.emit import DISPATCH_MIN

    _, script = compile_source(Options(source="t:syscalls:sys_enter_*open* { @[probe] = count(); }"))
    assert len(script.probes) < DISPATCH_MIN
    assert not any(p.covers for p in script.probes)


def _syscall_tracepoints(prefix: str):
    from ebpfpy import bpffs

    return (n for n in os.listdir(os.path.join(bpffs.ensure_tracefs(), "events", "syscalls"))
            if n.startswith(prefix))


# -- builtins computed at compile time or through BTF -------------------------------------------

def _own_cgroup_path() -> str:
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return "/sys/fs/cgroup" + line.strip()[3:]
    pytest.skip("no cgroup v2 hierarchy")


def test_cgroupid_matches_the_cgroup_builtin():
    # BEGIN runs in pybpftrace's own process, which is in the same cgroup as this test
    path = _own_cgroup_path().rstrip("/")
    out = pybpftrace(f'BEGIN {{ printf("%d\\n", cgroupid("{path}") == cgroup); exit(); }}')
    assert out.splitlines()[1] == "1"


def test_sizeof_and_struct_members_through_btf():
    from ebpfpy import btf

    spec = btf.vmlinux()
    size = spec.size_of(spec.find_struct("task_struct"))
    out = pybpftrace('BEGIN { printf("%d %d %d %s\\n", sizeof(struct task_struct), sizeof(uint16), '
                     'curtask->tgid == pid, curtask->comm); exit(); }')
    fields = out.splitlines()[1].split()
    assert fields[:3] == [str(size), "2", "1"]
    assert fields[3]  # the comm of pybpftrace's own process


def test_strftime_formats_wall_clock_time():
    import time

    out = pybpftrace('BEGIN { printf("%s\\n", strftime("%Y-%m-%d", nsecs)); exit(); }')
    assert out.splitlines()[1] in {time.strftime("%Y-%m-%d", time.localtime(time.time() + d)) for d in (-5, 0, 5)}


def test_buf_escapes_non_printable_bytes():
    out = pybpftrace('BEGIN { printf("%r\\n", buf(pton("65.0.10.127"), 4)); exit(); }')
    assert out.splitlines()[1] == "A\\x00\\x0a\\x7f"


def test_kfunc_is_a_clear_error():
    import os

    from ebpfpy import features

    if features.has("fentry"):  # the qemu guest: kfunc attaches (and would run until stopped)
        pytest.skip("fentry works here: see test_pybpftrace_kprobes.py::test_kfunc_on_tcp_sendmsg")

    proc = subprocess.run([sys.executable, "-m", "ebpfpy.bpftrace", "-e", "kfunc:vfs_read { @ = count(); }"],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert proc.returncode == 1
    assert "kfunc" in proc.stderr and "Traceback" not in proc.stderr


def test_unaligned_char_array_field_loads():
    # task_rename's oldcomm sits at an unaligned offset: read through the helper, not ctx loads
    out = pybpftrace('t:task:task_rename { @[args->oldcomm, args->newcomm] = count(); } '
                     'BEGIN { printf("ok\\n"); }', "-c", "/bin/true")
    assert out.splitlines()[1] == "ok"


# -- strcontains ---------------------------------------------------------------------------

def test_strcontains_matches_python_in():
    """Random short strings over a two-letter alphabet: many partial matches and restarts."""
    rng = random.Random(7)
    word = lambda: "".join(rng.choice("ab") for _ in range(rng.randrange(0, 7)))  # noqa: E731
    pairs = [(word(), word()) for _ in range(40)] + [("", ""), ("abc", ""), ("", "a"), ("aab", "ab")]
    body = " ".join(f'printf("%d\\n", strcontains("{h}", "{n}"));' for h, n in pairs)
    out = pybpftrace(f"BEGIN {{ {body} exit(); }}")
    got = [int(line) for line in out.splitlines() if line.strip().isdigit()]
    assert got == [int(n in h) for h, n in pairs]
