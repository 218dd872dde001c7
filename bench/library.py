"""ebpfpy's own library paths (no bpftrace counterpart), and in-process compile time of the largest tool.

Each entry is timed ``runs`` times with time.perf_counter; results are
(name, samples or n/a reason, unit, note) rows for the harness writer.
``measure`` and ``compile_time`` run their ``*_here`` halves in a child of
the Python whose install pybpftrace runs (harness.in_install), so these rows
time the same ebpfpy as the command-line rows, never the tree the bench sits in.
"""
from __future__ import annotations

import glob
import os
import time

from harness import ROOT, Metric, Target, ToolFailed, in_install

N_INSNS = 1_000_000
N_TEXT = 100_000
N_MAP = 100_000


def _timed(fn, runs: int) -> list:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _program(n: int) -> list:
    from ebpfpy.isa.builder import FP, R0, R1, R2, R3, Builder

    b = Builder()
    for i in range(n // 4 - 1):
        b.alu("add", R1, i & 0x7fff)
        b.alu("mov", R2, R1)
        b.ldx(8, R3, FP, -8)
        b.stx(8, FP, R3, -16)
    b.alu("mov", R0, 0)
    b.exit()
    return b.build()


def _mix_replay(n: int):
    """A function building and encoding about ``n`` instructions of what pybpftrace emits: the
    Builder calls of tools/, tests/kernel/tools_017/ and bench/corpus/, recorded and replayed
    (bench/builder_speed.py). Recorded once, here, with the install under test."""
    import types

    import builder_speed

    module = types.ModuleType("replay")
    exec(compile(builder_speed.record(builder_speed.scripts()), "replay", "exec"), module.__dict__)

    class _Map:
        def __init__(self, fd: int) -> None:
            self.fd = fd

    maps = {name: _Map(100 + i) for i, name in enumerate(module.MAP_NAMES)}
    rounds = max(1, -(-n // sum(f(maps) for f in module.FUNCS)))

    def run() -> None:
        for _ in range(rounds):
            for f in module.FUNCS:
                f(maps)
    return run


def _row(name: str, fn, runs: int, unit_note: str = "") -> tuple:
    try:
        return (name, _timed(fn, runs), "s", unit_note)
    except Exception as err:  # a missing API is reported, not fatal
        return (name, f"{type(err).__name__}: {str(err)[:100]}", "s", "")


def measure(runs: int) -> list:
    """The library rows, timed in the install under test."""
    try:
        return [tuple(row) for row in in_install("library", "measure_here", runs)["result"]]
    except ToolFailed as err:
        return [("library paths", str(err), "s", "")]


def measure_here(runs: int) -> list:
    from ebpfpy.isa import insn as insn_mod

    rows = []
    rows.append(_row(f"assemble (Builder) + encode_all, {N_INSNS:,} insns",
                     lambda: insn_mod.encode_all(_program(N_INSNS)), runs))
    rows.append(_row(f"Builder + build() + encode_all, pybpftrace's instruction mix, {N_INSNS:,} insns",
                     _mix_replay(N_INSNS), runs, "(bench/builder_speed.py's replay of 46 scripts, warm pool)"))
    try:
        blob = insn_mod.encode_all(_program(N_INSNS))
        rows.append(_row(f"decode, {N_INSNS:,} insns", lambda: insn_mod.decode(blob), runs))
    except Exception as err:
        rows.append((f"decode, {N_INSNS:,} insns", f"{type(err).__name__}: {err}", "s", ""))
    try:
        from ebpfpy.isa.asm import assemble
        from ebpfpy.isa.disasm import format_program

        small = _program(N_TEXT)
        text = format_program(small, with_index=False)
        rows.append(_row(f"disassemble (format_program), {N_TEXT:,} insns",
                         lambda: format_program(small, with_index=False), runs))
        rows.append(_row(f"assemble text (asm.assemble), {N_TEXT:,} insns", lambda: assemble(text), runs))
    except Exception as err:
        rows.append((f"text assembly/disassembly, {N_TEXT:,} insns", f"{type(err).__name__}: {err}", "s", ""))
    rows.extend(_map_rows(runs))
    rows.append(_row("vmlinux BTF: parse + look up task_struct", _btf, runs))
    rows.append(_row("vmlinux BTF: parse + whole C header (as `btf dump ... format c`)", _btf_header, runs))
    return rows


def _map_rows(runs: int) -> list:
    """Fill a 100k-entry hash map (BPF_MAP_UPDATE_BATCH when there is one), then time dict(m.items())."""
    name = f"hash map, {N_MAP:,} entries: dict(m.items())"
    fill_name = f"hash map, {N_MAP:,} entries: fill"
    try:
        from ebpfpy.maps import Map
        from ebpfpy.sys import bpf

        m = Map.create("hash", 8, 8, N_MAP)
        try:
            keys = [i.to_bytes(8, "little") for i in range(N_MAP)]
            vals = [(i * 3).to_bytes(8, "little") for i in range(N_MAP)]
            t = time.perf_counter()
            how = "one update() per key"
            if hasattr(bpf, "map_update_batch"):
                try:
                    bpf.map_update_batch(m.fd, keys, vals)
                    how = "bpf.map_update_batch"
                except Exception:
                    pass
            if how != "bpf.map_update_batch":
                for k, v in zip(keys, vals):
                    m.update(k, v)
            fill = time.perf_counter() - t
            samples = _timed(lambda: dict(m.items()), runs)
            got = dict(m.items())
            if len(got) != N_MAP or got[keys[7]] != vals[7]:
                return [(name, "items() returned wrong contents", "s", "")]
            return [(fill_name, [fill], "s", f"({how})"), (name, samples, "s", "")]
        finally:
            m.close()
    except Exception as err:
        return [(name, f"{type(err).__name__}: {str(err)[:100]}", "s", "")]


def _btf() -> None:
    from ebpfpy.btf import spec

    fresh = spec.BTF(open("/sys/kernel/btf/vmlinux", "rb").read())  # not the cached vmlinux()
    fresh.find_struct("task_struct")


def _btf_header() -> None:
    from ebpfpy.btf import spec
    from ebpfpy.btf.cheader import write_header  # (bench/btf_speed.py times the command itself)

    write_header(spec.BTF(open("/sys/kernel/btf/vmlinux", "rb").read()), lambda text: None)


def compile_time(runs: int) -> list:
    """Largest tools/*.bt: parse, check, compile, create maps, load every program (in process)."""
    m = Metric("compile time: largest tools/ script, source to loaded programs", "s", Target("report"),
               "in-process (in a child of the Python that runs pybpftrace): "
               "`ebpfpy.bpftrace.driver.compile_source` (parse, semantic check, codegen), "
               "then create every map and `Program.load` every probe, as the runtime does; then close all.")
    m.na["bpftrace"] = "no in-process API to time"
    try:
        got = in_install("library", "compile_time_here", runs)["result"]
    except ToolFailed as err:
        m.na["ebpfpy"] = str(err)
        return [m]
    if got["samples"]:
        m.samples["ebpfpy"] = got["samples"]
    else:
        m.na["ebpfpy"] = "no tools/ script compiled and loaded"
    m.notes.extend(got["notes"])
    return [m]


def compile_time_here(runs: int) -> dict:
    """Samples of the largest tools/ script that compiles and loads, and notes (which one, which failed)."""
    # Largest first; one that does not compile is skipped (and named), the next is tried.
    scripts = sorted(glob.glob(os.path.join(ROOT, "tools", "*.bt")), key=os.path.getsize, reverse=True)
    errors, samples, notes = [], [], []
    for path in scripts:
        try:
            samples = _timed(lambda path=path: _compile_and_load(path), runs)
        except Exception as err:
            errors.append(f"{os.path.basename(path)}: {type(err).__name__}: {str(err)[:120]}")
            continue
        notes.append(f"script: tools/{os.path.basename(path)} ({os.path.getsize(path)} bytes), "
                     f"{runs} runs; the first one ({samples[0]:.3f} s) also pays for imports and "
                     "reading vmlinux BTF")
        break
    notes.extend(f"skipped (failed): {e}" for e in errors)
    return {"samples": samples, "notes": notes}


def _compile_and_load(path: str) -> None:
    from ebpfpy.bpftrace.driver import Options, compile_source
    from ebpfpy.bpftrace.runtime import _kernel_name
    from ebpfpy.maps import Map
    from ebpfpy.progs import Program

    with open(path) as f:
        source = f.read()
    _, script = compile_source(Options(source=source, filename=path))
    maps, progs = {}, []
    try:
        for plan in script.maps.values():
            maps[plan.name] = Map.create(plan.map_type, plan.key_size, plan.value_size, plan.max_entries,
                                         name=_kernel_name(plan.name))
        for plan in script.probes:
            progs.append(Program.load(plan.prog_type, plan.builder.build(maps=maps),
                                      name=_kernel_name(plan.label or plan.probe),
                                      expected_attach_type=plan.expected_attach_type))
    finally:
        for p in progs:
            p.close()
        for mp in maps.values():
            mp.close()
