"""`ebpfpy vm run|step|plugin`: the emulator from the shell."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from ebpfpy.cli import main
from ebpfpy.isa import assemble, encode_all

COUNT = """\
# count: bump the value of key 7 in map fd 1
    *(u32 *)(r10 - 4) = 7
    ld_pseudo r1, 1, 1
    r2 = r10
    r2 += -4
    call map_lookup_elem
    if r0 == 0 goto out
    r1 = 5
    lock *(u64 *)(r0 + 0) += r1
out:
    r0 = 42
    exit
"""


def invoke(*args: str, input: str | bytes | None = None):
    return CliRunner().invoke(main, ["vm", *args], input=input, catch_exceptions=False)


@pytest.fixture
def count_s(tmp_path):
    path = tmp_path / "count.s"
    path.write_text(COUNT)
    return str(path)


def test_run_prints_r0_and_maps(count_s):
    result = invoke("run", count_s, "--map", "counts=array:4:8:16")
    assert result.exit_code == 0, result.output
    assert result.output == "r0 = 42 (0x2a)\n@counts[7]: 5\n"


def test_run_negative_r0_and_hash_map(tmp_path):
    path = tmp_path / "neg.s"
    path.write_text("r0 = -1\nexit\n")
    result = invoke("run", str(path), "--map", "hash:4:8:4")
    assert result.output == "r0 = 18446744073709551615 (0xffffffffffffffff, -1)\n"


def test_run_memory_and_context(tmp_path):
    path = tmp_path / "mem.s"
    path.write_text("r0 = *(u32 *)(r1 + 4)\nr0 += r2\nexit\n")
    assert invoke("run", str(path), "--mem", "00 00 00 00 01 02 03 04").output.startswith("r0 = 67305993 (0x4030209)")
    assert invoke("run", str(path), "--ctx", "0000000005000000").output.startswith("r0 = 5 ")


def test_run_raw_bytes_and_stdin(tmp_path):
    path = tmp_path / "prog.bin"
    path.write_bytes(encode_all(assemble("r0 = 7\nexit")))
    assert invoke("run", str(path)).output == "r0 = 7 (0x7)\n"
    assert invoke("run", "-", input="r0 = 8\nexit\n").output == "r0 = 8 (0x8)\n"


def test_step_shows_instructions_changes_and_lines(count_s):
    result = invoke("step", count_s, "--map", "counts=array:4:8:16")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "; count.s:2: *(u32 *)(r10 - 4) = 7"
    assert lines[1].split() == ["0:", "*(u32", "*)(r10", "-", "0x4)", "=", "0x7", "*(u32", "*)0x7ff0000001fc", "=", "0x7"]
    assert "    5: call map_lookup_elem" in result.output
    assert any(line.startswith("    6: if r0 == 0x0 goto +0x2") for line in lines)
    locked = next(line for line in lines if "lock" in line and not line.startswith(";"))
    assert locked.endswith("= 0x5") and "*(u64 *)0x4000" in locked
    assert "; count.s:11: r0 = 42" in lines
    assert lines[-3].startswith("   10: exit") and lines[-3].endswith("(end: r0 = 0x2a)")
    assert lines[-2:] == ["r0 = 42 (0x2a)", "@counts[7]: 5"]


def test_step_limit(tmp_path):
    path = tmp_path / "loop.s"
    path.write_text("r0 = 0\nloop:\nr0 += 1\ngoto loop\n")
    result = invoke("step", str(path), "--limit", "5")
    assert result.exit_code == 1
    assert [line.split(":")[0].strip() for line in result.output.splitlines() if line.startswith("    ")] == \
        ["0", "1", "2", "1", "2"]
    assert "ERROR: stopped after 5 instructions (--limit)" in result.output


def test_errors_are_one_line_and_exit_1(tmp_path, count_s):
    bad = tmp_path / "bad.s"
    bad.write_text("r0 = *(u64 *)(r10 + 0)\nexit\n")
    result = invoke("run", str(bad))
    assert result.exit_code == 1
    assert result.output.startswith("ERROR: instruction 0: read of 8 bytes at 0x7ff000000200 is out of bounds")
    assert "bad.s:1: r0 = *(u64 *)(r10 + 0)" in result.output
    assert "Traceback" not in result.output
    result = invoke("run", count_s)  # no map fd 1
    assert result.exit_code == 1 and "map fd 1" in result.output
    (tmp_path / "junk.s").write_text("this is not bpf\n")
    result = invoke("run", str(tmp_path / "junk.s"))
    assert result.exit_code == 1 and "cannot parse" in result.output
    result = invoke("run", str(tmp_path / "missing.s"))
    assert result.exit_code == 1 and "No such file" in result.output
    result = invoke("run", count_s, "--map", "counts=hash:4")
    assert result.exit_code == 2 and "TYPE:KEY_SIZE:VALUE_SIZE:MAX_ENTRIES" in result.output
    result = invoke("run", count_s, "--section", "x")
    assert result.exit_code == 2 and "only applies to object files" in result.output
    result = invoke("run", count_s, "--map", "counts=lpm_trie:4:8:4")
    assert result.exit_code == 1 and "not emulated" in result.output


def test_subprocess_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.s"
    bad.write_text("call get_current_task\nexit\n")
    proc = subprocess.run([sys.executable, "-m", "ebpfpy.cli", "vm", "run", str(bad)],
                          capture_output=True, text=True, timeout=60)
    if "No module named ebpfpy.cli.__main__" in proc.stderr:
        proc = subprocess.run([sys.executable, "-c", "from ebpfpy.cli import main; main()", "vm", "run", str(bad)],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr == ("ERROR: instruction 0: helper bpf_get_current_task#35 is not emulated "
                           "(vm.add_helper can add it)\n    0: call 0x23    ; bad.s:1: call get_current_task\n")


# -- bpf_conformance plugin mode -----------------------------------------------------------------


def conformance_hex(data: bytes) -> str:
    """bpf_conformance's base16: each byte as two digits, a space, then another space."""
    return "".join(f"{b:02x}  " for b in data)


