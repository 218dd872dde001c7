#include <errno.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "shim.h"

static long ret_or_errno(long rc)
{
	return rc < 0 ? -errno : rc;
}

long ebpfpy_bpf(int cmd, void *attr, unsigned int size)
{
	return ret_or_errno(syscall(__NR_bpf, cmd, attr, size));
}

long ebpfpy_perf_event_open(void *attr, int pid, int cpu, int group_fd, unsigned long flags)
{
	return ret_or_errno(syscall(__NR_perf_event_open, attr, pid, cpu, group_fd, flags));
}

long ebpfpy_ioctl(int fd, unsigned long request, unsigned long arg)
{
	return ret_or_errno(ioctl(fd, request, arg));
}

__attribute__((noinline, used)) void ebpfpy_begin_trigger(void)
{
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline, used)) void ebpfpy_end_trigger(void)
{
	__asm__ volatile("" ::: "memory");
}
