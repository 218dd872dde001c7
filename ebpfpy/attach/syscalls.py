"""System call numbers, named as the kernel names its syscall tracepoints.

Why: ``t:syscalls:sys_enter_*`` is ~360 tracepoints. Attaching a program to
each is quick, but detaching is not: closing each perf event waits for an
RCU grace period under the kernel's ``event_mutex``, ~40 ms apiece, so a
wildcard run took 15 s to exit. Every syscall tracepoint is also reached
through the raw tracepoints ``sys_enter``/``sys_exit`` (the ones behind
``raw_syscalls:*``), whose arguments are the task's saved registers and the
syscall number (or return value), so one program there can stand for all of
them if it knows which syscall number belongs to which tracepoint. The
kernel does not export that mapping (``sys_call_table`` is not in kallsyms),
but syscall numbers are ABI and never change, so it can be a table.

The syscall tracepoints ignore 32-bit (compat) syscalls, whose numbers are
the i386 ones; the registers tell them apart (``cs`` is the 32-bit user code
segment), so the program skips them too (``COMPAT_CS``).

The x86-64 table: numbers from the uapi ``asm/unistd_64.h`` (plus the
syscalls added after the header Debian ships: 335-336, 451-469), names as
the kernel's ``SYSCALL_DEFINE`` (``stat`` is ``newstat``, ``umount2`` is
``umount``, ``sendfile`` is ``sendfile64``...). ``tests/kernel/test_syscall_table.py``
checks it against the ``__syscall_nr`` the tracepoints record. A name not in
the table (a syscall newer than it, another architecture) is simply attached
the slow way.
"""
from __future__ import annotations

import functools
import os
import re

