"""ELF reading for uprobes: symbols and vaddr -> file offset, checked against readelf."""
import os
import re
import shutil
import subprocess

import pytest

from ebpfpy.attach import ProbeNotFoundError
from ebpfpy.attach.binary import elf_image, ld_so_cache, resolve_binary

needs_readelf = pytest.mark.skipif(not shutil.which("readelf"), reason="needs binutils' readelf")


def _readelf(*args):
    return subprocess.run(["readelf", "-W", *args], capture_output=True, text=True, check=True).stdout


def _libc():
    return resolve_binary("libc")


def _symbol_value(path, name):
    for line in _readelf("--dyn-syms", path).splitlines():
        parts = line.split()
        if len(parts) >= 8 and parts[3] in ("FUNC", "IFUNC") and parts[7].split("@")[0] == name:
            return int(parts[1], 16)
    raise AssertionError(f"{name} not in {path}")


def _load_segments(path):
    out = []
    for line in _readelf("-l", path).splitlines():
        if line.strip().startswith("LOAD"):
            f = line.split()
            out.append((int(f[1], 16), int(f[2], 16), int(f[4], 16)))  # offset, vaddr, filesz
    return out


@pytest.mark.skipif(not shutil.which("ldconfig"), reason="needs ldconfig")
def test_libc_resolves_through_ld_so_cache():
    path = _libc()
    assert os.path.basename(path).startswith("libc.so")
    assert any(p == path for _s, _f, p in ld_so_cache())
    assert resolve_binary("c") == path


@needs_readelf
@pytest.mark.parametrize("name", ["malloc", "free", "getpid"])
def test_symbols_and_offsets_match_readelf(name):
    path = _libc()
    image = elf_image(path)
    vaddr = _symbol_value(path, name)
    assert image.symbol(name).vaddr == vaddr
    [(off, seg_vaddr, _)] = [s for s in _load_segments(path) if s[1] <= vaddr < s[1] + s[2]]
    assert image.vaddr_to_offset(vaddr) == vaddr - seg_vaddr + off


@needs_readelf
def test_offsets_differ_from_vaddr_where_segments_say_so():
    """Executables map text at a vaddr unlike its file offset; the translation must apply."""
    for exe in (resolve_binary("bash"), "/usr/bin/python3.11", "/usr/bin/python3"):
        if not os.path.exists(exe):
            continue
        text = [s for s in _load_segments(exe) if s[1] != s[0]]
        if text:
            off, vaddr, _ = text[0]
            assert elf_image(exe).vaddr_to_offset(vaddr + 16) == off + 16
            return
    pytest.skip("no binary here has a segment with vaddr != offset")


def test_missing_things_are_named(tmp_path):
    with pytest.raises(ProbeNotFoundError, match="binary not found: /no/such/file"):
        elf_image("/no/such/file")
    text = tmp_path / "notelf"
    text.write_text("hello")
    with pytest.raises(ProbeNotFoundError, match="not an ELF binary"):
        elf_image(str(text))
    with pytest.raises(ProbeNotFoundError, match="symbol not found: no_such_sym"):
        elf_image(_libc()).symbol("no_such_sym")
    with pytest.raises(ProbeNotFoundError, match="libdefinitelymissing"):
        resolve_binary("libdefinitelymissing")


def test_wildcard_symbols_sorted():
    hits = [s.name for s in elf_image(_libc()).match_symbols("mallo[c]*")]
    assert hits == sorted(hits) and "malloc" in hits
    assert all(re.match(r"malloc", h) for h in hits)
