/* Test object: a CO-RE read of a field the running kernel does not have. */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct task_struct___fake {
	int no_such_field_in_kernel;
} __attribute__((preserve_access_index));

SEC("tracepoint/syscalls/sys_enter_getpid")
int read_missing(void *ctx)
{
	struct task_struct___fake *t = (void *)bpf_get_current_task();
	return CORE_READ(t, no_such_field_in_kernel);
}
