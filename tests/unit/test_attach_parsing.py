"""Pure parts of ebpfpy.attach: spec parsing, tracepoint formats, USDT notes and arg specs, tables."""
import struct

import pytest

from ebpfpy.attach import ProbeSpecError, kind_of
from ebpfpy.attach.kprobe import parse_spec as parse_kprobe
from ebpfpy.attach.perf_event import (
    HARDWARE_EVENTS,
    SOFTWARE_EVENTS,
    counter_target,
    find_counter,
    timer_target,
)
from ebpfpy.attach.provider import KINDS, provider
from ebpfpy.attach.tracefs import parse_field_decl, parse_format
from ebpfpy.attach.uprobe import parse_location, split_spec
from ebpfpy.attach.usdt import (
    PT_REGS_X86_64,
    REGISTERS,
    emit_extend,
    emit_usdt_arg,
    iter_notes,
    parse_arg,
    parse_args,
    parse_stapsdt_desc,
)
from ebpfpy.sys.perf import parse_cpu_list, parse_format_bits

FORMAT = """name: sched_process_exec
ID: 315
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:char comm[16];\toffset:16;\tsize:16;\tsigned:0;
\tfield:const char * name;\toffset:32;\tsize:8;\tsigned:0;
\tfield:unsigned long args[6];\toffset:40;\tsize:48;\tsigned:0;

print fmt: "filename=%s pid=%d", __get_str(filename), REC->pid
"""


def test_parse_format_fields():
    fmt = parse_format(FORMAT, "sched")
    assert (fmt.category, fmt.name, fmt.id) == ("sched", "sched_process_exec", 315)
    assert [f.name for f in fmt.fields if f.common] == ["common_type", "common_flags", "common_preempt_count",
                                                        "common_pid"]
    assert [f.name for f in fmt.args] == ["filename", "pid", "comm", "name", "args"]
    filename = fmt.field("filename")
    assert filename.data_loc and filename.type == "char[]" and filename.size == 4
    assert filename.decl == "__data_loc char[] filename"
    pid = fmt.field("pid")
    assert (pid.type, pid.offset, pid.size, pid.signed) == ("pid_t", 12, 4, True)
    comm = fmt.field("comm")
    assert (comm.type, comm.array_len, comm.element_size, comm.decl) == ("char", 16, 1, "char comm[16]")
    name = fmt.field("name")
    assert name.is_pointer and name.type == "const char *" and not name.signed
    assert fmt.field("args").element_size == 8
    assert fmt.print_fmt.startswith('"filename=%s')
    with pytest.raises(KeyError):
        fmt.field("nope")


@pytest.mark.parametrize("decl,expected", [
    ("int dfd", ("int", "dfd", None)),
    ("const char * filename", ("const char *", "filename", None)),
    ("u8 saddr[4]", ("u8", "saddr", 4)),
    ("unsigned long long x", ("unsigned long long", "x", None)),
    ("char name[TASK_COMM_LEN]", ("char", "name", None)),
])
def test_parse_field_decl(decl, expected):
    assert parse_field_decl(decl)[:3] == expected


@pytest.mark.parametrize("spec,kind,size,signed,extra", [
    ("-4@-20(%rbp)", "mem", 4, True, {"reg": "rbp", "offset": -20}),
    ("8@%rdi", "reg", 8, False, {"reg": "rdi"}),
    ("-2@%di", "reg", 2, True, {"reg": "di"}),
    ("4@$5", "const", 4, False, {"value": 5}),
    ("-4@$-7", "const", 4, True, {"value": -7}),
    ("8@(%rax,%rdx,8)", "mem", 8, False, {"reg": "rax", "index": "rdx", "scale": 8, "offset": 0}),
    ("-8@(%rsp,%rdi,8)", "mem", 8, True, {"reg": "rsp", "index": "rdi", "scale": 8}),
    ("1@0x10(%r12)", "mem", 1, False, {"reg": "r12", "offset": 16}),
    ("%rsi", "reg", 8, False, {"reg": "rsi"}),
])
def test_parse_usdt_arg(spec, kind, size, signed, extra):
    arg = parse_arg(spec)
    assert (arg.kind, arg.size, arg.signed) == (kind, size, signed)
    for key, value in extra.items():
        assert getattr(arg, key) == value


