"""``ebpfpy run OBJ`` and ``ebpfpy prog loadall OBJ DIR``: clang-built objects from the shell.

``run`` loads an object, attaches every program its section names, prints what each
``iter/`` program's iterator prints, waits for Ctrl-C or ``--duration`` (not at all when
iterators are all it attached), then prints the maps (typed through the object's
BTF when it has one).  ``loadall`` loads every program and pins it under DIR
with the names ``bpftool prog loadall`` uses (the function names).
"""
from __future__ import annotations

import signal
import sys
import time

import click


def _parse_assignment(text: str):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"expected NAME=VALUE, got {text!r}")
    return name, value


_USDT_SYNTAX = "[PROG=]BINARY:PROVIDER:NAME"


def _parse_usdt(ctx, param, values) -> list[tuple[str | None, str, str, str]]:
    """``--usdt [PROG=]BINARY:PROVIDER:NAME``: what libbpf's ``bpf_program__attach_usdt`` takes
    (binary path, provider, probe name; ``--pid`` is its pid), and which ``SEC("usdt")``
    program to attach (optional when the object has only one)."""
    import re

    from ebpfpy.elf.usdt import split_target
    out = []
    for text in values:
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)\Z", text)
        prog, target = m.groups() if m else (None, text)
        parts = split_target(target)
        if parts is None:
            raise click.BadParameter(f"expected {_USDT_SYNTAX} (binary path, provider, probe name), got {text!r}")
        out.append((prog, *parts))
    return out


def _attach_usdt(obj, targets, pid: int) -> tuple[list, set[str]]:
    """Attach ``--usdt`` targets to the object's bare ``SEC("usdt")`` programs; returns the
    attachments and the names of the programs used."""
    from ebpfpy.attach.errors import AttachError
    from ebpfpy.elf import ObjectError
    bare = {p.name: p for p in obj.programs.values() if p.program is not None and p.is_bare_usdt}
    out, used = [], set()
    for prog_name, binary, provider, name in targets:
        what = f"--usdt {(prog_name + '=') if prog_name else ''}{binary}:{provider}:{name}"
        if not bare:
            raise ObjectError(f"{what}: {obj.path} has no SEC(\"usdt\") program to attach")
        if prog_name is None:
            if len(bare) > 1:
                raise ObjectError(f"{what}: which program? {obj.path} has several SEC(\"usdt\") programs "
                                  f"({', '.join(bare)}): give PROG=BINARY:PROVIDER:NAME")
            [prog_name] = bare
        prog = bare.get(prog_name)
        if prog is None:
            raise ObjectError(f"{what}: no SEC(\"usdt\") program {prog_name!r} in {obj.path} "
                              f"(it has: {', '.join(bare)})")
        try:
            out.append(prog.attach_usdt(binary, provider, name, pid=pid))
        except (AttachError, ObjectError, OSError) as e:
            raise ObjectError(f"{what}: {e}") from None
        used.add(prog_name)
    return out, used


def _fail(exc: Exception) -> None:
    """One `ERROR:` line, as the group prints them: a KeyError without its repr quotes, an
    OSError as `FILE: reason` (not `[Errno 2] ...`), a BPFError with its command and diagnosis."""
    from ebpfpy.cli import error_line

    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else error_line(exc)
    click.echo(f"ERROR: {text}".splitlines()[0], err=True)
    sys.exit(1)


def _typed(obj, type_id: int, raw: bytes):
    if obj.btf is None or not type_id:
        if len(raw) in (1, 2, 4, 8):
            return int.from_bytes(raw, "little")
        return raw.hex(" ")
    from ebpfpy.btf.values import decode
    return decode(obj.btf, type_id, raw)


