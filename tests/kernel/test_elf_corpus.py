"""Objects from the real world: Debian's libbpf-tools, loaded by ebpfpy and by libbpf (bpftool).

Each libbpf-tools executable embeds its BPF object as an ELF image (a BPF skeleton).
We cut every image with e_machine EM_BPF out of the package's files, then load each
object twice: ``bpftool prog loadall OBJ DIR pinmaps MAPDIR`` (libbpf, all programs
or nothing) and ``ebpfpy.load_object(OBJ).load()``.  Every object bpftool loads must
load with ebpfpy too, each program with the same type, name and xlated instructions
(map references compared by map name) and the object's maps with the same
definitions; ``KNOWN_GAPS`` lists, with reasons, the objects where that does not
hold yet.  An object only ebpfpy loads is a difference as well (``EBPFPY_ONLY``).
Objects neither can load are recorded with both reasons and printed in the summary
(``pytest -s`` shows it).

In the qemu guests (tests/vm/run), which have kprobes and BPF trampolines but neither dpkg
nor bpftool, the runner ships the objects it cut on the host and bpftool
(``$EBPFPY_LIBBPF_TOOLS``, ``$EBPFPY_BPFTOOL``; tests/vm/vmrun/corpus.py).
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.btf, pytest.mark.slow]

# The corpus is cut out of the package by the VM runner's module, so that the runner (which
# ships the objects into the qemu guests, where there is no dpkg) and this test agree on it.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vm"))
from vmrun import corpus as libbpf_tools  # noqa: E402

# Objects bpftool loads that ebpfpy does not load identically yet: name -> why.
KNOWN_GAPS: dict[str, str] = {}
# Objects ebpfpy loads that bpftool (libbpf 1.1) refuses: name -> why that is right.
EBPFPY_ONLY: dict[str, str] = {}


# -- the corpus --------------------------------------------------------------------------

def bpftool() -> str | None:
    """The reference: `$EBPFPY_BPFTOOL` (the qemu guest's, kept off its PATH), else bpftool on PATH."""
    return os.environ.get(libbpf_tools.BPFTOOL_ENV) or shutil.which("bpftool")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, str]:
    """name -> path of each object: the ones the VM runner shipped (`$EBPFPY_LIBBPF_TOOLS`),
    else cut out of the installed package once per test run."""
    if bpftool() is None:
        pytest.skip("bpftool (the libbpf reference) is not installed")
    shipped = os.environ.get(libbpf_tools.OBJECTS_ENV)
    if shipped:
        objs = libbpf_tools.objects_in(shipped)
    else:
        files = libbpf_tools.package_files()
        if not files:
            pytest.skip(f"{libbpf_tools.PACKAGE} is not installed (apt-get install {libbpf_tools.PACKAGE})")
        objs = libbpf_tools.extract(files, str(tmp_path_factory.mktemp("libbpf-tools")))
    if not objs:
        pytest.skip(f"no embedded BPF objects found in {libbpf_tools.PACKAGE}")
    return objs


# -- one load, described --------------------------------------------------------------------

@dataclass
class Loaded:
    ok: bool
    reason: str = ""
    programs: dict[str, tuple] = field(default_factory=dict)  # name -> (type, name, xlated)
    maps: list[tuple] = field(default_factory=list)             # sorted map definitions


def _map_def(info) -> tuple:
    return (info.name, info.type, info.key_size, info.value_size, info.max_entries, info.flags,
            info.map_extra, info.btf_key_type_id, info.btf_value_type_id, bool(info.btf_id))


def _map_name(map_id: int, names: dict[int, str]) -> str:
    from ebpfpy.sys import bpf
    if map_id not in names:
        with bpf.map_get_fd_by_id(map_id) as fd:
            names[map_id] = bpf.map_info(fd).name
    return names[map_id]


def _program(prog_fd, names: dict[int, str]) -> tuple:
    """(type, kernel name, xlated code with map ids replaced by a hash of the map's name)."""
    import zlib

    from ebpfpy.sys import bpf
    info = bpf.prog_info(prog_fd)
    code = bytearray(info.xlated)
    i = 0
    while i < len(code) // 8:
        if code[i * 8] == 0x18:
            if code[i * 8 + 1] >> 4 in (1, 2, 5, 6):  # map fd / value / idx / idx value: a map id
                (mid,) = struct.unpack_from("<I", code, i * 8 + 4)
                struct.pack_into("<I", code, i * 8 + 4, zlib.crc32(_map_name(mid, names).encode()))
            i += 2
        else:
            i += 1
    return info.type, info.name, bytes(code)


