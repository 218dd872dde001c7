"""``ebpfpy prog`` and ``ebpfpy map``: list and dump what is loaded in the kernel.

The output follows ``bpftool prog list`` / ``bpftool map list`` / ``bpftool
map dump`` closely, so the two can be read side by side. Map dumps are hex
only for now; printing values typed through the map's BTF is a later step.
"""
from __future__ import annotations

import errno as E
import time
from collections.abc import Callable, Iterator

import click

from ebpfpy.sys import bpf
from ebpfpy.sys.consts import MapType, ProgType, type_name
from ebpfpy.sys.errors import BPFError
from ebpfpy.sys.fd import FD


def _fdinfo(fd: FD) -> dict[str, str]:
    """/proc/self/fdinfo of a bpf fd: memlock, owner type, ... as bpftool shows them."""
    out = {}
    try:
        with open(f"/proc/self/fdinfo/{fd.fd}") as f:
            for line in f:
                key, _, value = line.partition(":")
                out[key.strip()] = value.strip()
    except OSError:
        pass
    return out


def _open_all(next_id: Callable, get_fd: Callable) -> Iterator[tuple[int, FD]]:
    """(id, fd) for every object of one kind; objects that vanish meanwhile are skipped."""
    for obj_id in bpf.iter_ids(next_id):
        try:
            fd = get_fd(obj_id)
        except BPFError as exc:
            if exc.errno == E.ENOENT:
                continue
            raise
        with fd:
            yield obj_id, fd


def _open_one(obj_id: int, get_fd: Callable, what: str) -> FD:
    try:
        return get_fd(obj_id)
    except BPFError as exc:
        why = f"{exc.strerror} ({exc.detail})" if exc.detail else exc.strerror
        raise click.ClickException(f"can't get {what} by id ({obj_id}): {why}") from None


def _loaded_at(load_time_ns: int) -> str:
    """Boot-time nanoseconds -> local wall clock, in bpftool's format."""
    wall = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME) + load_time_ns / 1e9
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(wall))


def format_prog(info: bpf.ProgInfo, fdinfo: dict | None = None) -> str:
    """The lines ``bpftool prog list`` prints for one program."""
    head = f"{info.id}: {type_name(ProgType, info.type)}  "
    if info.name:
        head += f"name {info.name}  "
    head += f"tag {info.tag_hex}"
    if info.gpl_compatible:
        head += "  gpl"
    if info.run_cnt or info.run_time_ns:
        head += f" run_time_ns {info.run_time_ns} run_cnt {info.run_cnt}"
    lines = [head, f"\tloaded_at {_loaded_at(info.load_time)}  uid {info.created_by_uid}"]
    sizes = f"\txlated {info.xlated_len}B  "
    sizes += f"jited {info.jited_len}B" if info.jited_len else "not jited"
    if fdinfo and "memlock" in fdinfo:
        sizes += f"  memlock {fdinfo['memlock']}B"
    if info.map_ids:
        sizes += "  map_ids " + ",".join(str(i) for i in info.map_ids)
    lines.append(sizes)
    if info.btf_id:
        lines.append(f"\tbtf_id {info.btf_id}")
    return "\n".join(lines)


def format_map(info: bpf.MapInfo, fdinfo: dict | None = None) -> str:
    """The lines ``bpftool map list`` prints for one map."""
    head = f"{info.id}: {type_name(MapType, info.type)}  "
    if info.name:
        head += f"name {info.name}  "
    head += f"flags {info.flags:#x}"
    body = f"\tkey {info.key_size}B  value {info.value_size}B  max_entries {info.max_entries}"
    if fdinfo and "memlock" in fdinfo:
        body += f"  memlock {fdinfo['memlock']}B"
    lines = [head, body]
    if info.btf_id:
        lines.append(f"\tbtf_id {info.btf_id}")
    return "\n".join(lines)


def hex_bytes(data: bytes) -> str:
    """bpftool's hex: space-separated bytes, two spaces after every 8th, a new line every 16."""
    out = []
    for i, byte in enumerate(data):
        if i:
            out.append("\n" if i % 16 == 0 else "  " if i % 8 == 0 else " ")
        out.append(f"{byte:02x}")
    return "".join(out)