PLUGIN_CASES = [
    ("r0 = 42\nexit", b"", "2a"),
    ("r0 = -1\nexit", b"", "ffffffffffffffff"),
    ("r0 = *(u16 *)(r1 + 2)\nexit", bytes([0, 1, 0xCC, 0xDD]), "ddcc"),
    ("r0 = r2\nexit", bytes(7), "7"),
    ("r0 = 0\nr1 = 0\nr0 /= r1\nexit", b"", "0"),
    ("w0 = 0x80000000\nw0 s/= -1\nexit", b"", "80000000"),
    ("r0 = 0x0102030405060708 ll\nr0 = be64 r0\nexit", b"", "807060504030201"),
    ("r1 = 5\ncall f\nexit\nf:\nr0 = r1\nr0 *= 3\nexit", b"", "f"),
]


@pytest.mark.parametrize(("src", "mem", "r0"), PLUGIN_CASES)
def test_plugin_stdin(src, mem, r0):
    program = conformance_hex(encode_all(assemble(src)))
    result = CliRunner().invoke(main, ["vm", "plugin", conformance_hex(mem), ""], input=program + "\n")
    assert result.exit_code == 0, result.output
    assert result.output == r0 + "\n"


def test_plugin_program_option_and_no_memory():
    program = encode_all(assemble("r0 = 0x2a\nexit")).hex()
    result = invoke("plugin", "--program", program)
    assert result.output == "2a\n"


def test_plugin_errors_exit_1_with_a_message():
    program = conformance_hex(encode_all(assemble("r0 = *(u64 *)(r1 + 4)\nexit")))
    result = CliRunner().invoke(main, ["vm", "plugin", conformance_hex(bytes(8))], input=program)
    assert result.exit_code == 1
    assert "instruction 0: read of 8 bytes" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["vm", "plugin"], input="zz")
    assert result.exit_code == 1 and "bad hex input" in result.output
    result = CliRunner().invoke(main, ["vm", "plugin"], input="ff00000000000000")
    assert result.exit_code == 1 and "unknown opcode 0xff" in result.output


def test_plugin_as_a_process_with_options_argument():
    program = conformance_hex(encode_all(assemble("r0 = *(u8 *)(r1 + 1)\nexit")))
    proc = subprocess.run(
        [sys.executable, "-c", "from ebpfpy.cli import main; main()", "vm", "plugin", "01  ff  ", "--some-option"],
        input=program, capture_output=True, text=True, timeout=60,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "ff\n", "")


def test_plugin_options_without_memory():
    """The runner leaves the memory argument out when there is none, and appends its options."""
    program = conformance_hex(encode_all(assemble("r0 = r2\nr0 += 1\nexit")))
    result = CliRunner().invoke(main, ["vm", "plugin", "--jit", "--other=1"], input=program)
    assert (result.exit_code, result.output) == (0, "1\n")
    result = CliRunner().invoke(main, ["vm", "plugin", "--jit", conformance_hex(bytes(3))], input=program)
    assert (result.exit_code, result.output) == (0, "4\n")


@pytest.mark.clang
def test_plugin_elf_mode(tmp_path):
    src = tmp_path / "main.c"
    src.write_text("int main(void) { return 42; }\nint other(void) { return 7; }\n")
    obj = tmp_path / "main.o"
    subprocess.run(["clang-19", "-O2", "-target", "bpf", "-c", str(src), "-o", str(obj)], check=True)
    result = CliRunner().invoke(main, ["vm", "plugin", "--elf"], input=conformance_hex(obj.read_bytes()))
    assert (result.exit_code, result.output) == (0, "2a\n")
    result = CliRunner().invoke(main, ["vm", "plugin", "--elf"], input=conformance_hex(b"not an elf"))
    assert result.exit_code == 1 and "not a usable ELF object" in result.output


@pytest.mark.parametrize("spec, words", [
    ("array:8:4:1", "4-byte keys, not 8"),
    ("array:4:99999999999:1", "sizes are 32-bit"),
    ("array:4:9999999:1", "value_size 9999999 is above 4194304"),
    ("array:4:8:99999999999", "max_entries 99999999999 is not in 1..4294967295"),
    ("hash:600:8:1", "key_size 600 is above 512"),
    ("percpu_array:4:40000:1", "per-CPU value_size above 32768"),
    ("stack_trace:4:12:1", "multiple of 8 bytes"),
])
def test_maps_the_kernel_would_refuse_are_one_error_line(count_s, spec, words):
    """Sizes the kernel refuses (E2BIG, EINVAL) are refused the same way, before any allocation:
    `array:4:99999999999:...` once made the VM zero-fill gigabytes until the OOM killer came."""
    result = CliRunner().invoke(main, ["vm", "run", count_s, "--map", spec])
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("ERROR: "), result.output
    assert words in result.output and "internal error" not in result.output


def test_a_huge_array_prints_only_the_elements_made(count_s):
    """An array of 4 billion elements prints at once: untouched elements are zeros, never read."""
    result = invoke("run", count_s, "--map", "counts=array:4:8:4000000000")
    assert result.exit_code == 0, result.output
    assert result.output == "r0 = 42 (0x2a)\n@counts[7]: 5\n"