def _first_line(text: str, *keys: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for key in keys:
        hit = next((ln for ln in lines if key in ln), None)
        if hit:
            return hit[:200]
    return (lines[-1] if lines else "")[:200]


def load_with_bpftool(path: str, bpffs: str) -> Loaded:
    from ebpfpy.sys import bpf
    progs_dir, maps_dir = os.path.join(bpffs, "progs"), os.path.join(bpffs, "maps")
    try:
        res = subprocess.run([bpftool(), "prog", "loadall", path, progs_dir, "pinmaps", maps_dir],
                             capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            why = _first_line(res.stderr, "failed to resolve CO-RE", "failed to find kernel BTF",
                              "failed to create", "BPF program load failed", "Error")
            return Loaded(False, why)
        out, names = Loaded(True), {}
        for name in sorted(os.listdir(progs_dir)):
            with bpf.obj_get(os.path.join(progs_dir, name)) as fd:
                out.programs[name] = _program(fd, names)
        for name in os.listdir(maps_dir) if os.path.isdir(maps_dir) else ():  # no maps: no directory
            with bpf.obj_get(os.path.join(maps_dir, name)) as fd:
                out.maps.append(_map_def(bpf.map_info(fd)))
        out.maps.sort()
        return out
    finally:
        shutil.rmtree(progs_dir, ignore_errors=True)
        shutil.rmtree(maps_dir, ignore_errors=True)


def load_with_ebpfpy(path: str) -> Loaded:
    from ebpfpy.elf import ObjectError, load_object
    from ebpfpy.sys.errors import BPFError
    try:
        obj = load_object(path)
    except ObjectError as e:
        return Loaded(False, str(e).replace(path + ": ", ""))
    with obj:
        try:
            obj.load()
        except (ObjectError, BPFError, OSError) as e:
            return Loaded(False, str(e).replace(path + ": ", "")[:300])
        out, names = Loaded(True), {}
        for name, prog in obj.programs.items():
            if prog.program is not None:
                out.programs[name] = _program(prog.program, names)
        out.maps = sorted(_map_def(m.info()) for m in obj.maps.values())
        return out


# -- the comparison ------------------------------------------------------------------------------

def _differences(theirs: Loaded, ours: Loaded) -> list[str]:
    diffs = []
    if sorted(theirs.programs) != sorted(ours.programs):
        diffs.append(f"programs: bpftool {sorted(theirs.programs)}, ebpfpy {sorted(ours.programs)}")
    for name in sorted(set(theirs.programs) & set(ours.programs)):
        (tt, tn, tx), (ot, on, ox) = theirs.programs[name], ours.programs[name]
        if (tt, tn) != (ot, on):
            diffs.append(f"{name}: type/name {(tt, tn)} != {(ot, on)}")
        elif tx != ox:
            first = next((i for i in range(0, min(len(tx), len(ox)), 8) if tx[i:i + 8] != ox[i:i + 8]),
                         min(len(tx), len(ox)))
            diffs.append(f"{name}: xlated differs ({len(tx) // 8} vs {len(ox) // 8} insns, "
                         f"first at insn {first // 8})")
    if theirs.maps != ours.maps:
        only_t = sorted(set(theirs.maps) - set(ours.maps))
        only_o = sorted(set(ours.maps) - set(theirs.maps))
        diffs.append(f"maps: bpftool only {only_t}, ebpfpy only {only_o}")
    return diffs


def test_libbpf_tools_corpus_loads_like_libbpf(corpus):
    from helpers import open_fds

    from ebpfpy.bpffs import temp_dir
    from ebpfpy.elf import load_object
    load_object(next(iter(corpus.values()))).close()  # first-use caches (vmlinux BTF...) before counting fds
    results: dict[str, tuple[Loaded, Loaded]] = {}
    fds = open_fds()
    with temp_dir("ebpfpy-corpus-") as bpffs:
        for name, path in corpus.items():
            results[name] = (load_with_bpftool(path, bpffs), load_with_ebpfpy(path))
        assert os.listdir(bpffs) == []  # every pin removed
    assert open_fds() == fds  # every program, map and BTF object closed

    identical, differ, ebpfpy_failed, ebpfpy_only, neither = {}, {}, {}, {}, {}
    progs_theirs = progs_same = 0
    for name, (theirs, ours) in results.items():
        if theirs.ok and ours.ok:
            diffs = _differences(theirs, ours)
            progs_theirs += len(theirs.programs)
            progs_same += sum(1 for p, v in theirs.programs.items() if ours.programs.get(p) == v)
            (differ.__setitem__(name, "; ".join(diffs)) if diffs else identical.__setitem__(name, ""))
        elif theirs.ok:
            progs_theirs += len(theirs.programs)
            ebpfpy_failed[name] = ours.reason
        elif ours.ok:
            ebpfpy_only[name] = theirs.reason
        else:
            neither[name] = f"bpftool: {theirs.reason} | ebpfpy: {ours.reason}"

    loaded_theirs = sum(1 for t, _ in results.values() if t.ok)
    loaded_ours = sum(1 for _, o in results.values() if o.ok)
    print(f"\nlibbpf-tools corpus: {len(results)} objects; bpftool loads {loaded_theirs}, ebpfpy loads "
          f"{loaded_ours}, identical {len(identical)} ({progs_same} of {progs_theirs} programs bpftool loads)")
    for title, group in (("different", differ), ("bpftool only", ebpfpy_failed), ("ebpfpy only", ebpfpy_only),
                         ("neither", neither)):
        for name, why in sorted(group.items()):
            print(f"  {title}: {name}: {why}")

    gaps = {**differ, **ebpfpy_failed}
    assert {n: gaps[n] for n in sorted(set(gaps) - set(KNOWN_GAPS))} == {}, \
        "objects bpftool loads that ebpfpy does not load identically"
    fixed = sorted(n for n in KNOWN_GAPS if n in identical)
    assert fixed == [], "these load identically now: remove them from KNOWN_GAPS"
    assert {n: ebpfpy_only[n] for n in sorted(set(ebpfpy_only) - set(EBPFPY_ONLY))} == {}, \
        "objects ebpfpy loads that libbpf refuses"
    assert progs_same == progs_theirs - sum(len(results[n][0].programs) for n in KNOWN_GAPS if n in gaps)
    assert loaded_theirs > 0, "bpftool loaded nothing: the comparison would prove nothing"