def format_entry(key: bytes, value: bytes, value_size: int, ncpus: int = 0) -> str:
    """One ``bpftool map dump`` entry, laid out by bpftool's rules (one line when short)."""
    if ncpus:
        slot = (value_size + 7) & ~7
        sep = "\n" if value_size > 16 else " "
        lines = ["key:", hex_bytes(key)]
        for cpu in range(ncpus):
            lines.append(f"value (CPU {cpu:02d}):{sep}{hex_bytes(value[cpu * slot:cpu * slot + value_size])}")
        return "\n".join(lines)
    break_names = len(key) > 16 or len(value) > 16
    single_line = len(key) + len(value) <= 24 and not break_names
    name_sep = "\n" if break_names else " "
    return (f"key:{name_sep}{hex_bytes(key)}{'  ' if single_line else chr(10)}"
            f"value:{name_sep}{hex_bytes(value)}")


# Object ids are the kernel's u32: a larger number is a bad command line (click's usage error),
# not something to pack into bpf_attr.
OBJECT_ID = click.IntRange(0, 0xFFFF_FFFF)


# --------------------------------------------------------------------------
# ebpfpy prog


@click.group()
def prog():
    """Inspect loaded BPF programs (like `bpftool prog`)."""


@prog.command("list")
def prog_list():
    """List every loaded program."""
    for _, fd in _open_all(bpf.prog_get_next_id, bpf.prog_get_fd_by_id):
        click.echo(format_prog(bpf.prog_info(fd, xlated=False), _fdinfo(fd)))


@prog.command("show")
@click.argument("prog_id", type=OBJECT_ID)
def prog_show(prog_id):
    """Show one program by id."""
    with _open_one(prog_id, bpf.prog_get_fd_by_id, "prog") as fd:
        click.echo(format_prog(bpf.prog_info(fd, xlated=False), _fdinfo(fd)))


@prog.command("dump")
@click.argument("prog_id", type=OBJECT_ID)
@click.option("--style", default="bpftool", show_default=True,
              help="disassembler style (ebpfpy.isa.disasm.STYLES: bpftool, llvm, ...)")
@click.option("--raw", is_flag=True, help="also print the instruction bytes")
def prog_dump(prog_id, style, raw):
    """Disassemble the kernel's translated (xlated) instructions of a program."""
    from ebpfpy.isa.disasm import Names, format_program

    with _open_one(prog_id, bpf.prog_get_fd_by_id, "prog") as fd:
        info = bpf.prog_info(fd)
        calls = XlatedCalls(jited_ksyms(fd))
    if not info.xlated:
        raise click.ClickException("the kernel returned no instructions (kernel.bpf restrictions?)")
    names = Names(calls=calls, xlated=True)
    click.echo(format_program(decode_xlated(info.xlated), raw=raw, style=style, names=names), nl=False)


