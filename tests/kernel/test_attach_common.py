"""Shared helpers of the attach tests (no tests here): counting programs and test binaries.

Programs are built with `ebpfpy.isa.builder`: slot 0 of an array map counts
hits, slots 1.. accumulate values a caller-supplied emitter computes (a
return value, a USDT argument), optionally only for one tgid.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence

import pytest
from helpers import emit_slot_lookup
from helpers import open_fds as own_fds  # noqa: F401  (re-exported to the attach tests)

from ebpfpy.isa.builder import R0, R1, R6, R7, Builder
from ebpfpy.maps import Map
from ebpfpy.progs import Program

PROGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "progs")

Emitter = Callable[[Builder], None]  # leaves a value in R7; ctx is in R6


def _add_to_slot(b: Builder, counts: Map, slot: int, value_reg=None) -> None:
    emit_slot_lookup(b, counts, slot, key_off=-16)
    if value_reg is None:
        b.mov(R1, 1)
    else:
        b.mov(R1, value_reg)
    b.atomic("add", 8, R0, R1, 0)


def counting_insns(counts: Map, *, tgid: int | None = None, values: Sequence[Emitter] = (),
                   extra_check: Emitter | None = None):
    """slot0 += 1; slot[i+1] += values[i](); all only when the tgid matches."""
    b = Builder()
    b.mov(R6, R1)
    if tgid is not None:
        b.call("get_current_pid_tgid")
        b.rsh(R0, 32)
        b.jne(R0, tgid, "out")
    if extra_check is not None:
        extra_check(b)
    _add_to_slot(b, counts, 0)
    for i, emit in enumerate(values, start=1):
        emit(b)
        _add_to_slot(b, counts, i, R7)
    b.label("out")
    b.mov(R0, 0)
    b.exit()
    return b.build()


def counting_prog(prog_type: str, counts: Map, **kwargs) -> Program:
    return Program.load(prog_type, counting_insns(counts, **kwargs), name="attach_test")


def new_counts(slots: int = 4) -> Map:
    return Map.create("array", key="I", value="q", max_entries=slots)


# Flag set -> suffix of the runner's prebuilt binary (tests/vm/vmrun/prebuild.py VARIANTS)
PREBUILT_SUFFIX = {("-O2",): "", ("-O0",): ".O0"}


def compile_c(source_name: str, out_dir: str, *flags: str, out_name: str | None = None) -> str:
    """gcc tests/progs/<source_name> into out_dir; returns the binary path.

    In the qemu guest (no compiler) the runner has built every program with
    -O2 into $EBPFPY_PREBUILT/<name> and with -O0 into <name>.O0; other flag
    sets are skipped there.
    """
    name = os.path.splitext(source_name)[0]
    prebuilt = os.environ.get("EBPFPY_PREBUILT")
    suffix = PREBUILT_SUFFIX.get(flags)
    if prebuilt and suffix is not None and os.path.exists(os.path.join(prebuilt, name + suffix)):
        return os.path.join(prebuilt, name + suffix)
    if not shutil.which("gcc"):
        pytest.skip(f"no gcc to build {source_name} {' '.join(flags)} (and no prebuilt copy)")
    src = os.path.join(PROGS_DIR, source_name)
    out = os.path.join(out_dir, out_name or name)
    proc = subprocess.run(["gcc", "-g", "-fno-omit-frame-pointer", *flags, "-o", out, src],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"gcc failed for {source_name}:\n{proc.stderr}")
    return out


def dynamic_events() -> dict[str, str]:
    from ebpfpy.attach.tracefs import dynamic_events as _dyn

    return _dyn()


def link_ids(attachment) -> list[int]:
    """Kernel ids of the bpf links an Attachment owns (perf links included)."""
    ids = []
    for part in attachment.parts:
        if getattr(part, "is_bpf_link", False):
            ids.append(part.info().id)
    return ids


def object_exists(kind: str, obj_id: int) -> bool:
    from ebpfpy.sys import bpf
    from ebpfpy.sys.errors import BPFError

    get = {"link": bpf.link_get_fd_by_id, "prog": bpf.prog_get_fd_by_id}[kind]
    try:
        fd = get(obj_id)
    except BPFError:
        return False
    fd.close()
    return True
