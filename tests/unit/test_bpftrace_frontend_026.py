"""bpftrace 0.26's front-end features (issue #14) without a kernel: ``import "file";``
(imports.py, between the grammar and semantic analysis), ``--fmt`` (formatter.py),
``--probe-filter`` and ``test:``/``bench:`` probes as the driver and the probe table see them.
Expected texts are the observed ones of /work/shared/bpftrace-0.26-notes.md (E23-E25, the
import row of 1.2) or bpftrace's documented messages; each feature also checks that 0.17 mode
is unchanged. The runs themselves are in tests/kernel/test_pybpftrace_frontend_026.py."""
from __future__ import annotations

import pytest

from ebpfpy.attach.provider import KINDS as ATTACH_KINDS
from ebpfpy.bpftrace import ast as A
from ebpfpy.bpftrace import cli
from ebpfpy.bpftrace.diagnostics import Diagnostic, Span
from ebpfpy.bpftrace.driver import apply_probe_filter
from ebpfpy.bpftrace.formatter import format_source
from ebpfpy.bpftrace.parser import parse
from ebpfpy.bpftrace.probes import parse_spec
from ebpfpy.bpftrace.testbench import drop_on_demand


def modern(text: str, filename: str = "stdin") -> A.Program:
    return parse(text, filename, include_dirs=(), compat="0.26")


def error(text: str, filename: str = "stdin", compat: str = "0.26") -> str:
    with pytest.raises(Diagnostic) as exc:
        parse(text, filename, include_dirs=(), compat=compat)
    return exc.value.format(text, filename)


def names(program: A.Program) -> list[str]:
    return [ap.raw for p in program.probes for ap in p.attach_points]


# -- import ----------------------------------------------------------------------------

HELPER = 'macro twice(x) { x * 2 }\nbegin { printf("helper\\n"); }\n'


def test_import_merges_macros_and_probes_next_to_the_script(tmp_path):
    (tmp_path / "helper.bt").write_text(HELPER)
    script = tmp_path / "main.bt"
    text = 'import "helper.bt";\nend { printf("%d\\n", twice(21)); }\n'
    program = modern(text, str(script))
    assert names(program) == ["END", "BEGIN"]  # the imported probes come after the script's
    assert program.imports == ()  # resolved: later passes never see an import
    printf = program.probes[0].body[0].expr
    assert isinstance(printf.args[1], A.BlockExpr) and printf.args[1].expr.op == "*"  # twice() expanded


def test_import_from_e_is_looked_up_in_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "helper.bt").write_text(HELPER)
    monkeypatch.chdir(tmp_path)
    assert names(modern('import "helper.bt"; end { }')) == ["END", "BEGIN"]


def test_an_imported_file_may_hold_macros_alone(tmp_path):
    (tmp_path / "lib.bt").write_text("macro twice(x) { x * 2 }\n")
    program = modern('import "lib.bt"; begin { @ = twice(4); }', str(tmp_path / "main.bt"))
    assert names(program) == ["BEGIN"]
    assert "unexpected end of file" in error("macro twice(x) { x * 2 }\n")  # a script needs a probe


def test_import_not_found_in_bpftraces_words(tmp_path):
    assert error('import "helper.bt";\nbegin { exit(); }') == (
        "stdin:1:1-20: ERROR: Unable to find suitable path for import\n"
        'import "helper.bt";\n'
        "~~~~~~~~~~~~~~~~~~~\n"
        "HINT: checked: helper.bt\n")
    script = str(tmp_path / "x.bt")
    assert error('import "nope.bt";\nbegin { }', script).endswith(f"HINT: checked: {tmp_path}/nope.bt\n")


def test_imported_files_errors_name_that_file(tmp_path):
    (tmp_path / "broken.bt").write_text('begin { printf("x" }\n')
    (tmp_path / "cfg.bt").write_text("config = { max_strlen = 8 }\nbegin { }\n")
    script = str(tmp_path / "main.bt")
    assert error('import "broken.bt"; begin { }', script).startswith(
        "broken.bt:1:20-21: ERROR: syntax error, unexpected }, expecting ) or \",\"\n"
        'begin { printf("x" }\n')
    assert error('import "cfg.bt"; begin { }', script).startswith(
        "cfg.bt:1:12-26: ERROR: invalid `config` within import\n")


