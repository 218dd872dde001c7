"""`Names`: what a listing says beyond the instruction fields (map names, callee names), and
bpftool's rules for naming the calls of the kernel's translated code."""
import pytest

from ebpfpy.cli.inspect import XlatedCalls, decode_xlated
from ebpfpy.events.symbols import KernelSymbols
from ebpfpy.isa import Insn, ISAError, assemble, encode_all, format_insn, format_program
from ebpfpy.isa.disasm import Names

PROGRAM = [
    Insn(0x18, 1, 1, imm=5),  # r1 = map fd 5
    Insn(0x18, 2, 2, imm=(8 << 32) | 6),  # r2 = &value of map fd 6, + 8
    Insn(0x18, 3, 1, imm=7),  # a map fd nobody named
    Insn(0x18, 4, imm=0),  # a relocatable ld_imm64: llvm-objdump's `r4 = 0x0 ll`
    Insn(0x85, imm=1),
    Insn(0x95),
]
MAPS = Names(maps={5: "events", 6: "globals"})


def test_bpftool_style_names_maps_in_place_of_ids():
    assert format_program(PROGRAM, style="bpftool", names=MAPS) == (
        "   0: (18) r1 = map[events]\n"
        "   2: (18) r2 = map[globals][0]+8\n"
        "   4: (18) r3 = map[id:7]\n"
        "   6: (18) r4 = 0x0\n"
        "   8: (85) call bpf_map_lookup_elem#1\n"
        "   9: (95) exit\n"
    )


@pytest.mark.parametrize("style", ["llvm", "llvm-v4"])
def test_llvm_styles_keep_objdump_text_and_add_a_symbol_note(style):
    listing = format_program(PROGRAM, style=style, names=MAPS)
    assert listing.splitlines()[:4] == [
        "       0:\tld_pseudo\tr1, 0x1, 0x5 <events>",
        "       2:\tld_pseudo\tr2, 0x2, 0x6, 0x8 <globals+0x8>",
        "       4:\tld_pseudo\tr3, 0x1, 0x7",
        "       6:\tr4 = 0x0 ll",
    ]
    assert assemble(listing) == PROGRAM  # the notes are objdump's `<...>`: read back as such
    # Without annotations the text is objdump's own, names or not.
    assert format_program(PROGRAM, style=style, names=MAPS, annotate=False) == format_program(
        PROGRAM, style=style, annotate=False)


def test_without_names_nothing_changes():
    for style in ("llvm", "bpftool"):
        assert format_program(PROGRAM, style=style, names=Names()) == format_program(PROGRAM, style=style)
    assert format_insn(PROGRAM[0], "bpftool") == "(18) r1 = map[id:5]"


def test_calls_are_named_as_the_kernel_printer_names_them():
    asked = []

    def calls(insn):
        asked.append(insn.imm)
        return {300000: "bpf_get_current_comm", 77: "bpf_rcu_read_lock", 2: "ignored"}.get(insn.imm)

    names = Names(calls=calls)
    # The helper table first: the namer is not asked for an id it knows.
    assert format_insn(Insn(0x85, imm=16), "bpftool", names=names) == "(85) call bpf_get_current_comm#16"
    assert format_insn(Insn(0x85, imm=300000), "bpftool", names=names) == (
        "(85) call bpf_get_current_comm#300000")
    assert format_insn(Insn(0x85, imm=-5), "bpftool", names=names) == "(85) call unknown#-5"
    assert format_insn(Insn(0x85, src=2, imm=77), "bpftool", names=names) == "(85) call bpf_rcu_read_lock#77"
    assert format_insn(Insn(0x85, src=2, imm=78), "bpftool", names=names) == "(85) call kernel-function#78"
    assert format_insn(Insn(0x85, src=1, imm=2), "bpftool", names=names) == "(85) call pcignored"
    assert format_insn(Insn(0x85, src=1, imm=3), "bpftool", names=names) == "(85) call pc+3"
    assert asked == [300000, -5, 77, 78, 2, 3]
    # llvm syntax never names a callee.
    assert format_insn(Insn(0x85, imm=300000), names=names) == "call 0x493e0"


