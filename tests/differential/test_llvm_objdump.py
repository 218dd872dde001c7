"""ebpfpy's disassembler and assembler against LLVM 19 on real clang output.

The C files in bpf_c/ are compiled at test time; every instruction of every code section is
decoded by ebpfpy and its text compared with `llvm-objdump-19 -d --no-show-raw-insn` line by
line. objdump's `<symbol+0x..>` notes after jumps are symbol lookups, not instruction text, so
instruction comparisons look at the text before them (the CLI reproduces them and is compared
whole).

One known difference: without `--mcpu`, llvm-objdump cannot decode the 32-bit atomics other
than add (it prints `<unknown>`, or misreads fetch-add as a plain add). For those instructions
ebpfpy prints what `--mcpu=v4` prints, so they are compared with that output instead.

The bpftool syntax is checked the same way against the kernel's own printer, which writes
every instruction it verifies into the verifier log at log level 2.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from elftools.elf.elffile import ELFFile

from ebpfpy.cli import main
from ebpfpy.isa import Insn, assemble, decode, encode_all, format_insn
from ebpfpy.isa import opcodes as oc

SOURCES = sorted((Path(__file__).parent / "bpf_c").glob("*.c"))
CLANG, OBJDUMP = "clang-19", "llvm-objdump-19"
CFLAGS = ("-O2", "-g", "-target", "bpf", "-mcpu=v4")
_LINE = re.compile(r"^ *(\d+):\t(.*?)(?: <[^<>]*>)?$")


@pytest.fixture(scope="module")
def objects(tmp_path_factory) -> dict[str, Path]:
    if not (shutil.which(CLANG) and shutil.which(OBJDUMP)):
        pytest.skip("clang-19 / llvm-objdump-19 not installed")
    out = tmp_path_factory.mktemp("bpf_c")
    built = {}
    for src in SOURCES:
        obj = out / (src.stem + ".o")
        subprocess.run([CLANG, *CFLAGS, "-c", str(src), "-o", str(obj)], check=True)
        built[src.stem] = obj
    return built


def objdump(obj: Path, *extra: str) -> str:
    return subprocess.run(
        [OBJDUMP, "-d", *extra, str(obj)], check=True, capture_output=True, text=True
    ).stdout


def objdump_lines(obj: Path, *extra: str) -> dict[str, dict[int, str]]:
    """{section: {slot index: instruction text}} from objdump's listing."""
    sections: dict[str, dict[int, str]] = {}
    current: dict[int, str] = {}
    for line in objdump(obj, "--no-show-raw-insn", *extra).splitlines():
        if line.startswith("Disassembly of section "):
            current = sections.setdefault(line[len("Disassembly of section ") : -1], {})
        elif m := _LINE.match(line):
            current[int(m.group(1))] = m.group(2)
    return sections


def code_sections(obj: Path) -> dict[str, bytes]:
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        return {
            s.name: s.data()
            for s in elf.iter_sections()
            if s["sh_flags"] & 0x4 and s["sh_size"]
        }


def slots(program: list[Insn]):
    index = 0
    for insn in program:
        yield index, insn
        index += insn.size


def needs_v4_cpu(insn: Insn) -> bool:
    """32-bit atomics that llvm-objdump only decodes with --mcpu=v3 or later."""
    return (
        insn.op == oc.mem(oc.Class.STX, oc.Size.W, oc.Mode.ATOMIC)
        and insn.imm != oc.AtomicOp.ADD
    )


@pytest.fixture(params=[s.stem for s in SOURCES])
def obj(request, objects) -> Path:
    return objects[request.param]


@pytest.mark.clang
def test_every_instruction_matches_objdump(obj):
    theirs, theirs_v4 = objdump_lines(obj), objdump_lines(obj, "--mcpu=v4")
    compared = 0
    for name, data in code_sections(obj).items():
        program = decode(data)
        assert sorted(i for i, _ in slots(program)) == sorted(theirs[name])
        for index, insn in slots(program):
            expected = (
                theirs_v4[name][index] if needs_v4_cpu(insn) else theirs[name][index]
            )
            assert format_insn(insn, annotate=False) == expected, f"{name} slot {index}"
            assert (
                format_insn(insn, "llvm-v4", annotate=False) == theirs_v4[name][index]
            ), f"{name} slot {index}"
            compared += 1
    assert compared > 20


