"""bpf_get_stackid stacks read back and symbolized, against the real kernel.

The C program's func_a -> func_b -> func_c makes a getpid system call from
inline assembly in func_c, so with frame pointers (-O0
-fno-omit-frame-pointer) the user stack seen at sys_enter_getpid is exactly
func_c, func_b, func_a, main, ... (a libc wrapper without a frame pointer
would hide its caller).
"""
import os
import subprocess

import pytest

from ebpfpy.events import demo
from ebpfpy.events.ringbuf import RingBuffer
from ebpfpy.events.stacks import StackFormatter, read_stack

pytestmark = [pytest.mark.kernel, pytest.mark.ringbuf]

STACK_C = r"""
#include <poll.h>
#include <unistd.h>
__attribute__((noinline)) void func_c(void)
{
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(39L) : "rcx", "r11", "memory");
}
__attribute__((noinline)) void func_b(void) { func_c(); }
__attribute__((noinline)) void func_a(void) { func_b(); }
/* Waits for a byte on stdin, calls func_a() once (or, with an argument,
 * every 10 ms), then waits for stdin again, staying alive while the test
 * symbolizes. */
int main(int argc, char **argv)
{
    char c;
    struct pollfd in = { .fd = 0, .events = POLLIN };
    (void)argv;
    if (read(0, &c, 1) != 1) return 2;
    do
        func_a();
    while (argc > 1 && poll(&in, 1, 10) == 0);
    if (read(0, &c, 1) != 1) return 3;
    return 0;
}
"""


@pytest.fixture(scope="module")
def stack_prog(tmp_path_factory):
    if os.uname().machine != "x86_64":
        pytest.skip("the test program's system call is x86-64 assembly")
    d = tmp_path_factory.mktemp("stackprog")
    src = d / "stack.c"
    src.write_text(STACK_C)
    try:
        return demo.compile_c(str(src), str(d), "stackprog", "-O0")
    except FileNotFoundError:
        pytest.skip("gcc is not installed")


def record_stacks(child, entries: int):
    """Wake `child` (a byte on its stdin) and record the stacks of its getpid
    calls until the first record arrives: (records, user ips, kernel ips),
    the ips those of the first record."""
    from ebpfpy.maps import Map

    records = []
    with Map.create("stack_trace", 4, 8 * 127, entries) as ustacks, \
            Map.create("stack_trace", 4, 8 * 127, entries) as kstacks, \
            Map.create("ringbuf", 0, 0, 1 << 14) as out, RingBuffer(out, records.extend) as rb:
        with demo.attached_on_getpid(demo.syscall_stack_program(ustacks, kstacks, out, child.pid)):
            child.stdin.write(b"1")
            child.stdin.flush()
            while not records and rb.poll(5000):
                pass
        assert records, "no stack record arrived"
        uid, kid, _ = demo.STACK_RECORD.unpack(records[0])
        return records, read_stack(ustacks, uid), read_stack(kstacks, kid)


def test_user_and_kernel_stacks_symbolized(stack_prog):
    child = subprocess.Popen([stack_prog], stdin=subprocess.PIPE)
    try:
        records, user, kernel = record_stacks(child, 64)
        assert len(records) == 1
        ustack_id, kstack_id, pid_tgid = demo.STACK_RECORD.unpack(records[0])
        assert pid_tgid >> 32 == child.pid
        assert ustack_id >= 0 and kstack_id >= 0, (ustack_id, kstack_id)

        fmt = StackFormatter()
        text = fmt.ustack(child.pid, user)
        perf = fmt.ustack(child.pid, user, mode="perf")
        ktext = fmt.kstack(kernel, indent=8)
    finally:
        child.stdin.close()
        child.wait(timeout=10)

    frames = text.splitlines()[1:]
    names = [f.strip().split("+")[0] for f in frames]
    assert names[:4] == ["func_c", "func_b", "func_a", "main"], text
    assert all(f.startswith("    ") and "+" in f for f in frames[:4])
    assert frames[0].strip() != "func_c+0"  # inside the body, past the prologue
    assert f"({stack_prog})" in perf.splitlines()[1]
    assert perf.splitlines()[1].startswith(f"\t{user[0]:x} func_c+")

    kframes = [f.strip() for f in ktext.splitlines()[1:]]
    assert kframes and all(not f.startswith("0x") for f in kframes), ktext
    assert any(f.startswith(("do_syscall_64+", "entry_SYSCALL_64")) for f in kframes), ktext
    assert ktext.startswith("\n        ")


def test_limit_and_missing_ids():
    from ebpfpy.maps import Map

    with Map.create("stack_trace", 4, 8 * 8, 4) as stacks:
        assert read_stack(stacks, 1) == ()  # never stored
        assert read_stack(stacks, -14) == ()


@pytest.mark.bpftrace
def test_same_text_as_bpftrace(stack_prog):
    """bpftrace 0.17 and ebpfpy attached together to a program repeating
    the same call path: the printf text of ustack and kstack must be
    identical. (bpftrace prints "Attaching" before it attaches, so the
    program repeats until both have seen it.)"""
    import shutil

    child = subprocess.Popen([stack_prog, "loop"], stdin=subprocess.PIPE)
    script = (f"tracepoint:syscalls:sys_enter_getpid /pid == {child.pid}/ "
              '{ printf("%s%s", ustack, kstack); exit(); }')
    bt = subprocess.Popen([shutil.which("bpftrace"), "-e", script],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert bt.stdout.readline().startswith("Attaching")
        _, user, kernel = record_stacks(child, 8)
        bt_out = bt.communicate(timeout=30)[0]  # printed while the child still runs
        fmt = StackFormatter()
        ours = fmt.ustack(child.pid, user, indent=8) + fmt.kstack(kernel, indent=8)
    finally:
        if bt.poll() is None:
            bt.kill()
            bt.wait()
        child.stdin.write(b"2")
        child.stdin.close()
        child.wait(timeout=10)
    assert "func_b+" in ours
    assert bt_out.startswith(ours), (bt_out, ours)
