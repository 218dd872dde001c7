"""``ebpfpy vm``: run BPF programs in the emulator (``ebpfpy.vm``), no kernel and no root needed.

``run`` prints r0 and the maps, ``step`` every executed instruction with the registers it
changed and the source line it came from, ``plugin`` speaks bpf_conformance's plugin protocol
(program as hex on stdin or ``--program``, memory as hex in the first argument, r0 in hex out).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import click

M64 = (1 << 64) - 1


def _fail(message: str) -> None:
    click.echo(f"ERROR: {message}", err=True)
    sys.exit(1)


def _hex(text: str | None, what: str) -> bytes | None:
    if text is None:
        return None
    digits = "".join(text.split())
    if digits[:2].lower() == "0x":
        digits = digits[2:]
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise click.BadParameter(f"{what} must be hex bytes, not {text!r}") from None


def _map_spec(text: str) -> tuple[str, str, int, int, int]:
    name, _, rest = text.rpartition("=")
    parts = rest.split(":")
    try:
        if len(parts) != 4:
            raise ValueError
        kind, key, value, entries = parts[0], int(parts[1], 0), int(parts[2], 0), int(parts[3], 0)
    except ValueError:
        raise click.BadParameter(f"expected [NAME=]TYPE:KEY_SIZE:VALUE_SIZE:MAX_ENTRIES, got {text!r}") from None
    return name, kind, key, value, entries


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as f:
        return f.read()


def _setup(file: str, section: str | None, map_specs: tuple[str, ...], cpus: int):
    """A VM with the program of FILE loaded: (vm, program, object or None)."""
    from ebpfpy.vm import VM

    vm = VM(ncpus=cpus)
    data = _read(file)
    if data[:4] == b"\x7fELF":
        if file == "-":
            raise click.UsageError("reading an ELF object from stdin is not supported")
        if map_specs:
            raise click.UsageError("--map is for assembly and raw programs; an object declares its own maps")
        obj = vm.load_object(file)
        return vm, obj.program(section), obj
    if section:
        raise click.UsageError("--section only applies to object files")
    for spec in map_specs:
        name, kind, key, value, entries = _map_spec(spec)
        vm.create_map(kind, key, value, entries, name=name)
    try:
        program: str | bytes = data.decode()
    except UnicodeDecodeError:
        program = data  # raw instruction bytes
    name = "" if file == "-" else os.path.basename(file)
    return vm, vm.load(program, filename=name), None


def _common(fn: Callable) -> Callable:
    for option in reversed([
        click.argument("file", type=click.Path(allow_dash=True, dir_okay=False)),
        click.option("--section", "-j", default=None, help="Program of an object file, by section or function name."),
        click.option("--mem", default=None, metavar="HEX",
                     help="Memory image at MEM_BASE; without --ctx, r1 points to it and r2 is its length."),
        click.option("--ctx", default=None, metavar="HEX", help="Context bytes; r1 points to them."),
        click.option("--packet", default=None, metavar="HEX", help="Packet bytes (for LD_ABS/LD_IND)."),
        click.option("--map", "map_specs", multiple=True, metavar="[NAME=]TYPE:KEY:VALUE:MAX",
                     help="Create a map for an assembly program (fds count from 1, in order)."),
        click.option("--cpus", type=click.IntRange(1, 1024), default=1, show_default=True,
                     help="CPUs of per-CPU maps."),
    ]):
        fn = option(fn)
    return fn


def _guarded(body: Callable[[], None]) -> None:
    """Run ``body``; every error becomes one line on stderr and exit status 1."""
    from ebpfpy.isa.errors import ISAError
    from ebpfpy.vm import VMError

    try:
        body()
    except (click.ClickException, click.exceptions.Exit, SystemExit):
        raise
    except BrokenPipeError:  # `ebpfpy vm step ... | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except VMError as e:
        _fail(str(e))
    except ISAError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"{e.filename or ''}{': ' if e.filename else ''}{e.strerror or e}")
    except Exception as e:  # anything else is our bug, but still no traceback
        _fail(f"internal error: {type(e).__name__}: {e}")


def _fault_context(vm, error) -> str:
    """The instruction (and source line) a VMError points at, for the error message."""
    from ebpfpy.isa.disasm import format_insn

    if error.index is None:
        return ""
    prog = next((p for p in vm.programs if (p.name or None) == error.program), None)
    if prog is None and len(vm.programs) == 1:
        prog = vm.programs[0]
    insn = prog.insn_at(error.index) if prog else None
    if insn is None:
        return ""
    text = f"\n    {error.index}: {format_insn(insn)}"
    line = prog.lines.get(error.index)
    return text + (f"    ; {line}" if line else "")


def _execute(file, section, mem, ctx, packet, map_specs, cpus, trace=None):
    from ebpfpy.vm import VMError

    vm, prog, obj = _setup(file, section, map_specs, cpus)
    try:
        r0 = vm.run(prog, _hex(ctx, "--ctx"), mem=_hex(mem, "--mem"), packet=_hex(packet, "--packet"),
                    trace=trace and trace(vm))
    except VMError as e:
        for line in vm.trace_lines:
            click.echo(f"trace_printk: {line}")
        _fail(str(e) + _fault_context(vm, e))
    for line in vm.trace_lines:
        click.echo(f"trace_printk: {line}")
    signed = f", {r0 - (1 << 64)}" if r0 >> 63 else ""
    click.echo(f"r0 = {r0} ({r0:#x}{signed})")
    _print_maps(vm, obj)


@click.group()
def vm() -> None:
    """Run BPF programs in an emulator: no kernel, no root."""


@vm.command()
@_common
def run(file, section, mem, ctx, packet, map_specs, cpus):
    """Run FILE (assembly .s, raw bytes, or a clang-built .o) once; print r0 and the maps."""
    _guarded(lambda: _execute(file, section, mem, ctx, packet, map_specs, cpus))


@vm.command()
@_common
@click.option("--limit", type=click.IntRange(min=0), default=100_000, show_default=True,
              help="Stop after this many instructions.")
def step(file, section, mem, ctx, packet, map_specs, cpus, limit):
    """Run FILE printing each instruction, the registers and memory it changed, and its source line."""
    _guarded(lambda: _execute(file, section, mem, ctx, packet, map_specs, cpus, trace=_stepper(limit)))


def _stepper(limit: int):
    def make(vm):
        from ebpfpy.isa import opcodes as oc
        from ebpfpy.isa.disasm import format_insn
        from ebpfpy.isa.helpers import HELPERS_BY_ID
        from ebpfpy.vm import VMError

        state = {"count": 0, "line": None, "entry": None}

        def show(step) -> None:
            state["count"] += 1
            if state["count"] > limit:
                raise VMError(f"stopped after {limit} instructions (--limit)")
            insn, line = step.insn, step.line
            if state["entry"] is None:
                state["entry"] = step.program
            if line is not None and (line.file, line.line) != state["line"]:
                click.echo(f"; {line}")
                state["line"] = (line.file, line.line)
            if insn.is_call and insn.src == oc.CallKind.HELPER and insn.imm in HELPERS_BY_ID:
                text = f"call {HELPERS_BY_ID[insn.imm].name}"
            else:
                text = format_insn(insn).replace("\t", " ")
            changes = [f"r{r} = {v:#x}" for r, v in step.changed().items()]
            written = _written(vm, insn, step.before)
            if written:
                changes.append(written)
            if step.after is None:
                changes.append(f"(end: r0 = {vm.regs[0]:#x})")
            name = f"{step.program.name}:" if step.program is not state["entry"] else ""
            click.echo(f"{name}{step.index:>5}: {text:<44} {', '.join(changes)}".rstrip())

        return show

    return make


def _written(vm, insn, before) -> str:
    """``*(u64 *)0x... = 0x...`` for an instruction that stored to memory."""
    from ebpfpy.isa import opcodes as oc

    klass = oc.cls(insn.op)
    if klass not in (oc.Class.ST, oc.Class.STX):
        return ""
    n = oc.SIZE_BYTES[oc.size(insn.op)]
    addr = (before[insn.dst] + insn.off) & M64
    try:
        value = vm.space.load(addr, n)
    except Exception:
        return ""
    return f"*(u{8 * n} *){addr:#x} = {value:#x}"


# -- printing maps -----------------------------------------------------------------------------


def _show(codec, raw: bytes, typed_decode=None):
    if typed_decode is not None:
        return typed_decode(raw)
    if codec is not None and codec.decode is not bytes:
        return codec.decode(raw[: codec.size])
    if len(raw) in (1, 2, 4, 8):
        return int.from_bytes(raw, "little")
    return raw.hex(" ")


def _print_maps(vm, obj) -> None:
    from ebpfpy.vm.maps import ArrayMap, PerfEventArrayMap, ProgArrayMap, RingBufMap

    data_maps = set()
    if obj is not None:
        data_maps = {name for name, spec in obj.obj.map_specs.items() if spec.is_global_data}
    for m in vm.maps.values():
        if m.name in data_maps:
            continue
        label = m.label
        if isinstance(m, RingBufMap):
            records = m.records
            click.echo(f"@{label}: {len(records)} record(s)")
            for rec in records:
                click.echo(f"  {rec.hex(' ')}")
            continue
        if isinstance(m, PerfEventArrayMap):
            click.echo(f"@{label}: {len(m.records)} record(s)")
            for cpu, rec in m.records:
                click.echo(f"  cpu {cpu}: {rec.hex(' ')}")
            continue
        if isinstance(m, ProgArrayMap):
            for i, p in m.items():
                click.echo(f"@{label}[{i}]: {p.name or 'program ' + str(p.index)}")
            continue
        # An array's untouched elements are zeros, not printed: only the ones made are read.
        for key, raw in m.made_items() if isinstance(m, ArrayMap) else m.raw_items():
            if m.is_array and not any(raw):
                continue  # arrays: only the elements a program (or --set) touched
            k = m.key_codec.decode(key) if m.key_codec.decode is not bytes else _show(None, key)
            if m.percpu:
                slot = m.user_value_size // m.ncpus
                value = [_show(m.value_codec, raw[i * slot:(i + 1) * slot]) for i in range(m.ncpus)]
            else:
                value = _show(m.value_codec, raw)
            click.echo(f"@{label}[{k}]: {value}")
    if obj is not None:
        for name in obj.globals:
            try:
                click.echo(f"{name} = {obj.globals[name]!r}")
            except Exception:  # a variable BTF cannot decode: skip it, the maps were printed
                continue


# -- bpf_conformance ---------------------------------------------------------------------------


@vm.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--program", "program_hex", default=None, metavar="HEX",
              help="The program as hex bytes (default: read from stdin).")
def plugin(args, program_hex):
    """bpf_conformance plugin: [MEMORY] [OPTIONS...]; program hex on stdin (or --program); prints r0 in hex.

    MEMORY is the memory image as hex (r1 points to it, r2 holds its length); options the runner
    passes are ignored but for --elf, which says the program is an ELF object (its code section)."""
    from ebpfpy.vm import VM, VMError

    memory = next((a for a in args if not a.startswith("-")), "")
    try:
        text = program_hex if program_hex is not None else sys.stdin.read()
        code = bytes.fromhex("".join(text.split()))
        mem = bytes.fromhex("".join(memory.split()))
    except ValueError as e:
        click.echo(f"bad hex input: {e}", err=True)
        sys.exit(1)
    try:
        if "--elf" in args:
            code = _elf_code(code)
        vm_ = VM()
        r0 = vm_.run(vm_.load(code), mem=mem)
    except VMError as e:
        click.echo(str(e), err=True)
        sys.exit(1)
    except Exception as e:  # never a traceback: the runner reads our output
        click.echo(f"internal error: {type(e).__name__}: {e}", err=True)
        sys.exit(1)
    click.echo(f"{r0:x}")


def _elf_code(data: bytes) -> bytes:
    """The instructions of the function ``main`` (else of the first code section) of an ELF object,
    as bpf_conformance writes them with --elf (no maps, no relocations)."""
    import io

    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    from ebpfpy.vm import VMError

    try:
        elf = ELFFile(io.BytesIO(data))
        code = [(i, s) for i, s in enumerate(elf.iter_sections()) if s["sh_flags"] & 0x4 and s["sh_size"]]
        symtab = elf.get_section_by_name(".symtab")
        for sym in symtab.iter_symbols() if symtab else ():
            if sym.name == "main" and any(i == sym["st_shndx"] for i, _ in code):
                section = elf.get_section(sym["st_shndx"])
                start = sym["st_value"]
                return section.data()[start:start + (sym["st_size"] or section["sh_size"] - start)]
        if code:
            return code[0][1].data()
    except (ELFError, ValueError, KeyError) as e:
        raise VMError(f"not a usable ELF object: {e}") from None
    raise VMError("the ELF object has no code")
