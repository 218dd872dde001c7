"""`ebpfpy asm` and `ebpfpy disasm`: the ISA layer from the shell.

`disasm FILE.o` prints what `llvm-objdump-19 -d --no-show-raw-insn FILE.o` prints (section and
symbol headers, slot indexes, `<symbol+0xNN>` after jump targets), so the two can be diffed.
"""

from __future__ import annotations

import bisect
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import click

from ebpfpy.isa import STYLES, Insn, ISAError, assemble, decode, encode_all, format_insn
from ebpfpy.isa.disasm import raw_bytes

SHF_EXECINSTR = 0x4


@dataclass(frozen=True)
class _Section:
    name: str
    data: bytes
    symbols: list[tuple[int, str]]  # (byte offset, name), sorted


def _file_error(e: OSError, file: str) -> click.ClickException:
    """`NAME: reason`, naming the file the error is about: the output when writing it failed,
    FILE only when the error names none (an empty name shows as '')."""
    name = file if e.filename is None else str(e.filename)
    return click.ClickException(f"{name or repr(name)}: {e.strerror}")


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as f:
        return f.read()


def _code_sections(path: str) -> Iterator[_Section]:
    """Executable sections of a BPF ELF object, with the symbols objdump would show."""
    from elftools.common.exceptions import ELFError  # only disasm needs pyelftools
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if not elf.little_endian:
                raise click.ClickException(
                    f"{path}: big-endian BPF objects are not supported"
                )
            symtab = elf.get_section_by_name(".symtab")
            symbols = list(symtab.iter_symbols()) if symtab else []
            for index, sec in enumerate(elf.iter_sections()):
                if sec["sh_flags"] & SHF_EXECINSTR and sec["sh_size"]:
                    yield _Section(
                        sec.name, sec.data(), _labels(symbols, index, sec.name)
                    )
    except ELFError as e:
        raise click.ClickException(f"{path}: not a valid ELF object: {e}") from None


def _labels(
    symbols: list, section_index: int, section_name: str
) -> list[tuple[int, str]]:
    """Named symbols of one section by offset; the section's name stands in at offset 0."""
    labels = sorted(
        {
            (sym["st_value"], sym.name)
            for sym in symbols
            if sym["st_shndx"] == section_index
            and sym.name
            and sym["st_info"]["type"] not in ("STT_SECTION", "STT_FILE")
        }
    )
    if not labels or labels[0][0] != 0:
        labels.insert(0, (0, section_name))
    return labels


def _symbol_at(section: _Section, offset: int) -> str:
    """`name` or `name+0xNN` for a byte offset, from the nearest symbol at or before it."""
    i = bisect.bisect_right(section.symbols, (offset, "\uffff")) - 1
    base, name = section.symbols[max(i, 0)]
    return name if offset == base else f"{name}+{offset - base:#x}"


def _section_lines(section: _Section, style: str, show_bytes: bool) -> Iterator[str]:
    st = STYLES[style]
    try:
        insns = decode(section.data)
    except ISAError as e:
        raise click.ClickException(f"section {section.name}: {e}") from None
    starts = dict(
        section.symbols
    )  # at a shared address the last name wins, as in objdump
    slot = 0
    for insn in insns:
        offset = slot * 8
        if offset in starts:
            yield ""
            yield f"{offset:016x} <{starts[offset]}>:"
        text = format_insn(insn, style, annotate=False)
        target = insn.jump_target(slot)
        if target is not None and not insn.is_call:
            text += f" <{_symbol_at(section, target * 8)}>"
        if show_bytes:
            text = st.raw.format(raw=raw_bytes(insn), text=text)
        yield st.index.format(index=slot) + text
        slot += insn.size


_STYLE = click.option(
    "--style",
    type=click.Choice(sorted(STYLES)),
    default="llvm",
    show_default=True,
    help="Syntax to print.",
)


@click.command()
@click.argument("file", type=click.Path(allow_dash=True))
@click.option(
    "--section", "-j", "sections", multiple=True, help="Only this section (repeatable)."
)
@click.option(
    "--bytes", "show_bytes", is_flag=True, help="Show the raw instruction bytes."
)
@click.option(
    "--raw", is_flag=True, help="FILE holds raw instruction bytes, not an ELF object."
)
@_STYLE
def disasm(
    file: str, sections: tuple[str, ...], show_bytes: bool, raw: bool, style: str
) -> None:
    """Disassemble the code sections of a BPF ELF object (or raw bytes with --raw)."""
    try:
        if raw:
            _print_raw(_read_input(file), style, show_bytes)
            return
        if file == "-":
            raise click.ClickException(
                "reading an ELF object from stdin is not supported; use --raw"
            )
        # Decode everything first, so that an error prints nothing but its message.
        listing = [
            (s.name, list(_section_lines(s, style, show_bytes)))
            for s in _code_sections(file)
            if not sections or s.name in sections
        ]
        click.echo(f"\n{file}:\tfile format elf64-bpf")
        for name, lines in listing:
            click.echo(f"\nDisassembly of section {name}:")
            click.echo("\n".join(lines))
    except OSError as e:
        raise _file_error(e, file) from None


def _print_raw(data: bytes, style: str, show_bytes: bool) -> None:
    from ebpfpy.isa import format_program

    try:
        click.echo(format_program(decode(data), raw=show_bytes, style=style), nl=False)
    except ISAError as e:
        raise click.ClickException(str(e)) from None


@click.command()
@click.argument("file", type=click.Path(allow_dash=True))
@click.option(
    "-o",
    "--output",
    default="-",
    type=click.Path(allow_dash=True),
    help="Where to write the bytes.",
)
def asm(file: str, output: str) -> None:
    """Assemble llvm-objdump-style text (FILE or - for stdin) into raw instruction bytes."""
    try:
        text = _read_input(file).decode()
        program: list[Insn] = assemble(text)
        data = encode_all(program)
        if output == "-":
            if sys.stdout.isatty():
                raise click.ClickException(
                    "refusing to write binary to a terminal; use -o FILE"
                )
            out: BinaryIO = sys.stdout.buffer
            out.write(data)
            out.flush()
        else:
            with open(output, "wb") as f:
                f.write(data)
    except ISAError as e:
        raise click.ClickException(f"{file}: {e}") from None
    except UnicodeDecodeError as e:
        raise click.ClickException(f"{file}: not text: {e.reason}") from None
    except OSError as e:
        raise _file_error(e, file) from None
