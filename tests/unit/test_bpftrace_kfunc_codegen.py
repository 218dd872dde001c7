"""The compiler's kfunc/kretfunc code, checked without loading (any kernel with vmlinux BTF).

Loading needs fentry support, which the dev VM lacks; the kernel tests
(`tests/kernel/test_*kfunc*`, `test_attach_fentry.py`) run these programs
in the qemu guest. Here the provider's support check is switched off so
that compilation proceeds, and the emitted context loads are inspected:
the kernel's verifier accepts only 8-byte loads at 8-aligned offsets below
8 * nparams (plus the return value's slot in fexit).
"""
import pytest

from ebpfpy.attach import fentry
from ebpfpy.bpftrace.emit import CompileError, Env, compile_script
from ebpfpy.bpftrace.parser import parse
from ebpfpy.isa import opcodes
from ebpfpy.sys.consts import AttachType, ProgType

pytestmark = pytest.mark.btf

@pytest.fixture(autouse=True)
def compile_without_fentry(monkeypatch):
    monkeypatch.setattr(fentry, "require_fentry", lambda: None)


def compile_src(src: str):
    return compile_script(parse(src), Env(source=src))


def ctx_loads(plan) -> list[tuple[int, int]]:
    """(size code, offset) of every load from the context register r6."""
    out = []
    for item in plan.builder._items:
        insn = item.insn
        if insn.op & 0x07 == 0x01 and insn.op & 0xE0 == 0x60 and insn.src == 6:  # BPF_LDX | BPF_MEM
            out.append((insn.op & 0x18, insn.off))
    return out


def vmlinux_func_id(name):
    from ebpfpy import btf

    return btf.vmlinux().find(name, btf.Kind.FUNC)


def test_kfunc_plan_is_loaded_for_the_function():
    script = compile_src("kfunc:vfs_read { @c = sum(args->count); }")
    (plan,) = script.probes
    assert plan.probe == "kfunc:vfs_read"
    assert plan.prog_type == ProgType.TRACING
    assert plan.expected_attach_type == AttachType.TRACE_FENTRY
    assert plan.attach_btf_id == vmlinux_func_id("vfs_read")
    assert ctx_loads(plan) == [(0x18, 16)]  # count: the third u64


def test_kretfunc_retval_follows_the_arguments():
    (plan,) = compile_src("fr:vfs_read { @r = sum(retval); }").probes
    assert plan.probe == "kretfunc:vfs_read"
    assert plan.expected_attach_type == AttachType.TRACE_FEXIT
    assert ctx_loads(plan) == [(0x18, 32)]


def _shifts(plan) -> set:
    ops = {(i.insn.op, i.insn.imm) for i in plan.builder._items}
    return {name for name, op in (("lsh", opcodes.AluOp.LSH), ("rsh", opcodes.AluOp.RSH),
                                  ("arsh", opcodes.AluOp.ARSH)) if (opcodes.alu(op), 32) in ops}


def test_narrow_arguments_are_extended_per_btf_signedness():
    # ksys_read(unsigned int fd, ...): 8-byte load, then zero-extension of the low 32 bits
    (plan,) = compile_src("kfunc:ksys_read { @ = sum(args->fd); }").probes
    assert ctx_loads(plan) == [(0x18, 0)]
    assert _shifts(plan) == {"lsh", "rsh"}
    # do_sys_open(int dfd, ...): sign extension
    (plan,) = compile_src("kfunc:do_sys_open { @ = sum(args->dfd); }").probes
    assert ctx_loads(plan) == [(0x18, 0)]
    assert _shifts(plan) == {"lsh", "arsh"}


def test_struct_pointer_argument_reads_members():
    (plan,) = compile_src("kfunc:vfs_read { @[args->file->f_inode->i_rdev] = count(); }").probes
    assert ctx_loads(plan) == [(0x18, 0)]  # the pointer; members go through probe_read_kernel


def test_func_is_the_function_name_and_wildcards_expand():
    script = compile_src("kfunc:vfs_rea* { @[func] = count(); }")
    names = {p.probe for p in script.probes}
    assert "kfunc:vfs_read" in names
    assert len({p.attach_btf_id for p in script.probes}) == len(script.probes)


def test_errors():
    with pytest.raises(CompileError, match="Can't find function parameter nosuch"):
        compile_src("kfunc:vfs_read { @ = args->nosuch; }")
    with pytest.raises(CompileError, match="The arg0 builtin can only be used with"):
        compile_src("kfunc:vfs_read { @ = arg0; }")
    with pytest.raises(CompileError, match="kernel function not found in BTF: ebpfpy_nope"):
        compile_src("kfunc:ebpfpy_nope { @ = count(); }")
