"""Structs defined in the script, read through casts as bpftrace 0.17 reads them.

The script describes ``task_struct`` itself, with padding to the offsets BTF
gives for ``pid``, ``tgid``, ``real_parent``, ``comm`` and the ``in_execve``
bitfield, and reads ``curtask`` through it; the answers can be checked
against the builtins, and against bpftrace reading the same script.
"""
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.btf]


def _offsets():
    from ebpfpy import btf

    spec = btf.vmlinux()
    tid = spec.find_struct("task_struct")
    return {name: spec.member(tid, name) for name in ("pid", "tgid", "real_parent", "comm", "in_execve")}


def _script() -> str:
    m = _offsets()
    pid, parent, comm = m["pid"].bit_offset // 8, m["real_parent"].bit_offset // 8, m["comm"].bit_offset // 8
    assert m["tgid"].bit_offset // 8 == pid + 4
    bit = m["in_execve"].bit_offset
    return f"""
struct Ids {{ int pid; int tgid; }}
struct Task {{ char pad[{pid}]; struct Ids ids; char gap[{parent - pid - 8}]; struct Task *real_parent;
               char gap2[{comm - parent - 8}]; char comm[16]; }}
struct Flags {{ char pad[{bit // 8}]; {f"unsigned char low:{bit % 8};" if bit % 8 else ""} unsigned char in_execve:1; }}
BEGIN {{
  $t = (struct Task *)curtask;
  printf("%d %d %d %d\\n", $t->ids.pid == (int32)pid, $t->ids.tgid == (int32)pid,
         $t->real_parent->ids.tgid == (int32)curtask->real_parent->tgid, $t->comm == comm);
  printf("%d\\n", ((struct Flags *)curtask)->in_execve);
  exit();
}}
"""


def _run(tool: list) -> subprocess.CompletedProcess:
    return subprocess.run([*tool, "-e", _script()], capture_output=True, text=True, timeout=60)


def test_script_struct_members_read_the_kernel_struct():
    res = _run([sys.executable, "-m", "ebpfpy.bpftrace"])
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[1:3] == ["1 1 1 1", "0"]


@pytest.mark.bpftrace
def test_script_structs_as_bpftrace():
    ours, theirs = _run([sys.executable, "-m", "ebpfpy.bpftrace"]), _run(["bpftrace"])
    assert ours.stdout == theirs.stdout