def print_maps(obj, out=click.echo) -> None:
    """Each user map's entries, then the global variables, bpftrace-ish: ``@name[key]: value``."""
    from ebpfpy.elf.usdt import INTERNAL_MAPS
    from ebpfpy.sys import bpf
    from ebpfpy.sys.consts import MapType
    for name, spec in obj.map_specs.items():
        if spec.is_global_data or name in INTERNAL_MAPS:  # libbpf's bookkeeping, not the tool's data
            continue
        m = obj.maps.get(name)
        if m is None:
            continue
        if spec.map_type in (MapType.RINGBUF, MapType.PERF_EVENT_ARRAY, MapType.STACK_TRACE):
            out(f"@{name}: <{MapType(spec.map_type).name.lower()}>")
            continue
        entries = []
        key = None
        while True:
            key = bpf.map_get_next_key(m, key, spec.key_size)
            if key is None:
                break
            try:
                entries.append((key, bpf.map_lookup_elem(m, key, m.user_value_size)))
            except OSError:
                continue  # deleted between the two calls
        slot = m.user_value_size // m.ncpus
        for key, val in entries:
            vals = [_typed(obj, spec.btf_value_type_id, val[i * slot:i * slot + spec.value_size])
                    for i in range(m.ncpus)]
            if m.ncpus == 1:
                shown = vals[0]
            else:
                shown = sum(vals) if all(isinstance(v, int) for v in vals) else vals
            out(f"@{name}[{_typed(obj, spec.btf_key_type_id, key)}]: {shown}")
        out("")
    for var in obj.globals:
        value = obj.globals.value(var) if obj.btf is not None else obj.globals[var]
        out(f"{var} = {value!r}")


def _parse_event_types(ctx, param, values) -> list[tuple[str | None, str]]:
    out = []
    for text in values:
        map_name, sep, type_name = text.rpartition("=")
        if not type_name.strip() or (sep and not map_name):
            raise click.BadParameter(f"expected [MAP=]TYPE, got {text!r}")
        out.append((map_name or None, type_name.strip()))
    return out


def _record_printer(obj, name: str, type_id: int | None, out=click.echo):
    """Each record as ``@MAP:`` and its fields as ``  name=value`` lines when it has a type
    and fits it, else ``@MAP: <hex>``."""
    from ebpfpy.elf.records import decode_record, field_lines

    def show(records):
        for rec in records:
            value = decode_record(obj.btf, type_id, rec) if type_id else None
            if value is None:
                out(f"@{name}: {bytes(rec).hex(' ')}")
                continue
            out(f"@{name}:")
            for line in field_lines(value):
                out(f"  {line}")
    return show


class _EventReaders:
    """A RingBuffer over every ring buffer map and a PerfBuffer per perf event array map,
    their records printed as they arrive."""

    def __init__(self, obj, types: dict[str, int]):
        from ebpfpy.elf.records import event_maps
        from ebpfpy.sys.consts import MapType
        self.readers: list = []
        try:
            for name in event_maps(obj):
                m = obj.maps.get(name)
                if m is None:
                    continue
                show = _record_printer(obj, name, types.get(name))
                if obj.map_specs[name].map_type == MapType.RINGBUF:
                    from ebpfpy.events.ringbuf import RingBuffer
                    self.readers.append(RingBuffer(m, show))
                else:
                    from ebpfpy.events.perfbuf import PerfBuffer
                    self.readers.append(PerfBuffer(
                        m, lambda cpu, records, show=show: show(records),
                        lost_callback=lambda cpu, n, name=name: click.echo(f"@{name}: lost {n} record(s) "
                                                                           f"on CPU {cpu}", err=True)))
        except BaseException:
            self.close()
            raise

    def wait(self, seconds: float) -> None:
        import select
        if not self.readers:
            time.sleep(seconds)
            return
        ready, _, _ = select.select(self.readers, [], [], seconds)
        for r in ready:
            r.consume()

    def close(self) -> None:
        for r in self.readers:
            try:
                r.consume()
            finally:
                r.close()
        self.readers = []


@click.command()
@click.argument("obj_path", metavar="OBJ", type=click.Path(dir_okay=False))
@click.option("--duration", "-d", type=float, default=None, help="seconds to run (default: until Ctrl-C)")
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
              help="set a .rodata/.data/.bss variable before load, read by its BTF type: 42, 0x2a, true, "
                   "an enumerator, text for char arrays, JSON for arrays and structs (repeatable)")
@click.option("--pid", type=click.IntRange(-1, 2**31 - 1), default=-1,
              help="only this process (uprobes)")  # a pid_t; -1: every process
@click.option("--ifname", default=None, metavar="IFACE",
              help="network interface for xdp, tcx/ingress, tcx/egress programs and netkit/primary, netkit/peer "
                   "ones (the pair's primary device) (name or index)")
@click.option("--cgroup", default=None, metavar="DIR",
              help="cgroup v2 directory for cgroup_skb/ and cgroup/ programs (relative: under the cgroup2 mount)")
@click.option("--netns", default=None, metavar="NETNS",
              help="network namespace for sk_lookup programs: a path (/proc/PID/ns/net, /run/netns/NAME) "
                   "or an ip-netns name")
