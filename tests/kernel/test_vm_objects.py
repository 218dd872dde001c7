"""ebpfpy.vm on clang-built objects: the same object run by the kernel and by the VM
(subprograms, a bpf_loop callback, global data, per-CPU and hash maps), and `ebpfpy vm` on it
(C source lines from BTF line info)."""

from __future__ import annotations

import os
import subprocess

import pytest
from click.testing import CliRunner
from helpers import write_vmlinux_h

from ebpfpy.cli import main
from ebpfpy.vm import VM, VMError

pytestmark = [pytest.mark.kernel, pytest.mark.btf, pytest.mark.clang]

SRC = os.path.join(os.path.dirname(__file__), "..", "bpf_objects")


@pytest.fixture(scope="module")
def calls_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("vmobj")
    write_vmlinux_h(out)
    obj = out / "calls_data.o"
    subprocess.run(["clang-19", "-O2", "-g", "-target", "bpf", "-I", str(out), "-I", SRC, "-c",
                    os.path.join(SRC, "calls_data.bpf.c"), "-o", str(obj)], check=True)
    return str(obj)


def test_object_runs_as_in_the_kernel(calls_data):
    from ebpfpy.elf import load_object

    packet = bytes(64)
    with load_object(calls_data) as kobj:
        kobj.globals["scale"] = 10
        kobj.load()
        kernel = {name: p.program.test_run(packet).retval for name, p in kobj.programs.items()}
        kernel_calls = kobj.globals["calls"]
        kernel_names = kobj.maps["names"].lookup_raw(b"\0\0\0\0")
    vm = VM()
    obj = vm.load_object(calls_data)
    obj.globals["scale"] = 10
    got = {name: vm.run(p, packet) & 0xFFFF_FFFF for name, p in obj.programs.items()}
    assert got == kernel == {"sock_main": 4 * 10 + 2 + 5 + 6, "sock_second": 16 + 10 + (10 + 1 + 5)}
    assert obj.globals["calls"] == kernel_calls == 1
    assert obj.maps["names"].lookup_raw(b"\0\0\0\0") == kernel_names == b"from-rodata-str\0"
    assert obj.maps["per"][0] == [1]


def test_object_programs_by_name_and_section(calls_data):
    obj = VM().load_object(calls_data)
    assert obj.program("sock_second").name == "sock_second"
    with pytest.raises(VMError, match="section 'socket' holds 2 programs"):
        obj.program("socket")
    with pytest.raises(VMError, match="has 2 programs"):
        obj.program()
    with pytest.raises(VMError, match="no program or section 'nope'"):
        obj.program("nope")


def test_cli_run_and_step_on_an_object(calls_data):
    runner = CliRunner()
    result = runner.invoke(main, ["vm", "run", calls_data, "-j", "sock_main"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "r0 = 25 (0x19)"  # scale 3: 4*3 + 2 + 5, and 0+1+2+3
    assert "@names[0]: from-rodata-str" in result.output and "@per[0]: [1]" in result.output
    assert "calls = 1" in result.output
    result = runner.invoke(main, ["vm", "step", calls_data, "-j", "sock_second"])
    assert result.exit_code == 0, result.output
    assert "; calls_data.bpf.c:63: return square(4) + scale + poly(1);" in result.output
    assert "; calls_data.bpf.c:32: return x * x;" in result.output
    assert "call 0x9 <local>" in result.output
    result = runner.invoke(main, ["vm", "run", calls_data])
    assert result.exit_code == 1 and "say which (--section)" in result.output
