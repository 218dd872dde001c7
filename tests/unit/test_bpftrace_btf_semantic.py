"""Semantic analysis typed from this kernel's BTF: kfunc/kretfunc ``args`` and ``retval``, bitfields.

kfunc programs cannot load on the dev VM (no fentry), but the types come
from /sys/kernel/btf/vmlinux alone, so analysis runs here, and codegen too
(to instructions, without loading) with the provider's fentry check off.
The function prototypes used (vfs_read, ksys_read, do_sys_open, do_filp_open,
schedule) are stable from 6.1 to 6.18.
"""
import pytest

from ebpfpy.attach import fentry
from ebpfpy.bpftrace import ast as A
from ebpfpy.bpftrace.diagnostics import Diagnostic
from ebpfpy.bpftrace.emit import Env as CodegenEnv
from ebpfpy.bpftrace.emit import compile_script
from ebpfpy.bpftrace.parser import parse
from ebpfpy.bpftrace.semantic import Env, analyse
from ebpfpy.bpftrace.types import (
    INT64,
    UINT64,
    BTFResolver,
    LayeredResolver,
    int_type,
    parse_c_structs,
    pointer_to,
    record,
    string_type,
)
from ebpfpy.isa import opcodes

pytestmark = pytest.mark.btf

RESOLVER = BTFResolver()


def check(text, **env):
    return analyse(parse(text), Env(resolver=RESOLVER, **env), source=text)


def value_type(text, name="@", **env):
    return check(text, **env).maps[name].value


def expr_type(text, **env):
    """The type of the first statement's right-hand side (or expression)."""
    stmt = check(text, **env).program.probes[0].body[0]
    return (stmt.expr if isinstance(stmt, (A.ExprStmt, A.Assign)) else stmt).type


def error_text(text, **env):
    with pytest.raises(Diagnostic) as exc:
        check(text, **env)
    return exc.value.format(text)


# -- kfunc args and retval -----------------------------------------------------------

@pytest.mark.parametrize("src,typ", [
    ("kfunc:vfs_read { $x = args->file->f_inode->i_ino; }", UINT64),       # unsigned long
    ("kfunc:vfs_read { $x = args->file; }", pointer_to(record("struct file", 0))),
    ("kfunc:vfs_read { $x = args->count; }", UINT64),                       # size_t
    ("kfunc:vfs_read { $x = args->buf; }", pointer_to(int_type(8, True))),  # char *
    ("kfunc:ksys_read { $x = args->fd; }", int_type(32, False)),            # unsigned int
    ("kfunc:do_sys_open { $x = args->dfd; }", int_type(32, True)),          # int
    ("kfunc:do_sys_open { $x = args->mode; }", int_type(16, False)),        # umode_t
    ("kretfunc:vfs_read { $x = retval; }", INT64),                          # ssize_t
    ("kfunc:vfs_read { $x = retval; }", UINT64),                            # bpftrace: plain u64
    ("kretfunc:do_filp_open { $x = retval->f_inode->i_ino; }", UINT64),
    ("kretfunc:do_filp_open { $x = str(args->pathname->name); }", string_type(64)),
])
def test_kfunc_args_and_retval_are_typed_from_the_prototype(src, typ):
    t = expr_type(src)
    if typ.kind == "pointer" and typ.elems[0].kind == "record":
        assert t.kind == "pointer" and t.elems[0].name == typ.elems[0].name
    else:
        assert t == typ


def test_kfunc_values_in_maps_and_printf():
    res = check('kretfunc:vfs_read { printf("%d %s\\n", args->file->f_inode->i_ino, str(args->buf)); '
                "@r[retval] = count(); @c = sum(args->count); }")
    assert res.maps["@r"].keys == (UINT64,)
    assert str(res.maps["@c"].value) == "sum"


def test_script_structs_keep_kfunc_args():
    """A struct definition layers the resolver; kfunc prototypes still come from BTF."""
    t = value_type("struct X { int a; } kfunc:vfs_read { @ = args->file->f_inode->i_ino; }")
    assert t == UINT64


@pytest.mark.parametrize("src,message", [
    ("kfunc:vfs_read { @ = args->nosuch; }",
     "stdin:1:22-34: ERROR: Can't find function parameter nosuch"),
    ("kretfunc:vfs_read { @ = args->file->nosuch; }",
     "ERROR: Struct/union of type 'struct file' does not contain a field named 'nosuch'"),
    ("kfunc:ebpfpy_no_such_function { @ = args->a; }",
     "stdin:1:1-30: ERROR: kfunc:ebpfpy_no_such_function: no BTF data for ebpfpy_no_such_function"),
    ("kretfunc:ebpfpy_no_such_function { @ = retval; }",
     "ERROR: kfunc:ebpfpy_no_such_function: no BTF data for ebpfpy_no_such_function"),
    ("kfunc:vfs_read, kfunc:do_sys_open { @ = args->count; }",
     "stdin:1:16-34: ERROR: Probe has attach points with mixed arguments"),
    ("kfunc:vfs_read, kretfunc:vfs_read { @ = args->count; }",
     "ERROR: Probe has attach points with mixed arguments"),
    ("kretfunc:schedule { @ = retval; }", "ERROR: schedule returns void: kretfunc has no retval"),
    ("kfunc:vfs_read { @ = args.file; }",
     "ERROR: Can not access field 'file' on type 'struct kfunc:vfs_read_args *'. "
     "Try dereferencing it first, or using '->'"),
])
def test_kfunc_errors(src, message):
    assert message in error_text(src)