@pytest.mark.clang
def test_assembling_objdump_output_gives_the_same_instructions(obj):
    """The whole listing, headers and `-r` relocation lines included, sections in a row."""
    listing = objdump(obj, "-r", "--mcpu=v4")
    code = b"".join(code_sections(obj).values())
    # objdump prints every call alike; its text cannot tell a local call from a helper call.
    expected = [
        Insn(i.op, i.dst, 0, i.off, i.imm) if i.is_call else i for i in decode(code)
    ]
    assert assemble(listing) == expected


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.clang
def test_cli_listing_is_objdump_listing(obj):
    """`ebpfpy disasm --style llvm-v4` is `llvm-objdump -d --mcpu=v4`, headers and notes included."""
    assert run_cli("disasm", "--style", "llvm-v4", str(obj)) == objdump(
        obj, "--no-show-raw-insn", "--mcpu=v4"
    )
    assert run_cli("disasm", "--style", "llvm-v4", "--bytes", str(obj)) == objdump(
        obj, "--mcpu=v4"
    )


@pytest.mark.clang
def test_cli_default_listing_differs_only_where_objdump_needs_a_cpu(obj):
    ours = run_cli("disasm", str(obj)).splitlines()
    theirs = objdump(obj, "--no-show-raw-insn").splitlines()
    theirs_v4 = objdump(obj, "--no-show-raw-insn", "--mcpu=v4").splitlines()
    assert len(ours) == len(theirs)
    for mine, plain, v4 in zip(ours, theirs, theirs_v4):
        assert mine == plain or (mine == v4 and ("32 *)" in v4 or "32_32(" in v4)), (
            mine,
            plain,
        )


@pytest.mark.clang
def test_cli_section_filter(objects):
    obj = objects["maps_and_calls"]
    ours = run_cli("disasm", "--section", "socket", str(obj))
    assert ours == objdump(obj, "--no-show-raw-insn", "-j", "socket")


# A socket filter the verifier accepts, touching every family the kernel's printer formats
# differently from llvm: decimal immediates, pc-relative jumps, helper names, atomics.
VERIFIED = """
    r6 = r1
    r0 = *(u8 *)skb[0x17]
    r0 = *(u16 *)skb[r0]
    r1 = 0x7
    r2 = -0x3
    r1 s/= r2
    w1 s%= 0x3
    r3 = (s8)r1
    w3 = (s16)w1
    r3 = bswap32 r3
    r3 = be16 r3
    r3 = le64 r3
    w3 = -w3
    r3 s>>= 0x2
    r3 = 0x123456789 ll
    *(u64 *)(r10 - 0x8) = r3
    *(u32 *)(r10 - 0x10) = -0x1
    r4 = *(s16 *)(r10 - 0x8)
    w4 = *(u32 *)(r10 - 0x10)
    r5 = 0x1
    lock *(u64 *)(r10 - 0x8) += r5
    r5 = atomic_fetch_xor((u64 *)(r10 - 0x8), r5)
    w5 = xchg32_32(r10 - 0x10, w5)
    r0 = 0x0
    r0 = cmpxchg_64(r10 - 0x8, r0, r5)
    if w4 s< -0x5 goto +0x1
    if r4 & r5 goto +0x0
    gotol +0x0
    may_goto +0x0
    call bpf_ktime_get_ns
    call sub
    r0 = 0x0
    exit
sub:
    r0 = 0x1
    exit
"""
_LOG_LINE = re.compile(r"^(\d+): (\([0-9a-f]{2}\) .*?)(?:\s+;.*)?$")


@pytest.mark.kernel
def test_bpftool_style_is_the_kernel_printer():
    from ebpfpy.sys.bpf import prog_load_with_log

    program = assemble(VERIFIED)
    fd, log = prog_load_with_log(
        1, encode_all(program), log_level=2, log_size=1 << 20
    )  # socket filter
    fd.close()
    printed = {
        int(m.group(1)): m.group(2) for m in map(_LOG_LINE.match, log.splitlines()) if m
    }
    for index, insn in slots(program):
        assert format_insn(insn, "bpftool") == printed[index], f"slot {index}"
