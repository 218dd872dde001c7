"""`pybpftrace -d`: each statement's source text and span above the instructions made for it."""
import re
import subprocess
import sys

import pytest

from ebpfpy.bpftrace.driver import Options, compile_source
from ebpfpy.bpftrace.explain import explain

pytestmark = pytest.mark.kernel


def listing(source: str) -> str:
    """The program sections of the -d report (after the AST dumps and the map list)."""
    program, script = compile_source(Options(source=source), passes=[])
    text = explain(program, script, source, passes=[])
    return text[text.index("Program for "):]


def headers(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("  ;")]


def test_one_liner_gets_a_header_per_statement():
    src = 'BEGIN /1 > 0/ { @[comm] = count(); $x = 1; if ($x > 0) { printf("(%d\\n", $x); } @z += 2; }'
    text = listing(src)
    assert headers(text) == [
        f"  ; line 1: {src}",
        "  ;   /1 > 0/   (1:7-14)",
        "  ;   @[comm] = count();   (1:17-35)",
        "  ;   $x = 1;   (1:36-43)",
        "  ;   if ($x > 0)   (1:44-55)",
        '  ;   printf("(%d\\n", $x);   (1:58-78)',
        "  ;   if ($x > 0)   (1:44-55)",  # the jump over the else that follows the block
        "  ;   @z += 2;   (1:81-89)",
        "  ; (no statement: the probe's own code)",
    ]
    # Each statement's span covers its text, as error messages count columns.
    line = src
    for header in headers(text)[1:-1]:
        stmt, where = re.match(r"  ;   (.*)   \(1:(\d+-\d+)\)$", header).groups()
        start, end = map(int, where.split("-"))
        assert line[start - 1:end - 1] == stmt
    # Instructions follow their header: the comm read comes under its statement.
    after = text.split("  ;   @[comm] = count();", 1)[1].split("  ;", 1)[0]
    assert "call bpf_get_current_comm" in after and "map[@]" in after


def test_statements_alone_on_their_line_and_over_several_lines():
    src = ('BEGIN\n'
           '{\n'
           '  @a = count();\n'
           '  printf("%d %d\\n",\n'
           '         1, 2);\n'
           '  while (@b < 2) { @b = 1; }\n'
           '}\n')
    assert headers(listing(src)) == [
        "  ; line 3: @a = count();   (3:3-16)",  # the whole line: one header says both
        '  ; line 4: printf("%d %d\\n",',
        '  ;   printf("%d %d\\n", 1, 2);   (4:3-5:16)',
        "  ; line 6: while (@b < 2) { @b = 1; }",
        "  ;   while (@b < 2)   (6:3-17)",
        "  ;   @b = 1;   (6:20-27)",
        "  ;   while (@b < 2)   (6:3-17)",
        "  ; (no statement: the probe's own code)",
    ]


def test_map_loads_name_the_map_and_values_by_name():
    text = listing("BEGIN { @x[1] = 2; @y = 3; }")
    assert "= map[@x]\n" in text and "= map[@y]\n" in text
    assert "map[id:" not in text


def test_command_line_report_keeps_its_sections():
    res = subprocess.run([sys.executable, "-m", "ebpfpy.bpftrace", "-d", "-e", "BEGIN { @x = count(); exit(); }"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.index("AST after: parser") < out.index("Maps:") < out.index("Program for BEGIN")
    assert "  ; line 1: BEGIN { @x = count(); exit(); }\n  ;   @x = count();   (1:9-22)\n" in out
    assert "  ;   exit();   (1:23-30)\n" in out