# Index = syscall number; "-" = a number without a tracepoint name; "#N" = continue at N.
_X86_64 = """
read write open close newstat newfstat newlstat poll lseek mmap mprotect munmap brk rt_sigaction
rt_sigprocmask rt_sigreturn ioctl pread64 pwrite64 readv writev access pipe select sched_yield
mremap msync mincore madvise shmget shmat shmctl dup dup2 pause nanosleep getitimer alarm
setitimer getpid sendfile64 socket connect accept sendto recvfrom sendmsg recvmsg shutdown bind
listen getsockname getpeername socketpair setsockopt getsockopt clone fork vfork execve exit
wait4 kill newuname semget semop semctl shmdt msgget msgsnd msgrcv msgctl fcntl flock fsync
fdatasync truncate ftruncate getdents getcwd chdir fchdir rename mkdir rmdir creat link unlink
symlink readlink chmod fchmod chown fchown lchown umask gettimeofday getrlimit getrusage sysinfo
times ptrace getuid syslog getgid setuid setgid geteuid getegid setpgid getppid getpgrp setsid
setreuid setregid getgroups setgroups setresuid getresuid setresgid getresgid getpgid setfsuid
setfsgid getsid capget capset rt_sigpending rt_sigtimedwait rt_sigqueueinfo rt_sigsuspend
sigaltstack utime mknod uselib personality ustat statfs fstatfs sysfs getpriority setpriority
sched_setparam sched_getparam sched_setscheduler sched_getscheduler sched_get_priority_max
sched_get_priority_min sched_rr_get_interval mlock munlock mlockall munlockall vhangup
modify_ldt pivot_root _sysctl prctl arch_prctl adjtimex setrlimit chroot sync acct settimeofday
mount umount swapon swapoff reboot sethostname setdomainname iopl ioperm create_module
init_module delete_module get_kernel_syms query_module quotactl nfsservctl getpmsg putpmsg
afs_syscall tuxcall security gettid readahead setxattr lsetxattr fsetxattr getxattr lgetxattr
fgetxattr listxattr llistxattr flistxattr removexattr lremovexattr fremovexattr tkill time futex
sched_setaffinity sched_getaffinity set_thread_area io_setup io_destroy io_getevents io_submit
io_cancel get_thread_area lookup_dcookie epoll_create epoll_ctl_old epoll_wait_old
remap_file_pages getdents64 set_tid_address restart_syscall semtimedop fadvise64 timer_create
timer_settime timer_gettime timer_getoverrun timer_delete clock_settime clock_gettime
clock_getres clock_nanosleep exit_group epoll_wait epoll_ctl tgkill utimes vserver mbind
set_mempolicy get_mempolicy mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify
mq_getsetattr kexec_load waitid add_key request_key keyctl ioprio_set ioprio_get inotify_init
inotify_add_watch inotify_rm_watch migrate_pages openat mkdirat mknodat fchownat futimesat
newfstatat unlinkat renameat linkat symlinkat readlinkat fchmodat faccessat pselect6 ppoll
unshare set_robust_list get_robust_list splice tee sync_file_range vmsplice move_pages utimensat
epoll_pwait signalfd timerfd_create eventfd fallocate timerfd_settime timerfd_gettime accept4
signalfd4 eventfd2 epoll_create1 dup3 pipe2 inotify_init1 preadv pwritev rt_tgsigqueueinfo
perf_event_open recvmmsg fanotify_init fanotify_mark prlimit64 name_to_handle_at
open_by_handle_at clock_adjtime syncfs sendmmsg setns getcpu process_vm_readv process_vm_writev
kcmp finit_module sched_setattr sched_getattr renameat2 seccomp getrandom memfd_create
kexec_file_load bpf execveat userfaultfd membarrier mlock2 copy_file_range preadv2 pwritev2
pkey_mprotect pkey_alloc pkey_free statx io_pgetevents rseq uretprobe uprobe
#424
pidfd_send_signal io_uring_setup io_uring_enter io_uring_register open_tree move_mount fsopen
fsconfig fsmount fspick pidfd_open clone3 close_range openat2 pidfd_getfd faccessat2
process_madvise epoll_pwait2 mount_setattr quotactl_fd landlock_create_ruleset landlock_add_rule
landlock_restrict_self memfd_secret process_mrelease futex_waitv set_mempolicy_home_node
cachestat fchmodat2 map_shadow_stack futex_wake futex_wait futex_requeue statmount listmount
lsm_get_self_attr lsm_set_self_attr lsm_list_modules mseal setxattrat getxattrat listxattrat
removexattrat open_tree_attr file_getattr file_setattr
"""

_TABLES = {"x86_64": _X86_64}

# tracepoint:syscalls:sys_enter_NAME / sys_exit_NAME -> (raw tracepoint event, NAME)
_SYSCALL_PROBE = re.compile(r"tracepoint:syscalls:(sys_enter|sys_exit)_(\w+)$")


@functools.cache
def syscall_numbers(machine: str | None = None) -> dict:
    """``{tracepoint syscall name: number}`` for ``machine`` (default: this one); empty if unknown."""
    text = _TABLES.get(machine or os.uname().machine)
    if text is None:
        return {}
    numbers, nr = {}, 0
    for word in text.split():
        if word.startswith("#"):
            nr = int(word[1:])
            continue
        if word != "-":
            numbers[word] = nr
        nr += 1
    return numbers


def syscall_of(probe: str) -> tuple | None:
    """``("sys_enter", nr)`` for ``tracepoint:syscalls:sys_enter_read``; None if not a known syscall probe."""
    match = _SYSCALL_PROBE.match(probe)
    if match is None:
        return None
    nr = syscall_numbers().get(match.group(2))
    return None if nr is None else (match.group(1), nr)


# x86-64's __USER32_CS (GDT entry 4, RPL 3): the code segment a 32-bit process's syscall saves.
COMPAT_CS = 0x23


def raw_syscalls_probe(event: str) -> str:
    """The raw tracepoint every ``syscalls:<event>_*`` tracepoint's syscall also passes through:
    its arguments are ``(struct pt_regs *regs, long id)`` (``long ret`` for ``sys_exit``)."""
    return f"rawtracepoint:{event}"