def decode_xlated(data: bytes) -> list:
    """`decode` for the kernel's translated code (``bpf_prog_info.xlated_prog_insns``), which
    has one form `decode` refuses: a local call there keeps its pc offset in ``off`` and the
    subprogram's index in ``imm`` (what ``Names(xlated=True)`` prints)."""
    import dataclasses

    from ebpfpy.isa import opcodes as oc
    from ebpfpy.isa.insn import decode

    call, local = oc.Class.JMP | oc.JmpOp.CALL, oc.CallKind.LOCAL
    data = bytearray(data)
    offsets = {}
    for slot in range(len(data) // 8):
        at = slot * 8
        if data[at] == call and data[at + 1] >> 4 == local and data[at + 2 : at + 4] != b"\0\0":
            offsets[slot] = int.from_bytes(data[at + 2 : at + 4], "little", signed=True)
            data[at + 2 : at + 4] = b"\0\0"
    insns = decode(bytes(data))  # everything else is checked as usual
    if offsets:
        slot = 0
        for i, insn in enumerate(insns):
            if slot in offsets:
                insns[i] = dataclasses.replace(insn, off=offsets[slot])
            slot += insn.size
    return insns


def jited_ksyms(fd: FD) -> tuple[int, ...]:
    """The address of each JITed function of a program (``bpf_prog_info.jited_ksyms``: the
    main program, then its subprograms in order), as bpftool asks for them; () if not JITed."""
    import struct

    from ebpfpy.sys.bpf_call import AttrMemory
    from ebpfpy.sys.layouts import PROG_INFO

    count = PROG_INFO.unpack(bpf.obj_get_info_by_fd(fd, PROG_INFO.min_size), "nr_jited_ksyms")
    if not count:
        return ()
    mem = AttrMemory()
    addr, buf = mem.out(8 * count)
    request, _ = PROG_INFO.pack(nr_jited_ksyms=count, jited_ksyms=addr)
    reply = bpf.obj_get_info_by_fd(fd, bytes(request))
    got = min(count, PROG_INFO.unpack(reply, "nr_jited_ksyms"))
    return struct.unpack(f"<{got}Q", mem.read(buf, 8 * got))


class XlatedCalls:
    """Callee names in xlated code, found as bpftool finds them (its ``print_call``).

    The verifier rewrites a helper or kfunc call's ``imm`` to the function's address less
    ``__bpf_call_base``; bpftool adds the base back and names the address by the
    /proc/kallsyms symbol that starts there (``bpf_get_current_comm``,
    ``__htab_map_lookup_elem``...), or prints the address when none does. A local call's
    ``imm`` is the subprogram's index in ``jited_ksyms``; it prints as its pc offset (``off``)
    and, when the program is JITed, ``#`` and the subprogram's symbol. The helper table
    names small ids first, as the kernel's printer does, so this is asked only for the rest.
    """

    def __init__(self, jited: tuple[int, ...] = (), ksyms=None):
        from ebpfpy.events.symbols import KernelSymbols

        self.jited = jited
        # A table of its own: kallsyms gains a symbol for every program loaded since.
        self.ksyms = ksyms if ksyms is not None else KernelSymbols()
        self._base: int | None = None

    @property
    def base(self) -> int:
        """The address of ``__bpf_call_base``; 0 when kallsyms hides it (as for bpftool)."""
        if self._base is None:
            try:
                self._base = self.ksyms.kaddr("__bpf_call_base")
            except (KeyError, OSError):
                self._base = 0
        return self._base

    def name_at(self, address: int) -> str | None:
        try:
            return self.ksyms.name_at(address)
        except OSError:
            return None

    def __call__(self, insn) -> str:
        from ebpfpy.isa.opcodes import CallKind

        address = (self.base + insn.imm) & 0xFFFF_FFFF_FFFF_FFFF  # unsigned long + s32
        if insn.src != CallKind.LOCAL:
            return self.name_at(address) or f"0x{address:x}"
        if not self.jited:
            return f"{insn.off:+d}"  # interpreted: no symbols for subprograms
        index = insn.imm & 0xFFFF_FFFF
        if index < len(self.jited):
            address = self.jited[index]
        return f"{insn.off:+d}#{self.name_at(address) or f'0x{address:x}'}"


# --------------------------------------------------------------------------
# ebpfpy map


@click.group("map")
def map_():
    """Inspect BPF maps (like `bpftool map`)."""


@map_.command("list")
def map_list():
    """List every map."""
    for _, fd in _open_all(bpf.map_get_next_id, bpf.map_get_fd_by_id):
        click.echo(format_map(bpf.map_info(fd), _fdinfo(fd)))


@map_.command("show")
@click.argument("map_id", type=OBJECT_ID)
def map_show(map_id):
    """Show one map by id."""
    with _open_one(map_id, bpf.map_get_fd_by_id, "map") as fd:
        click.echo(format_map(bpf.map_info(fd), _fdinfo(fd)))


@map_.command("dump")
@click.argument("map_id", type=OBJECT_ID)
def map_dump(map_id):
    """Dump keys and values in hex (typed output from BTF: not yet)."""
    from ebpfpy.maps import Map

    m = Map.from_fd(_open_one(map_id, bpf.map_get_fd_by_id, "map"))
    with m:
        if not m.props.dict_api:
            raise click.ClickException(f"{m.type_name} maps cannot be dumped")
        try:
            items = m.raw_items()
        except BPFError as exc:
            raise click.ClickException(f"can't dump map: {exc}") from None
        for key, value in items:
            click.echo(format_entry(key, value, m.value_size, m.ncpus if m.props.percpu else 0))
        click.echo(f"Found {len(items)} element{'s' if len(items) != 1 else ''}")
