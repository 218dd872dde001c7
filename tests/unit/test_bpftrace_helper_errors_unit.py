"""``-k`` / ``-kk`` without a kernel: the warning texts, which calls are checked, and that
the generated code does not change at all when the flags are off."""
from __future__ import annotations

from ebpfpy.bpftrace.diagnostics import Span
from ebpfpy.bpftrace.emit import Env, compile_script
from ebpfpy.bpftrace.helper_errors import HelperSite, checked, prefix_op_span, read_helper, text_warning
from ebpfpy.bpftrace.output.jsonfmt import helper_error_json
from ebpfpy.bpftrace.parser import parse

SRC = "BEGIN { @x[1]=1; @x[2]=2; delete(@x[5]); exit(); }"


def test_text_warning_is_bpftraces():
    site = HelperSite("map_update_elem", Span(1, 18, 24), SRC)
    assert text_warning(site, -7) == (
        "stdin:1:18-24: WARNING: Failed to map_update_elem: Argument list too long (-7)\n"
        f"{SRC}\n" + " " * 17 + "~~~~~~\n")


def test_lookup_miss_has_no_errno_text():
    site = HelperSite("map_lookup_elem", Span(1, 51, 56), "x" * 60, filename="a.bt")
    assert text_warning(site, 0).startswith("a.bt:1:51-56: WARNING: Failed to map_lookup_elem: 0\n")


def test_json_record():
    assert helper_error_json("probe_read_str", -14, 1, 24) == (
        '{"type": "helper_error", "helper": "probe_read_str", "retcode": -14, "line": 1, "col": 24}\n')


def test_levels():
    assert checked("map_update_elem", 1) and checked("map_delete_elem", 1) and checked("send_signal", 1)
    assert not checked("probe_read_str", 1) and checked("probe_read_str", 2)
    assert not checked("map_lookup_elem", 1) and checked("map_lookup_elem", 2)
    assert not checked("get_stackid", 2) and not checked("perf_event_output", 2)
    assert not checked("map_update_elem", 0)


def _arg(src: str):
    """The argument of ``print(<src>)``: an expression as the parser gives it."""
    return parse(f"BEGIN {{ print({src}); }}").probes[0].body[0].expr.args[0]


def test_read_helper_follows_bpftraces_address_spaces():
    # observed: str(0) and *(int64*)0 in a syscall tracepoint are plain probe_read(_str);
    # str(args->filename + N), buf(args->filename + N, 2) and str(uptr(1)) are user reads
    assert read_helper(_arg("0"), "user", string=True) == "probe_read_str"
    assert read_helper(_arg("(int64 *)0"), "user") == "probe_read"
    assert read_helper(_arg("args->filename + 0x7f0000000000"), "user", string=True) == "probe_read_user_str"
    assert read_helper(_arg("args->filename + 1"), "user") == "probe_read_user"
    assert read_helper(_arg("uptr(1)"), "", string=True) == "probe_read_user_str"
    assert read_helper(_arg("kptr(arg0)"), "user") == "probe_read_kernel"
    assert read_helper(_arg("arg0"), "kernel") == "probe_read_kernel"
    assert read_helper(_arg("curtask->comm"), "") == "probe_read_kernel"


def test_prefix_operator_span():
    src = "BEGIN { --@x[6];@x[4]--;--@x[6]; ++  @x[7]; }"
    # the parser's span of the last --@x[6] starts at the first '-' (no blank since)
    assert prefix_op_span("--", "@x", Span(1, 9, 32), src) == Span(1, 9, 27)
    assert prefix_op_span("++", "@x", Span(1, 34, 43), src) == Span(1, 34, 36)


def _programs(src: str, level: int) -> tuple:
    script = compile_script(parse(src), Env(source=src, helper_errors=level))
    return [plan.builder.build(maps={name: _FakeMap() for name in script.maps}) for plan in script.probes], script


class _FakeMap:
    fd = 3


def test_flag_off_changes_nothing_and_flag_on_adds_checks():
    src = ('BEGIN { @x[1] = 1; @c[2] = count(); @a = avg(3); @m = max(4); $v = @x[3]; delete(@x[1]); '
           '@x[1]++; printf("%s\\n", str(0)); }')
    plain, plain_script = _programs(src, 0)
    again, _ = _programs(src, 0)
    assert plain == again
    assert not [a for a in plain_script.actions if a.kind == "helper_error"]
    k1, script1 = _programs(src, 1)
    k2, script2 = _programs(src, 2)
    assert len(k1[0]) > len(plain[0]) and len(k2[0]) > len(k1[0])
    helpers1 = sorted({a.data.helper for a in script1.actions if a.kind == "helper_error"})
    helpers2 = sorted({a.data.helper for a in script2.actions if a.kind == "helper_error"})
    assert helpers1 == ["map_delete_elem", "map_update_elem"]
    assert helpers2 == ["map_delete_elem", "map_lookup_elem", "map_update_elem", "probe_read_str"]


def test_script_without_checked_calls_is_unchanged_by_k():
    src = 'BEGIN { printf("%d %s\\n", pid, comm); }'
    assert _programs(src, 0)[0] == _programs(src, 2)[0]
