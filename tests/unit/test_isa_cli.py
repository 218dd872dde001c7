"""`ebpfpy asm` / `ebpfpy disasm --raw`: bytes and text through the command line."""

from click.testing import CliRunner

from ebpfpy.cli import main
from ebpfpy.isa import Insn, encode_all

SOURCE = "r0 = 0x2a\nif r0 > 0x10 goto out\nr0 = 0x0\nout:\nexit\n"
PROGRAM = [Insn(0xB7, imm=42), Insn(0x25, off=1, imm=16), Insn(0xB7), Insn(0x95)]


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input)


def test_asm_writes_raw_bytes(tmp_path):
    src, out = tmp_path / "p.s", tmp_path / "p.bin"
    src.write_text(SOURCE)
    result = run("asm", str(src), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == encode_all(PROGRAM)


def test_asm_from_stdin_to_stdout():
    result = run("asm", "-", input=SOURCE)
    assert result.exit_code == 0
    assert result.stdout_bytes == encode_all(PROGRAM)


def test_disasm_raw(tmp_path):
    path = tmp_path / "p.bin"
    path.write_bytes(encode_all(PROGRAM))
    result = run("disasm", "--raw", str(path))
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "       0:\tr0 = 0x2a",
        "       1:\tif r0 > 0x10 goto +0x1",
        "       2:\tr0 = 0x0",
        "       3:\texit",
    ]


def test_disasm_raw_stdin_with_bytes_and_styles():
    result = run("disasm", "--raw", "--bytes", "-", input=encode_all(PROGRAM[:1]))
    assert result.output == "       0:\tb7 00 00 00 2a 00 00 00\tr0 = 0x2a\n"
    result = run(
        "disasm", "--raw", "--style", "bpftool", "-", input=encode_all(PROGRAM[:1])
    )
    assert result.output == "   0: (b7) r0 = 42\n"


def test_round_trip_through_both_commands():
    data = run("asm", "-", input=SOURCE).stdout_bytes
    listing = run("disasm", "--raw", "-", input=data).output
    assert run("asm", "-", input=listing).stdout_bytes == data


def _assert_clean_error(result, *words):
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), result.output
    for word in words:
        assert word in lines[0]


def test_errors_are_one_clean_line(tmp_path):
    _assert_clean_error(run("asm", "-", input="r0 = 1\nr0 ?= 2\n"), "line 2", "r0 ?= 2")
    _assert_clean_error(
        run("disasm", "--raw", "-", input=b"\xff" * 8),
        "instruction 0",
        "unknown opcode",
    )
    _assert_clean_error(
        run("disasm", "--raw", "-", input=b"\x95" * 5), "not a multiple of 8"
    )
    _assert_clean_error(run("disasm", str(tmp_path / "missing.o")), "missing.o")
    text = tmp_path / "not-elf.o"
    text.write_text("hello")
    _assert_clean_error(run("disasm", str(text)), "not a valid ELF")
    _assert_clean_error(run("asm", "-", input=b"\xff\xfe"), "not text")