def test_xlated_local_calls_keep_their_offset_in_off():
    """In the kernel's dump a local call's `off` is the pc offset, `imm` the subprogram index."""
    xlated = Insn(0x85, src=1, off=4, imm=1)
    with pytest.raises(ISAError, match="reserved field off"):
        format_insn(xlated, "bpftool")  # not a valid instruction to load
    assert format_insn(xlated, "bpftool", names=Names(xlated=True)) == "(85) call pc+4"
    named = Names(calls=lambda insn: f"{insn.off:+d}#bpf_prog_abc_F", xlated=True)
    assert format_insn(xlated, "bpftool", names=named) == "(85) call pc+4#bpf_prog_abc_F"
    with pytest.raises(ISAError, match="unknown opcode"):
        format_insn(Insn(0xFF), "bpftool", names=named)  # everything else is still checked


def test_decode_xlated_accepts_the_kernel_local_call_form():
    data = encode_all([Insn(0x18, 1, imm=1 << 40), Insn(0x85, src=1, off=2, imm=1), Insn(0x95),
                       Insn(0x85, imm=7), Insn(0x95)])
    insns = decode_xlated(data)
    assert insns[1] == Insn(0x85, src=1, off=2, imm=1)
    assert insns[0].imm == 1 << 40 and len(insns) == 5
    with pytest.raises(ISAError, match="instruction 3"):
        decode_xlated(data[:24] + bytes([0xFF]) + data[25:])


def test_xlated_calls_follow_bpftool_rules_for_what_kallsyms_lacks(tmp_path):
    """A kallsyms with __bpf_call_base and one helper: named, unnamed and local calls."""
    table = tmp_path / "kallsyms"
    table.write_text("ffffffff81000000 T __bpf_call_base\n"
                     "ffffffff81000100 T bpf_some_helper\n"
                     "ffffffffa0000000 t bpf_prog_0123456789abcdef_F\t[bpf]\n")
    calls = XlatedCalls((0xFFFFFFFFA0001000, 0xFFFFFFFFA0000000), KernelSymbols(str(table)))
    assert calls(Insn(0x85, imm=0x100)) == "bpf_some_helper"
    assert calls(Insn(0x85, imm=0x80)) == "0xffffffff81000080"  # inside a symbol: not named
    assert calls(Insn(0x85, imm=-0x10)) == "0xffffffff80fffff0"
    assert calls(Insn(0x85, src=2, imm=0x100)) == "bpf_some_helper"  # a kfunc alike
    assert calls(Insn(0x85, src=1, off=5, imm=1)) == "+5#bpf_prog_0123456789abcdef_F"
    assert calls(Insn(0x85, src=1, off=5, imm=0)) == "+5#0xffffffffa0001000"
    interpreted = XlatedCalls((), KernelSymbols(str(table)))
    assert interpreted(Insn(0x85, src=1, off=-3, imm=1)) == "-3"
    hidden = tmp_path / "hidden"  # kptr_restrict: every address reads as 0
    hidden.write_text("0000000000000000 T __bpf_call_base\n0000000000000000 T bpf_some_helper\n")
    assert XlatedCalls((), KernelSymbols(str(hidden)))(Insn(0x85, imm=0x100)) == "0x100"
    missing = XlatedCalls((), KernelSymbols(str(tmp_path / "nothing")))
    assert missing(Insn(0x85, imm=-1)) == "0xffffffffffffffff"
    listing = format_program([Insn(0x85, imm=0x100), Insn(0x95)], style="bpftool",
                             names=Names(calls=calls, xlated=True))
    assert listing == "   0: (85) call bpf_some_helper#256\n   1: (95) exit\n"