@click.option("--event-type", "event_types", multiple=True, metavar="[MAP=]TYPE", callback=_parse_event_types,
              help="print ring buffer / perf buffer records as this BTF type's fields (struct X, union X, or a "
                   "struct/union/typedef name), for MAP only or for all; default: struct event if the object's "
                   "BTF has it (repeatable)")
@click.option("--usdt", "usdt_targets", multiple=True, metavar=_USDT_SYNTAX, callback=_parse_usdt,
              help="attach a bare SEC(\"usdt\") program to USDT probe PROVIDER:NAME of BINARY, as libbpf's "
                   "bpf_program__attach_usdt (--pid: only that process); PROG= picks the program when the "
                   "object has several (repeatable)")
def run(obj_path, duration, assignments, pid, ifname, cgroup, netns, event_types, usdt_targets):
    """Load OBJ, attach its programs by section name, and print its maps at the end."""
    from ebpfpy.attach.errors import AttachError
    from ebpfpy.elf import ObjectError, load_object
    from ebpfpy.elf.records import record_types
    from ebpfpy.sys.errors import BPFError
    try:
        obj = load_object(obj_path)
    except ObjectError as e:
        _fail(e)
    readers = None
    with obj:
        try:
            for text in assignments:
                name, value = _parse_assignment(text)
                obj.globals.set_text(name, value)
            types = record_types(obj, event_types)
            obj.load()
            readers = _EventReaders(obj, types)  # before attaching: no record is missed
            attached = obj.attach_all(pid=pid, iface=ifname, cgroup=cgroup, netns=netns)
            usdt_attached, usdt_used = _attach_usdt(obj, usdt_targets, pid)
            attached += usdt_attached
        except (ObjectError, BPFError, AttachError, OSError, KeyError, ValueError, TypeError) as e:
            if readers is not None:
                readers.close()
            _fail(e)
        stop = {"now": False}

        def on_sigint(signum, frame):
            stop["now"] = True

        # before the "Attached" line: a script that waits for it may interrupt us right away
        old = signal.signal(signal.SIGINT, on_sigint)
        given = {"iface": ifname is not None, "cgroup": cgroup is not None, "netns": netns is not None}
        skipped = [p.name for p in obj.programs.values() if p.program is not None and not p.attachable
                   and not (p.link_target and given[p.link_target]) and p.name not in usdt_used]
        iters = [p for p in obj.programs.values() if p.iter_link is not None]
        if iters and len(iters) == len(attached):
            duration = 0  # nothing to wait for: each iterator prints once below
        click.echo(f"Attached {len(attached)} probe(s) from {obj_path}"
                   + (f"; not attached (no target in section name, or no --ifname/--cgroup/--netns/--usdt): "
                      f"{', '.join(skipped)}" if skipped else "")
                   + (". Hit Ctrl-C to end." if duration is None else "."), err=True)
        try:
            for prog in iters:  # iter/ programs: one pass over the kernel's objects, printed as it comes
                click.echo(prog.read_iter(), nl=False)
            deadline = None if duration is None else time.monotonic() + duration
            while not stop["now"] and (deadline is None or time.monotonic() < deadline):
                readers.wait(0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic())))
        except (BPFError, OSError) as e:
            _fail(e)
        finally:
            signal.signal(signal.SIGINT, old)
            readers.close()
        click.echo("")
        print_maps(obj)


@click.command()
@click.argument("obj_path", metavar="OBJ", type=click.Path(dir_okay=False))
@click.argument("directory", metavar="DIR")
@click.option("--pinmaps", metavar="MAP_DIR", default=None, help="also pin the maps under MAP_DIR")
def loadall(obj_path, directory, pinmaps):
    """Load every program of OBJ and pin it as DIR/<function name> (like bpftool prog loadall)."""
    import os

    from ebpfpy import bpffs
    from ebpfpy.elf import ObjectError, load_object
    from ebpfpy.sys import bpf
    from ebpfpy.sys.errors import BPFError
    try:
        if pinmaps and not bpffs.on_bpffs(pinmaps):
            raise ObjectError(f"--pinmaps {pinmaps}: not on a BPF filesystem (pins live on bpffs, "
                              f"e.g. under {bpffs.BPFFS})")
        with load_object(obj_path) as obj:
            obj.load()
            paths = obj.pin_programs(directory)
            if pinmaps:
                os.makedirs(pinmaps, exist_ok=True)
                for name, m in obj.maps.items():
                    bpf.obj_pin(m, os.path.join(pinmaps, name))
    except (ObjectError, BPFError, OSError) as e:
        _fail(e)
    for p in paths:
        click.echo(p)
