"""``ebpfpy run`` prints ring buffer and perf buffer records typed through the object's BTF.

tests/bpf_objects/run_events.bpf.c (clang-19) sends, on each getpid() of this process, a
``struct event`` through ring buffer ``rb`` (reserved as libbpf-bootstrap does), a ``struct
perf_rec`` through perf event array ``events``, and 3 bytes through ring buffer ``odd``. The rule
(ebpfpy/elf/records.py): ``--event-type [MAP=]TYPE`` names the type; without it ``struct event``
is used where the object's BTF has it; a record that does not fit its type stays hex.
"""
import os
import subprocess

import pytest
from helpers import ebpfpy_run, write_vmlinux_h
from test_attach_common import own_fds

from ebpfpy.elf import ObjectError, load_object

HERE = os.path.dirname(__file__)
SRC = os.path.join(HERE, "..", "bpf_objects")

pytestmark = [pytest.mark.kernel, pytest.mark.btf, pytest.mark.clang, pytest.mark.ringbuf]


@pytest.fixture(scope="module")
def obj_path(tmp_path_factory):
    d = tmp_path_factory.mktemp("run_events")
    write_vmlinux_h(d)
    path = str(d / "run_events.o")
    subprocess.run(["clang-19", "-O2", "-g", "-target", "bpf", "-I", str(d), "-I", SRC,
                    "-c", os.path.join(SRC, "run_events.bpf.c"), "-o", path], check=True)
    return path


def run_cli(path, *args, calls=2):
    """``ebpfpy run`` filtering on this process; getpid() ``calls`` times once attached, then Ctrl-C."""
    def trigger():
        for _ in range(calls):
            os.getpid()
    stdout, _, line = ebpfpy_run(path, "--set", f"target_pid={os.getpid()}", *args, trigger=trigger)
    assert line.startswith("Attached 1 probe(s)"), line
    return stdout


def comm() -> str:
    with open(f"/proc/{os.getpid()}/comm") as f:
        return f.read().strip()


def event_block(map_name: str, n: int) -> str:
    return (f"@{map_name}:\n  pid={os.getpid()}\n  seq={n}\n  comm={comm()}\n  pair.lo=-1\n  pair.hi={n}\n"
            f"  kind=EV_GETPID\n  neg={-n}\n")


def test_struct_event_by_default(obj_path):
    """No option: ring buffer records print as ``struct event`` fields (nested structs dotted,
    enums by name, char arrays as text); perf records (8 bytes + padding, not a struct event)
    and 3-byte records stay hex."""
    out = run_cli(obj_path)
    assert event_block("rb", 1) + event_block("rb", 2) in out
    pid = os.getpid().to_bytes(4, "little").hex(" ")
    assert f"@events: {pid} 01 00 00 00" in out and f"@events: {pid} 02 00 00 00" in out
    assert out.count("@odd: 01 02 03\n") == 2
    assert "seq = 2" in out


def test_event_type_per_map(obj_path):
    """``--event-type events=perf_rec`` types the perf buffer; ``struct event`` stays for rb."""
    out = run_cli(obj_path, "--event-type", "events=perf_rec", "--event-type", "struct event", calls=3)
    for n in (1, 2, 3):
        assert f"@events:\n  pid={os.getpid()}\n  seq={n}\n" in out
        assert event_block("rb", n) in out
    assert out.count("@odd: 01 02 03\n") == 3


def test_event_type_that_fits_no_record_leaves_hex(obj_path):
    """A type for all maps that fits none of the records: everything prints raw."""
    out = run_cli(obj_path, "--event-type", "struct pair", calls=1)
    assert "@rb:\n" not in out and "@events:\n" not in out
    assert "@rb: " in out and "@events: " in out and "@odd: 01 02 03" in out


@pytest.mark.parametrize("option, message", [
    ("nope", "event type nope: no struct, union or typedef 'nope' in {o}'s BTF (a type only local variables "
             "use is not in BTF"),
    ("union event", "no struct, union or typedef 'union event'"),
    ("seq=event", "event type seq=event: 'seq' is not a ring buffer or perf event array map of {o} "
                  "(it has: rb, events, odd)"),
])
def test_event_type_errors(obj_path, option, message):
    from click.testing import CliRunner

    from ebpfpy.cli.objects import run
    fds = own_fds()
    res = CliRunner().invoke(run, [obj_path, "--duration", "0", "--event-type", option])
    assert res.exit_code == 1 and (res.exception is None or isinstance(res.exception, SystemExit)), res.output
    assert message.format(o=obj_path) in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert own_fds() == fds


@pytest.mark.parametrize("option", ["=event", "rb=", ""])
def test_event_type_syntax(obj_path, option):
    from click.testing import CliRunner

    from ebpfpy.cli.objects import run
    res = CliRunner().invoke(run, [obj_path, "--duration", "0", "--event-type", option])
    assert res.exit_code == 2 and "expected [MAP=]TYPE" in res.output and "Traceback" not in res.output


def test_record_types_from_python(obj_path):
    """The rule as a function: names resolve as C would (struct, union, typedef)."""
    from ebpfpy.elf.records import decode_record, field_lines, find_type, record_types
    with load_object(obj_path) as obj:
        btf = obj.btf
        ev = find_type(btf, "struct event")
        assert record_types(obj, []) == {"rb": ev, "odd": ev, "events": ev}
        pr = find_type(btf, "struct perf_rec")
        assert record_types(obj, [(None, "perf_rec"), ("rb", "event")]) == {"rb": ev, "odd": pr, "events": pr}
        assert decode_record(btf, pr, bytes(7)) is None  # shorter than the type
        assert decode_record(btf, pr, bytes(16)) is None  # more than a perf sample's padding
        assert decode_record(btf, pr, bytes([1, 0, 0, 0, 2, 0, 0, 0, 9, 9, 9, 9])) == {"pid": 1, "seq": 2}
        assert field_lines({"a": {"b": 1, "c": [1, 2]}, "s": "x"}) == ["a.b=1", "a.c=[1, 2]", "s=x"]
        with pytest.raises(ObjectError, match="no struct, union or typedef"):
            record_types(obj, [(None, "enum ev_kind")])
