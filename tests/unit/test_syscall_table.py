"""The syscall number table behind the raw_syscalls dispatch of ``t:syscalls:sys_*_*`` wildcards."""
from ebpfpy.attach.syscalls import raw_syscalls_probe, syscall_numbers, syscall_of


def test_x86_64_numbers_are_the_abi():
    numbers = syscall_numbers("x86_64")
    # spot checks of the ABI, including the renamed entry points and the gap before 424
    assert numbers["read"] == 0
    assert numbers["newstat"] == 4 and "stat" not in numbers
    assert numbers["newuname"] == 63
    assert numbers["umount"] == 166
    assert numbers["sendfile64"] == 40
    assert numbers["rseq"] == 334
    assert numbers["pidfd_send_signal"] == 424
    assert numbers["file_setattr"] == 469


def test_numbers_are_unique():
    numbers = syscall_numbers("x86_64")
    assert len(set(numbers.values())) == len(numbers)


def test_unknown_machine_has_no_table():
    assert syscall_numbers("no-such-arch") == {}


def test_syscall_of_probe_names():
    if not syscall_numbers():
        return  # another architecture: nothing is dispatched
    assert syscall_of("tracepoint:syscalls:sys_enter_openat") == ("sys_enter", syscall_numbers()["openat"])
    assert syscall_of("tracepoint:syscalls:sys_exit_read") == ("sys_exit", 0)
    assert syscall_of("tracepoint:syscalls:sys_enter_no_such_call") is None
    assert syscall_of("tracepoint:sched:sched_switch") is None
    assert raw_syscalls_probe("sys_exit") == "rawtracepoint:sys_exit"