def test_import_kinds_directories_and_nesting(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.bt").write_text('import "b.bt";\nmacro one() { 1 }\ninterval:s:1 { }\n')
    (tmp_path / "b.bt").write_text("interval:s:2 { }\n")  # found where main.bt's names are
    (tmp_path / "lib" / "notes.txt").write_text("skipped in a directory\n")
    (tmp_path / "x.txt").write_text("")
    (tmp_path / "x.bpf.c").write_text("")
    script = str(tmp_path / "main.bt")
    program = modern('import "lib"; import "lib/a.bt"; begin { @ = one; }', script)
    # each file once, the imported ones in the order of their names (b.bt < lib/a.bt)
    assert names(program) == ["BEGIN", "interval:s:2", "interval:s:1"]
    assert 'ERROR: unknown import type: "x.txt"' in error('import "x.txt"; begin { }', script)
    assert "importing C sources is not supported by pybpftrace yet" in error('import "x.bpf.c"; begin { }', script)
    assert "syntax: imports must appear before probes" in error('begin { } import "b.bt";', script)
    assert "ERROR: syntax: expected string after 'import'" in error("import b; begin { }", script)


def test_import_refuses_a_world_writable_file(tmp_path):
    helper = tmp_path / "helper.bt"
    helper.write_text(HELPER)
    helper.chmod(0o666)
    text = error('import "helper.bt"; begin { }', str(tmp_path / "main.bt"))
    assert f'WARNING: skipping due to global write permissions: "{helper}"' in text
    assert "ERROR: Unable to find suitable path for import" in text


def test_import_header_gives_its_defines(tmp_path):
    (tmp_path / "answer.h").write_text("#define ANSWER 42\n")
    program = parse('import "answer.h"; begin { @ = ANSWER; }', str(tmp_path / "m.bt"), compat="0.26")
    assert program.probes[0].body[0].expr == A.Integer(42)


def test_import_in_017_mode_is_not_read(tmp_path):
    (tmp_path / "helper.bt").write_text(HELPER)
    script = str(tmp_path / "main.bt")
    found = error('import "helper.bt"; BEGIN { }', script, compat="0.17")
    missing = error('import "helpex.bt"; BEGIN { }', script, compat="0.17").replace("helpex", "helper")
    assert found == missing and "syntax error" in found


# -- --fmt (E25) -------------------------------------------------------------------------

E25_SOURCE = 'begin{ $x=1+2; if($x>1){printf("%d\\n",$x);} @m[1,"a"]=count(); }\n'
E25_FORMATTED = ('begin\n{\n  $x = 1 + 2;\n  if ($x > 1) {\n    printf("%d\\n", $x);\n  }\n'
                 '  @m[1,"a"] = count();\n}\n')


def test_fmt_prints_e25_and_leaves_the_file(tmp_path, capsys):
    path = tmp_path / "f.bt"
    path.write_text(E25_SOURCE)
    assert cli.main(["--compat=0.26", "--fmt", str(path)]) == 0
    out = capsys.readouterr()
    assert out.out == E25_FORMATTED and out.err == ""
    assert path.read_text() == E25_SOURCE
    assert cli.main(["--compat=0.26", "--mode", "format", str(path)]) == 0
    assert capsys.readouterr().out == E25_FORMATTED


def test_fmt_layout_of_other_statements():
    text, why = format_source("kprobe:f /pid>0/ { if ($a) { @z++ } else if (!$a) { return } else { exit() } "
                              "for ($kv : @y) { print($kv.0); } @x = (1 + 2) * 3; }", compat="0.26")
    assert why is None
    assert text == ("kprobe:f /pid > 0/\n{\n  if ($a) {\n    @z++;\n  } else if (!$a) {\n    return;\n"
                    "  } else {\n    exit();\n  }\n  for ($kv : @y) {\n    print($kv.0);\n  }\n"
                    "  @x = (1 + 2) * 3;\n}\n")


@pytest.mark.parametrize("source", [
    "begin { @x = 1; } // a comment\n",  # comments are not kept yet
    "begin { delete(@x, 1); }\n",  # lowered by the parser: printing it would change the script
    "begin { $d = 100ms; }\n",
    "begin { @x = ((1)); }\n",  # redundant parentheses
])
def test_fmt_prints_what_it_cannot_keep_unchanged(source):
    text, why = format_source(source, compat="0.26")
    assert text == source and why


def test_fmt_errors_and_017_mode(tmp_path, capsys):
    path = tmp_path / "e.bt"
    path.write_text('begin { printf("x" }')
    assert cli.main(["--compat=0.26", "--fmt", str(path)]) == 1
    assert "e.bt:1:20-21: ERROR: syntax error" in capsys.readouterr().err
    assert cli.main(["--compat=0.17", "--fmt", str(path)]) == 1
    assert capsys.readouterr().err.startswith("pybpftrace: unrecognized option '--fmt'\n")
    assert cli.main(["--compat=0.26", "--mode", "nope", "-e", "begin { }"]) == 1
    assert "ERROR: USAGE: invalid option for --mode: nope" in capsys.readouterr().err


# -- --probe-filter (E24) ---------------------------------------------------------------

class _Plan:
    def __init__(self, probe, covers=()):
        self.probe, self.covers = probe, covers


class _Script:
    def __init__(self, *plans):
        self.probes = list(plans)


def test_probe_filter_keeps_begin_end_and_the_matches():
    script = _Script(_Plan("BEGIN"), _Plan("interval:ms:100"), _Plan("interval:s:1"), _Plan("END"))
    assert apply_probe_filter(script, "interval:s:.*") is None
    assert [p.probe for p in script.probes] == ["BEGIN", "interval:s:1", "END"]
    script = _Script(_Plan("BEGIN"), _Plan("interval:ms:100"))
    apply_probe_filter(script, "nothing")
    assert [p.probe for p in script.probes] == ["BEGIN"]
    dispatch = _Script(_Plan("rawtracepoint:sys_enter", ("tracepoint:syscalls:sys_enter_read",)))
    apply_probe_filter(dispatch, "sys_enter_read")
    assert len(dispatch.probes) == 1
    assert apply_probe_filter(_Script(), "(").startswith("ERROR: --probe-filter: invalid regular expression '('")


def test_probe_filter_flag_is_026s():
    assert cli.parse_args(["--probe-filter", "x", "-e", "p"], modern=True).probe_filter == "x"
    with pytest.raises(cli.UsageError, match="unrecognized option '--probe-filter'"):
        cli.parse_args(["--probe-filter", "x", "-e", "p"])


# -- test: and bench: probes (E23) -------------------------------------------------------

def test_test_and_bench_kinds_are_rows_of_the_one_table():
    rows = {k.name: k for k in ATTACH_KINDS}
    assert rows["test"].module == rows["bench"].module == "special"
    assert parse_spec("test:passes", Span(1, 1, 12), (), "0.26").parts == ("passes",)
    assert parse_spec("Bench:loop10", Span(1, 1, 13), (), "0.26").kind == "bench"
    with pytest.raises(Diagnostic, match="Invalid probe type: test"):
        parse_spec("test:passes", Span(1, 1, 12), (), "0.17")


def test_a_normal_run_drops_them():
    script = _Script(_Plan("BEGIN"), _Plan("test:a"), _Plan("bench:b"))
    assert drop_on_demand(script) is None and [p.probe for p in script.probes] == ["BEGIN"]
    only_bench = _Script(_Plan("bench:loop10"), _Plan("bench:count"))
    assert drop_on_demand(only_bench) == "ERROR: No probes attached; use --bench to run benchmark probes."
    assert cli.parse_args(["--bench", "f.bt"], modern=True).mode == "bench"
    assert cli.parse_args(["--test", "f.bt"], modern=True).mode == "test"
