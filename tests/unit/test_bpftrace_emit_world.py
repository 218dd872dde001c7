"""Codegen compiles for the world it is handed (``emit/world.py``), not for the machine it runs on.

Each test gives the compiler a world of its own (CPU list, kernel symbols, ELF data
symbols, probe providers with made-up targets, a BTF file) and checks the instructions,
without root and without touching tracefs, kallsyms or the kernel.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from ebpfpy.attach.provider import ProbeContext
from ebpfpy.bpftrace.compiled import EVENTS_MAP
from ebpfpy.bpftrace.emit import CompileError, Env, compile_script
from ebpfpy.bpftrace.emit.world import SystemWorld
from ebpfpy.bpftrace.parser import parse
from ebpfpy.sys.consts import ProgType


@dataclass(frozen=True)
class FakeTarget:
    probe: str


class FakeProvider:
    """A provider whose targets are the names it is given, each with a pt_regs context."""

    def __init__(self, kind: str):
        self.kind = kind

    def expand(self, rest: str, pid: int = -1) -> list:
        return [FakeTarget(f"{self.kind}:{rest}")]

    def context(self, target) -> ProbeContext:
        return ProbeContext(ProgType.KPROBE, "pt_regs", retval=self.kind.endswith("retprobe"),
                            space="user" if self.kind.startswith("u") else "kernel")


class FakeWorld(SystemWorld):
    """The system's answers replaced by the test's; anything not replaced is the real one
    (BEGIN and END come from the real special provider, which reads nothing)."""

    def __init__(self, cpus=(0, 1), kernel=None, data=None, btf_path=None):
        self.cpus, self.kernel, self.data, self.btf_path = list(cpus), kernel or {}, data or {}, btf_path

    def possible_cpus(self):
        return self.cpus

    def kernel_symbol(self, name):
        return self.kernel.get(name)

    def data_symbol(self, path, name):
        return self.data.get((path, name))

    def btf(self):
        from ebpfpy.btf import BTF

        if self.btf_path is None:
            raise FileNotFoundError("no BTF in this world")
        return BTF.from_file(self.btf_path)

    def provider(self, spec):
        kind, _, rest = spec.partition(":")
        if kind in ("uprobe", "kprobe"):
            return FakeProvider(kind), rest
        return super().provider(spec)


def compile_in(world, src: str):
    return compile_script(parse(src), Env(source=src, world=world))


def insns(script, index: int = 0):
    return [item.insn for item in script.probes[index].builder._items]


def test_event_buffer_has_a_slot_per_cpu_of_the_world():
    script = compile_in(FakeWorld(cpus=range(13)), 'BEGIN { printf("x\\n"); }')
    assert script.maps[EVENTS_MAP].max_entries == 13


def test_kaddr_is_the_worlds_symbol():
    script = compile_in(FakeWorld(kernel={"some_fn": 0xFFFFFFFF81234568}), 'BEGIN { @a = kaddr("some_fn"); }')
    # a kernel address sign-extends from 32 bits: one mov (0xb7) where it fits, else an ld_imm64 (0x18)
    assert any(i.op in (0x18, 0xB7) and i.imm & (1 << 64) - 1 == 0xFFFFFFFF81234568 for i in insns(script))
    with pytest.raises(CompileError, match="Failed to resolve kernel symbol: other_fn"):
        compile_in(FakeWorld(), 'BEGIN { @a = kaddr("other_fn"); }')


def test_uaddr_reads_the_target_binary_in_the_world():
    world = FakeWorld(data={("/opt/app", "counter"): 0x4010})
    script = compile_in(world, 'uprobe:/opt/app:main { @a = uaddr("counter"); }')
    assert script.probes[0].probe == "uprobe:/opt/app:main"
    assert any(i.op == 0xB7 and i.imm == 0x4010 for i in insns(script))  # mov r0, 0x4010
    with pytest.raises(CompileError, match="Could not resolve symbol: /opt/app:missing"):
        compile_in(world, 'uprobe:/opt/app:main { @a = uaddr("missing"); }')


def test_btf_comes_from_the_world(tmp_path):
    """curtask->pid reads the member at the offset the world's BTF gives (the running
    kernel's file, read as data: no root)."""
    from ebpfpy.btf import BTF

    path = "/sys/kernel/btf/vmlinux"
    spec = BTF.from_file(path)
    offset = spec.member(spec.find_struct("task_struct"), "pid").bit_offset // 8
    script = compile_in(FakeWorld(btf_path=path), "BEGIN { @p = curtask->pid; }")
    assert any(i.op == 0x07 and i.dst == 0 and i.imm == offset for i in insns(script))  # r0 += offset
    with pytest.raises((CompileError, FileNotFoundError)):
        compile_in(FakeWorld(btf_path=None), "BEGIN { @p = curtask->pid; }")