@pytest.mark.parametrize("bad", ["3@%rdi", "8@%xyz", "8@var(%rip)", "4@$abc", "8@foo", "8@(%rax,%rbx,3)"])
def test_parse_usdt_arg_rejects(bad):
    with pytest.raises(ProbeSpecError):
        parse_arg(bad)


def test_parse_args_splits_on_spaces():
    assert [a.text for a in parse_args("-4@%eax -2@%di -8@%rcx")] == ["-4@%eax", "-2@%di", "-8@%rcx"]
    assert parse_args("") == ()


def test_register_table_matches_pt_regs():
    assert REGISTERS["rdi"] == (112, 8) and REGISTERS["edi"] == (112, 4) and REGISTERS["dil"] == (112, 1)
    assert REGISTERS["r8d"] == (PT_REGS_X86_64["r8"], 4)
    assert REGISTERS["ah"] == (PT_REGS_X86_64["ax"] + 1, 1)
    assert REGISTERS["rip"] == (128, 8)
    assert PT_REGS_X86_64["sp"] == 152 and PT_REGS_X86_64["ax"] == 80


def _note(owner: bytes, ntype: int, desc: bytes) -> bytes:
    def pad(b):
        return b + b"\0" * (-len(b) % 4)

    return struct.pack("<III", len(owner) + 1, len(desc), ntype) + pad(owner + b"\0") + pad(desc)


def test_iter_notes_and_stapsdt_desc():
    desc = struct.pack("<QQQ", 0x1234, 0x2000, 0x4020) + b"prov\0name\0-4@%eax 8@$1\0"
    data = _note(b"GNU", 1, b"abcd") + _note(b"stapsdt", 3, desc)
    notes = list(iter_notes(data))
    assert [(o, t) for o, t, _ in notes] == [(b"GNU", 1), (b"stapsdt", 3)]
    assert parse_stapsdt_desc(notes[1][2]) == (0x1234, 0x2000, 0x4020, "prov", "name", "-4@%eax 8@$1")


