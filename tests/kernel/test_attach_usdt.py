"""USDT probes on a C program built at -O0 (memory args) and -O2 (register, constant, SIB args)."""
import os
import subprocess

import pytest
from test_attach_common import (
    compile_c,
    counting_prog,
    dynamic_events,
    new_counts,
    own_fds,
)

from ebpfpy.attach import ProbeNotFoundError, attach, attach_usdt, expand
from ebpfpy.attach.usdt import emit_usdt_arg, read_probes
from ebpfpy.isa.builder import R6, R7

pytestmark = [pytest.mark.kernel, pytest.mark.uprobes]

N = 9


@pytest.fixture(scope="module", params=["-O0", "-O2"])
def target(request, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("usdt"))
    return compile_c("usdt_target.c", out, request.param, out_name=f"usdt_target{request.param}")


def run(target, n=N):
    return int(subprocess.run([target, str(n)], capture_output=True, text=True, check=True).stdout)


def arg_emitters(site):
    def make(arg):
        return lambda b: emit_usdt_arg(b, arg, R7, R6, -8)

    return [make(a) for a in site.args]


def _prog_for(site, counts):
    return counting_prog("kprobe", counts, values=arg_emitters(site))


def test_notes_parsed(target):
    sites = {p.name: p for p in read_probes(target)}
    assert set(sites) == {"hit", "konst", "idx"}
    assert all(p.provider == "ebpfpy_test" for p in sites.values())
    assert [a.size for a in sites["hit"].args] == [4, 2, 8]
    assert all(a.signed for a in sites["hit"].args)
    assert sites["konst"].args[0].kind == "const" and sites["konst"].args[0].value == 5
    assert sites["hit"].semaphore and sites["hit"].semaphore_offset


def test_hit_arguments_and_semaphore(target):
    assert run(target) == 0  # no probe attached: the semaphore stays 0
    [site] = expand(f"usdt:{target}:ebpfpy_test:hit")
    with new_counts() as counts, _prog_for(site, counts) as prog:
        with attach_usdt(prog, target, "ebpfpy_test", "hit"):
            seen = run(target)
        assert counts[0] == N
        assert counts[1] == sum(range(1, N + 1))
        assert counts[2] == -sum(range(1, N + 1))  # a short, sign-extended
        assert counts[3] == sum(i * 1000000007 for i in range(1, N + 1))
    assert seen == N  # the kernel raised the semaphore through ref_ctr_offset
    assert run(target) == 0  # ... and lowered it again when we detached


def test_constant_and_indexed_arguments(target):
    for name, expected in (("konst", 5 * N), ("idx", sum(i * 10 + i % 4 for i in range(1, N + 1)))):
        [site] = expand(f"usdt:{target}:{name}")  # provider omitted
        with new_counts() as counts, _prog_for(site, counts) as prog:
            with attach(prog, f"U:{target}:ebpfpy_test:{name}")[0]:
                run(target)
            assert counts[0] == N, name
            assert counts[1] == expected, name


def test_wildcards_and_missing_probe(target):
    assert {p.name for p in expand(f"usdt:{target}:ebpfpy_test:*")} == {"hit", "konst", "idx"}
    assert {p.name for p in expand(f"usdt:{target}:*:[hk]*")} == {"hit", "konst"}
    with pytest.raises(ProbeNotFoundError, match="USDT probe not found: ebpfpy_test:nope"):
        expand(f"usdt:{target}:ebpfpy_test:nope")
    with pytest.raises(ProbeNotFoundError, match="/no/such/bin"):
        expand("usdt:/no/such/bin:p:n")


def test_usdt_teardown_leaves_nothing(target):
    before = own_fds()
    [site] = expand(f"usdt:{target}:ebpfpy_test:hit")
    with new_counts() as counts, _prog_for(site, counts) as prog:
        attach_usdt(prog, target, "ebpfpy_test", "hit").close()
    assert own_fds() == before
    assert all(not text.strip() for text in dynamic_events().values())


SYSTEM_PYTHON = "/usr/bin/python3.11"  # Debian's build carries USDT notes guarded by semaphores


@pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON), reason="needs Debian's python3.11")
def test_python_gc_start_by_pid():
    """A real-world note (`-4@112(%rsp)`, a stack argument) and semaphore, in one process given by pid."""
    [site] = expand(f"usdt:{SYSTEM_PYTHON}:python:gc__start")
    generation = site.args[0]
    assert generation.size == 4 and generation.signed

    def only_gen2(b):
        emit_usdt_arg(b, generation, R7, R6, -8)
        b.jne(R7, 2, "out")

    # Interpreter shutdown runs gen-2 collections too: detach before letting the child exit.
    script = "import gc, sys\nsys.stdin.readline()\nfor _ in range(17): gc.collect(2)\n" \
             "print('done', flush=True)\nsys.stdin.readline()\n"
    child, other = (subprocess.Popen([SYSTEM_PYTHON, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True) for _ in range(2))
    try:
        with new_counts() as counts, counting_prog("kprobe", counts, extra_check=only_gen2) as prog:
            with attach(prog, f"usdt:{SYSTEM_PYTHON}:python:gc__start", pid=child.pid)[0]:
                for proc in (other, child):  # other is not the pid asked for: not counted
                    proc.stdin.write("go\n")
                    proc.stdin.flush()
                    assert proc.stdout.readline() == "done\n"
            assert counts[0] == 17
            for proc in (other, child):
                proc.communicate("exit\n", timeout=20)
    finally:
        for proc in (child, other):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