def test_kfunc_on_an_untraceable_function():
    """With tracefs consulted (as for kprobes), bpftrace's two reasons, at the attach point."""
    assert 'stdin:1:1-15: ERROR: kfunc:vfs_read: function not traceable (probably it is inlined or ' \
        'marked as "notrace")' in error_text("kfunc:vfs_read { @ = args->count; }",
                                             traceable=lambda: {"vfs_write"})
    assert "ERROR: kfunc:vfs_read: could not read traceable functions from " \
        "/sys/kernel/tracing/available_filter_functions (is tracefs mounted?)" in \
        error_text("kretfunc:vfs_read { @ = retval; }", traceable=lambda: set())
    check("kfunc:vfs_read { @ = args->count; }", traceable=lambda: {"vfs_read"})


def test_kfunc_errors_are_reported_once():
    out = error_text("kfunc:ebpfpy_no_such_function { @ = args->a; @b = args->b; }")
    assert out.count("ERROR") == 1


def test_functions_without_args_resolve_nothing():
    """bpftrace resolves prototypes only for probes that use args/retval."""
    check("kfunc:ebpfpy_no_such_function { @ = count(); }")


def test_wildcards_need_parameters_of_the_same_names():
    same = lambda pattern: ["vfs_read", "vfs_write"]  # noqa: E731
    assert value_type("kfunc:vfs_* { @ = args->file->f_inode->i_ino; }", kfuncs=same) == UINT64
    mixed = lambda pattern: ["vfs_read", "do_sys_open"]  # noqa: E731
    assert "stdin:1:1-12: ERROR: Probe has attach points with mixed arguments" in \
        error_text("kfunc:vfs_* { @ = args->count; }", kfuncs=mixed)


def test_wildcard_match_without_btf_is_a_warning():
    res = check("kfunc:vfs_r* { @ = args->count; }", kfuncs=lambda p: ["vfs_read", "ebpfpy_nope"])
    assert [m.text for m in res.warnings] == ["kfunc:vfs_r*: no BTF data for ebpfpy_nope"]


def test_wildcards_match_btf_functions_by_default():
    assert "vfs_read" in RESOLVER.functions("vfs_rea*")
    # vfs_read, vfs_readlink, ... take different parameters
    assert "mixed arguments" in error_text("kfunc:vfs_rea* { @ = args->count; }")


@pytest.fixture
def no_fentry_check(monkeypatch):
    monkeypatch.setattr(fentry, "require_fentry", lambda: None)


def test_typed_chain_compiles_after_analysis(no_fentry_check):
    src = ("kretfunc:vfs_read /retval > 0/ { @[args->file->f_inode->i_ino, str(args->buf)] = "
           "sum(retval); }")
    res = analyse(parse(src), Env(resolver=RESOLVER), source=src)
    (plan,) = compile_script(res.program, CodegenEnv(source=src)).probes
    assert plan.probe == "kretfunc:vfs_read"
    # retval (slot 4 of vfs_read's u64 array), file (slot 0) and buf (slot 1) from the context
    loads = {i.insn.off for i in plan.builder._items
             if i.insn.op == opcodes.mem(opcodes.Class.LDX, opcodes.Size.DW) and i.insn.src == 6}
    assert loads == {32, 0, 8}


# -- bitfields --------------------------------------------------------------------------

def test_btf_bitfields_have_their_declared_type():
    assert expr_type("BEGIN { $x = ((struct sk_buff *)0)->fclone; }") == int_type(8, False)
    fields = {f.name: f for f in RESOLVER.struct_fields("struct task_struct")}
    assert fields["in_execve"].bitfield[1] == 1
    assert fields["in_execve"].type == int_type(32, False)


def test_script_struct_bitfields_are_packed_like_c():
    layout = parse_c_structs(["struct X { int a:3; int b:4; unsigned int c:3; long l; char q; "
                              "unsigned short s:9; unsigned short t:9; }", "struct Y { char c; int a:3; }"])
    x = {f.name: (f.offset, f.bitfield) for f in layout["struct X"]}
    assert x == {"a": (0, (0, 3)), "b": (0, (3, 4)), "c": (0, (7, 3)), "l": (8, None),
                 "q": (16, None), "s": (18, (0, 9)), "t": (20, (0, 9))}
    resolver = LayeredResolver(layout)
    assert resolver.type_size("struct X") == 24
    assert resolver.type_size("struct Y") == 4  # a shares the int with c
    assert expr_type("struct X { int a:3; int b:4; } BEGIN { $x = ((struct X *)0)->b; }") == \
        int_type(32, True)


def _alu_imms(plan, op) -> list:
    code = opcodes.alu(op)
    return [i.insn.imm for i in plan.builder._items if i.insn.op == code]


def test_bitfield_read_shifts_and_masks():
    """sk_buff.fclone: 2 bits at bit 2 of a byte; perf_branch_entry.cycles: 16 bits spanning 3 bytes."""
    from ebpfpy import btf

    spec = btf.vmlinux()
    for struct, name in (("sk_buff", "fclone"), ("perf_branch_entry", "cycles")):
        m = spec.member(spec.find_struct(struct), name)
        src = f"BEGIN {{ @ = sum(((struct {struct} *)0)->{name}); }}"
        (plan,) = compile_script(parse(src), CodegenEnv(source=src)).probes
        assert m.bit_offset % 8 in _alu_imms(plan, opcodes.AluOp.RSH)
        assert (1 << m.bitfield_size) - 1 in _alu_imms(plan, opcodes.AluOp.AND)
