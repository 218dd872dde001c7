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
    """One type in bpftool's ``format raw`` style (first line only)."""
    from ebpfpy.btf import Kind
    t = btf[tid]
    k = btf.kind_of(tid)
    name = f"'{t.name}'" if t.name else "'(anon)'"
    head = f"[{tid}] {k.name} {name}"
    fields = {
        Kind.INT: lambda: f" size={t.size} bits_offset={t.bit_offset} nr_bits={t.bits} encoding={_int_enc(t.encoding)}",
        Kind.ARRAY: lambda: f" type_id={t.type} index_type_id={t.index_type} nr_elems={t.nelems}",
        Kind.STRUCT: lambda: f" size={t.size} vlen={len(t.members)}",
        Kind.UNION: lambda: f" size={t.size} vlen={len(t.members)}",
        Kind.ENUM: lambda: f" encoding={'SIGNED' if t.signed else 'UNSIGNED'} size={t.size} vlen={len(t.values)}",
        Kind.ENUM64: lambda: f" encoding={'SIGNED' if t.signed else 'UNSIGNED'} size={t.size} vlen={len(t.values)}",
        Kind.FWD: lambda: f" fwd_kind={'union' if t.is_union else 'struct'}",
        Kind.FUNC: lambda: f" type_id={t.type} linkage={['static', 'global', 'extern'][t.linkage]}",
        Kind.FUNC_PROTO: lambda: f" ret_type_id={t.type} vlen={len(t.params)}",
        Kind.VAR: lambda: f" type_id={t.type}, linkage={['static', 'global', 'extern'][t.linkage]}",
        Kind.DATASEC: lambda: f" size={t.size} vlen={len(t.vars)}",
        Kind.FLOAT: lambda: f" size={t.size}",
        Kind.DECL_TAG: lambda: f" type_id={t.type} component_idx={t.component_idx}",
    }
    extra = fields.get(k, lambda: f" type_id={t.type}")()
    lines = [head + extra]
    if k in (Kind.STRUCT, Kind.UNION):
        for m in t.members:
            lines.append(f"\t'{m.name or '(anon)'}' type_id={m.type} bits_offset={m.bit_offset}"
                         + (f" bitfield_size={m.bitfield_size}" if m.bitfield_size else ""))
    elif k == Kind.ENUM:
        lines += [f"\t'{n}' val={v}" for n, v in t.values]
    elif k == Kind.ENUM64:
        lines += [f"\t'{n}' val={v}{'LL' if t.signed else 'ULL'}" for n, v in t.values]
    elif k == Kind.FUNC_PROTO:
        lines += [f"\t'{p.name or '(anon)'}' type_id={p.type}" for p in t.params]
    elif k == Kind.DATASEC:
        lines += [f"\ttype_id={v.type} offset={v.offset} size={v.size} "
                  f"({btf.kind_of(v.type).name} '{btf.name_of(v.type)}')" for v in t.vars]
    return "\n".join(lines)


def _int_enc(e: int) -> str:
    return {0: "(none)", 1: "SIGNED", 2: "CHAR", 4: "BOOL"}.get(e, str(e))


@click.group()
def btf():
    """Inspect BTF type information."""


@btf.command()
@click.argument("file", default="/sys/kernel/btf/vmlinux")
@click.option("--type", "type_name", help="only this type (NAME, 'struct NAME', 'union NAME', 'enum NAME')")
@click.option("--format", "fmt", type=click.Choice(["c", "raw"]), default="c", show_default=True)
def dump(file, type_name, fmt):
    """Print the types of FILE (BTF blob, ELF object, or /sys/kernel/btf/*) as C or raw records.

    Without --type, ``--format c`` prints a complete header (vmlinux.h), identical to bpftool's."""
    from ebpfpy.btf import BTFError, Kind
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
            if fmt == "c":
                from ebpfpy.btf.cheader import format_header
                click.echo(format_header(spec), nl=False)
                return
            ids = list(spec.ids())
        for tid in ids:
            if fmt == "raw":
                click.echo(_raw_line(spec, tid))
            elif type_name or (spec.kind_of(tid) in (Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.TYPEDEF)
                               and spec.name_of(tid)):
                click.echo(spec.format_c(tid) + "\n")
    except (OSError, BTFError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) else str(e)
        click.echo(f"ERROR: {msg}", err=True)
        sys.exit(1)
