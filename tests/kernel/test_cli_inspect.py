"""`ebpfpy prog` / `ebpfpy map` through click's CliRunner, on objects this test loads."""
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from ebpfpy.cli import main
from ebpfpy.cli.inspect import format_entry, hex_bytes
from ebpfpy.isa.insn import Insn
from ebpfpy.maps import Map
from ebpfpy.progs import Program


def run(*args):
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.output


def test_hex_formats():
    assert hex_bytes(bytes([1, 0xAB])) == "01 ab"
    assert hex_bytes(bytes(range(17))) == (
        "00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f\n10")
    assert format_entry(bytes(4), bytes(20), 20) == (
        "key:\n00 00 00 00\nvalue:\n" + hex_bytes(bytes(20)))
    assert format_entry(bytes(8), bytes(16), 16).startswith("key: 00 00 00 00 00 00 00 00  value: 00")
    assert format_entry(bytes(12), bytes(16), 16).startswith("key: 00")
    assert "\nvalue: 00" in format_entry(bytes(12), bytes(16), 16)
    assert format_entry(b"\x01\x00\x00\x00", bytes(8), 8) == (
        "key: 01 00 00 00  value: 00 00 00 00 00 00 00 00")
    assert format_entry(b"\x01", bytes([1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]), 4, ncpus=2) == (
        "key:\n01\nvalue (CPU 00): 01 00 00 00\nvalue (CPU 01): 02 00 00 00")


@pytest.fixture
def objects():
    m = Map.create("hash", key="I", value="Q", max_entries=8, name="cli_hash")
    m[1] = 0x2A
    m[2] = 0x0102
    p = Program.load("socket_filter", [Insn(0xB7, 0, 0, 0, 3), Insn(0x95)], name="cli_prog")
    yield m, p
    m.close()
    p.close()


@pytest.mark.kernel
def test_map_list_and_show(objects):
    m, _ = objects
    mid = m.info().id
    code, out = run("map", "list")
    assert code == 0
    assert re.search(rf"^{mid}: hash  name cli_hash  flags 0x0\n\tkey 4B  value 8B  max_entries 8", out, re.M)
    code, out = run("map", "show", str(mid))
    assert code == 0 and out.startswith(f"{mid}: hash  name cli_hash")


@pytest.mark.kernel
def test_map_dump_hex(objects):
    m, _ = objects
    code, out = run("map", "dump", str(m.info().id))
    assert code == 0
    lines = out.splitlines()
    assert sorted(lines[:-1]) == [
        "key: 01 00 00 00  value: 2a 00 00 00 00 00 00 00",
        "key: 02 00 00 00  value: 02 01 00 00 00 00 00 00",
    ]
    assert lines[-1] == "Found 2 elements"


@pytest.mark.kernel
def test_map_dump_percpu():
    with Map.create("percpu_array", value="I", max_entries=1, name="cli_pcpu") as m:
        m[0] = list(range(1, m.ncpus + 1))
        code, out = run("map", "dump", str(m.info().id))
    assert code == 0
    assert out.startswith("key:\n00 00 00 00\nvalue (CPU 00): 01 00 00 00\n")
    assert out.rstrip().endswith("Found 1 element")


@pytest.mark.kernel
def test_prog_list_show_dump(objects):
    _, p = objects
    info = p.info()
    code, out = run("prog", "list")
    assert code == 0
    assert f"{info.id}: socket_filter  name cli_prog  tag {info.tag_hex}  gpl\n" in out
    code, out = run("prog", "show", str(info.id))
    assert code == 0
    assert re.match(rf"{info.id}: socket_filter  name cli_prog  tag {info.tag_hex}  gpl\n"
                    r"\tloaded_at \S+  uid 0\n\txlated 16B  jited \d+B", out)
    code, out = run("prog", "dump", str(info.id))
    assert code == 0
    assert out == "   0: (b7) r0 = 3\n   1: (95) exit\n"


@pytest.mark.kernel
@pytest.mark.skipif(shutil.which("bpftool") is None, reason="no bpftool")
def test_prog_show_matches_bpftool(objects):
    _, p = objects
    pid = str(p.info().id)
    ours = run("prog", "show", pid)[1]
    theirs = subprocess.run(["bpftool", "prog", "show", "id", pid], capture_output=True, text=True).stdout
    assert ours.splitlines()[:3] == theirs.splitlines()[:3]


@pytest.mark.kernel
@pytest.mark.skipif(shutil.which("bpftool") is None, reason="no bpftool")
@pytest.mark.parametrize("kind,key,value,entries", [
    ("hash", "I", "16s", {3: b"abcdefghijklmnop"}),
    ("hash", "16s", "24s", {b"k" * 16: b"v" * 24}),
    ("percpu_hash", "I", "Q", {1: 5}),
    ("array", "I", "Q", {0: 1, 1: 2}),
])
def test_map_dump_matches_bpftool(kind, key, value, entries):
    with Map.create(kind, key=key, value=value, max_entries=4) as m:
        for k, v in entries.items():
            m[k] = v
        mid = str(m.info().id)
        ours = run("map", "dump", mid)[1]
        theirs = subprocess.run(["bpftool", "map", "dump", "id", mid], capture_output=True, text=True).stdout
    assert sorted(ours.strip().split("\n")) == sorted(theirs.strip().split("\n"))


@pytest.mark.kernel
def test_missing_ids_are_clean_errors():
    for args in (("prog", "show", "999999999"), ("prog", "dump", "999999999"), ("map", "dump", "999999999")):
        code, out = run(*args)
        assert code == 1 and out.startswith("ERROR: can't get") and "Traceback" not in out
