"""``ebpfpy btf dump [FILE] [--type NAME] [--format c|raw]``."""
from __future__ import annotations

import sys

import click


def _load(path: str):
    from ebpfpy.btf import BTF, BTFError, vmlinux
    if path == "/sys/kernel/btf/vmlinux":
        return vmlinux()
    if path.startswith("/sys/kernel/btf/"):
        return BTF.from_file(path, vmlinux())
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"\x7fELF":
        from ebpfpy.elf.reader import read_btf_sections
        btf, _ = read_btf_sections(path)
        if btf is None:
            raise BTFError(f"{path}: no .BTF section")
        return btf
    return BTF.from_file(path)


def _raw_line(btf, tid: int) -> str:
    """One type in bpftool's ``format raw`` style (its record and member lines)."""
    from ebpfpy.btf.rawdump import raw_text
    return raw_text(btf, tid)


@click.group()
def btf():
    """Inspect BTF type information."""


def _bpftool_words(file: str, words: tuple, fmt: str) -> tuple[str, str]:
    """bpftool's spelling, ``file PATH [format c|raw]`` (raw unless told): (file, format)."""
    if not words:
        return file, fmt
    if file != "file":
        raise click.UsageError(f"unexpected extra arguments: {' '.join(words)}")
    file, rest = words[0], words[1:]
    if not rest:
        return file, "raw"
    if len(rest) == 2 and rest[0] == "format" and rest[1] in ("c", "raw"):
        return file, rest[1]
    raise click.UsageError(f"unexpected arguments after the file: {' '.join(rest)} (want: format c|raw)")


@btf.command()
@click.argument("file", default="/sys/kernel/btf/vmlinux")
@click.argument("words", nargs=-1, metavar="")
@click.option("--type", "type_name", help="only this type (NAME, 'struct NAME', 'union NAME', 'enum NAME')")
@click.option("--format", "fmt", type=click.Choice(["c", "raw"]), default="c", show_default=True)
def dump(file, words, type_name, fmt):
    """Print the types of FILE (BTF blob, ELF object, or /sys/kernel/btf/*) as C or raw records.

    Without --type, ``--format c`` prints a complete header (vmlinux.h), identical to bpftool's.
    bpftool's own spelling works too: ``dump file FILE [format c|raw]`` (raw when not given)."""
    from ebpfpy.btf import BTFError, Kind
    file, fmt = _bpftool_words(file, words, fmt)
    try:
        spec = _load(file)
        if type_name:
            kind = None
            words = type_name.split()
            if len(words) == 2:
                kind = {"struct": Kind.STRUCT, "union": Kind.UNION, "enum": Kind.ENUM}.get(words[0])
                if kind is None:
                    raise click.UsageError(f"bad type name {type_name!r}")
                type_name = words[1]
            ids = spec.find_all(type_name, kind)
            if kind == Kind.ENUM:
                ids += spec.find_all(type_name, Kind.ENUM64)
            ids = [i for i in ids if spec.kind_of(i) != Kind.FWD] or ids
            if not ids:
                raise KeyError(f"no type named {type_name!r} in {file}")
        else:
            # The whole blob: written as it is produced (a vmlinux.h is a few MB of text).
            write = sys.stdout.write
            if fmt == "c":
                from ebpfpy.btf.cheader import write_header
                write_header(spec, write)
            else:
                from ebpfpy.btf.rawdump import write_raw
                write_raw(spec, write)
            return
        for tid in ids:
            if fmt == "raw":
                click.echo(_raw_line(spec, tid))
            elif type_name or (spec.kind_of(tid) in (Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.TYPEDEF)
                               and spec.name_of(tid)):
                click.echo(spec.format_c(tid) + "\n")
    except (OSError, BTFError, KeyError) as e:
        if isinstance(e, BrokenPipeError):
            raise  # the group stops quietly
        from ebpfpy.cli import error_line

        msg = e.args[0] if isinstance(e, KeyError) else error_line(e)
        click.echo(f"ERROR: {msg}", err=True)
        sys.exit(1)