class RecordingBuilder:
    """Records builder calls: enough to check the shape of emitted code without a kernel."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args))


def test_emit_register_arg_sign_extends():
    from ebpfpy.isa.builder import R6, R7

    b = RecordingBuilder()
    emit_usdt_arg(b, parse_arg("-2@%di"), R7, R6)
    assert b.calls == [("ldx", 8, R7, R6, 112), ("lsh", R7, 48), ("arsh", R7, 48)]


def test_emit_memory_arg_reads_user_memory():
    from ebpfpy.isa.builder import FP, R1, R2, R3, R6, R7

    b = RecordingBuilder()
    emit_usdt_arg(b, parse_arg("4@8(%rax,%rdx,4)"), R7, R6, -8)
    assert b.calls == [
        ("ldx", 8, R3, R6, 80), ("ldx", 8, R2, R6, 96), ("lsh", R2, 2), ("add", R3, R2), ("add", R3, 8),
        ("mov", R1, FP), ("add", R1, -8), ("mov", R2, 4), ("call", "probe_read_user"),
        ("ldx", 4, R7, FP, -8), ("mov32", R7, R7),
    ]


def test_emit_memory_arg_needs_callee_saved_ctx():
    from ebpfpy.isa.builder import R1, R7

    with pytest.raises(ValueError):
        emit_usdt_arg(RecordingBuilder(), parse_arg("8@(%rax)"), R7, R1)


def test_emit_const_and_extend_builds():
    from ebpfpy.isa.builder import R6, R7, Builder

    b = Builder()
    emit_usdt_arg(b, parse_arg("8@$0x123456789"), R7, R6)
    emit_usdt_arg(b, parse_arg("-1@%al"), R7, R6)
    emit_extend(b, R7, 1, False)
    b.exit()
    assert len(b.build()) >= 5


def test_kind_table_and_aliases():
    aliases = {a: k.name for k in KINDS for a in k.aliases}
    assert aliases == {"t": "tracepoint", "rt": "rawtracepoint", "k": "kprobe", "kr": "kretprobe", "u": "uprobe",
                       "ur": "uretprobe", "U": "usdt", "p": "profile", "i": "interval", "s": "software",
                       "h": "hardware", "f": "kfunc", "fr": "kretfunc",
                       "w": "watchpoint", "aw": "asyncwatchpoint", "it": "iter"}
    assert kind_of("BEGIN").name == "BEGIN" and kind_of("END").module == "special"
    with pytest.raises(ProbeSpecError, match="unknown probe type"):
        kind_of("nosuchkind")
    # kinds bpftrace parses that no provider implements yet: known, and refused by name
    assert kind_of("w").name == "watchpoint" and not kind_of("w").implemented
    with pytest.raises(ProbeSpecError, match="probe type 'watchpoint' is not supported yet"):
        provider("w")
    assert provider("it").kind == "iter"  # BPF iterators (ebpfpy.attach.iter)


def test_uprobe_spec_parsing():
    assert parse_location("malloc") == ("malloc", 0, None)
    assert parse_location("work+0x10") == ("work", 16, None)
    assert parse_location("0x4005d0") == ("", 0, 0x4005d0)
    assert split_spec("/bin/bash:readline") == ("/bin/bash", "readline")
    assert split_spec('"/odd:path":fn') == ("/odd:path", "fn")
    for bad in ("nobinary", ":fn", "/bin/bash:"):
        with pytest.raises(ProbeSpecError):
            split_spec(bad)
    with pytest.raises(ProbeSpecError):
        parse_location("work+zz")


def test_kprobe_spec_parsing():
    assert parse_kprobe("do_sys_openat2").symbol == "do_sys_openat2"
    t = parse_kprobe("vfs_read+8")
    assert (t.symbol, t.offset, t.probe) == ("vfs_read", 8, "kprobe:vfs_read+8")
    assert parse_kprobe("0xffffffff81000000").offset == 0xFFFFFFFF81000000
    assert parse_kprobe("vfs_read", retprobe=True).probe == "kretprobe:vfs_read"
    with pytest.raises(ProbeSpecError):
        parse_kprobe("vfs_read+8", retprobe=True)


def test_timer_and_counter_targets():
    t = timer_target("profile", "hz:99", (0, 1))
    assert (t.sample_freq, t.sample_period, t.cpus, t.config) == (99, 0, (0, 1), 0)
    assert timer_target("interval", "ms:250", (0,)).sample_period == 250_000_000
    assert timer_target("profile", "us:100", (0,)).sample_period == 100_000
    for bad in ("hz", "min:1", "hz:0", "hz:x", "s:1:2"):
        with pytest.raises(ProbeSpecError):
            timer_target("profile", bad, (0,))
    c = counter_target("software", "cs", (0,))
    assert (c.config, c.sample_period, c.ptype) == (3, 1000, 1)
    h = counter_target("hardware", "cycles:5000", (0,))
    assert (h.config, h.sample_period, h.ptype) == (0, 5000, 0)
    assert find_counter("hardware", "branches").name == "branch-instructions"
    assert len({e.config for e in SOFTWARE_EVENTS}) == len(SOFTWARE_EVENTS)
    assert len({e.config for e in HARDWARE_EVENTS}) == len(HARDWARE_EVENTS)


def test_small_parsers():
    assert parse_format_bits("config:0") == ("config", 0, 0)
    assert parse_format_bits("config:32-63") == ("config", 32, 63)
    assert parse_cpu_list("0-3,6,8-9\n") == [0, 1, 2, 3, 6, 8, 9]
    assert parse_cpu_list("0") == [0]
