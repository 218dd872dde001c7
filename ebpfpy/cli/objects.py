"""``ebpfpy run OBJ`` and ``ebpfpy prog loadall OBJ DIR``: clang-built objects from the shell.

``run`` loads an object, attaches every program its section names, waits for
Ctrl-C or ``--duration``, then prints the maps (typed through the object's
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


def _fail(exc: Exception) -> None:
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # no repr quotes
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


def _open_rings(obj):
    """One RingBuffer over every ring buffer map; records print as hex lines as they arrive
    (a ring buffer has no BTF record type to decode with)."""
    from ebpfpy.sys.consts import MapType
    names = [n for n, s in obj.map_specs.items() if s.map_type == MapType.RINGBUF and n in obj.maps]
    if not names:
        return None
    from ebpfpy.events.ringbuf import RingBuffer
    rings = RingBuffer()
    for name in names:
        def show(records, name=name):
            for rec in records:
                click.echo(f"@{name}: {bytes(rec).hex(' ')}")
        rings.add(obj.maps[name], show)
    return rings


@click.command()
@click.argument("obj_path", metavar="OBJ", type=click.Path(dir_okay=False))
@click.option("--duration", "-d", type=float, default=None, help="seconds to run (default: until Ctrl-C)")
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
              help="set a .rodata/.data/.bss variable before load, read by its BTF type: 42, 0x2a, true, "
                   "an enumerator, text for char arrays, JSON for arrays and structs (repeatable)")
@click.option("--pid", type=int, default=-1, help="only this process (uprobes)")
@click.option("--ifname", default=None, metavar="IFACE",
              help="network interface for xdp and tcx/ingress, tcx/egress programs (name or index)")
@click.option("--cgroup", default=None, metavar="DIR",
              help="cgroup v2 directory for cgroup_skb/ and cgroup/ programs (relative: under the cgroup2 mount)")
def run(obj_path, duration, assignments, pid, ifname, cgroup):
    """Load OBJ, attach its programs by section name, and print its maps at the end."""
    from ebpfpy.attach.errors import AttachError
    from ebpfpy.elf import ObjectError, load_object
    from ebpfpy.sys.errors import BPFError
    try:
        obj = load_object(obj_path)
    except ObjectError as e:
        _fail(e)
    with obj:
        try:
            for text in assignments:
                name, value = _parse_assignment(text)
                obj.globals.set_text(name, value)
            obj.load()
            attached = obj.attach_all(pid=pid, iface=ifname, cgroup=cgroup)
        except (ObjectError, BPFError, AttachError, OSError, KeyError, ValueError, TypeError) as e:
            _fail(e)
        stop = {"now": False}

        def on_sigint(signum, frame):
            stop["now"] = True

        # before the "Attached" line: a script that waits for it may interrupt us right away
        old = signal.signal(signal.SIGINT, on_sigint)
        given = {"iface": ifname is not None, "cgroup": cgroup is not None}
        skipped = [p.name for p in obj.programs.values() if p.program is not None and not p.attachable
                   and not (p.link_target and given[p.link_target])]
        click.echo(f"Attached {len(attached)} probe(s) from {obj_path}"
                   + (f"; not attached (no target in section name, or no --ifname/--cgroup): "
                      f"{', '.join(skipped)}" if skipped else "")
                   + (". Hit Ctrl-C to end." if duration is None else "."), err=True)
        rings = None
        try:
            rings = _open_rings(obj)
            deadline = None if duration is None else time.monotonic() + duration
            while not stop["now"] and (deadline is None or time.monotonic() < deadline):
                wait = 0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic()))
                if rings is not None:
                    rings.poll(int(wait * 1000))
                else:
                    time.sleep(wait)
        finally:
            signal.signal(signal.SIGINT, old)
            if rings is not None:
                rings.consume()
                rings.close()
        click.echo("")
        print_maps(obj)


@click.command()
@click.argument("obj_path", metavar="OBJ", type=click.Path(dir_okay=False))
@click.argument("directory", metavar="DIR")
@click.option("--pinmaps", metavar="MAP_DIR", default=None, help="also pin the maps under MAP_DIR")
def loadall(obj_path, directory, pinmaps):
    """Load every program of OBJ and pin it as DIR/<function name> (like bpftool prog loadall)."""
    import os

    from ebpfpy.elf import ObjectError, load_object
    from ebpfpy.sys import bpf
    from ebpfpy.sys.errors import BPFError
    try:
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
