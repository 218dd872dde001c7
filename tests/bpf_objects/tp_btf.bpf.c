/* Test object: a BTF-typed raw tracepoint (attach target found through vmlinux BTF). */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"

char LICENSE[] SEC("license") = "GPL";

const volatile int target_tgid = 0;
const volatile long watch_id = -1;
__u64 seen = 0;

SEC("tp_btf/sys_enter")
int on_sys_enter(__u64 *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	if ((long)ctx[1] == watch_id)  /* sys_enter(struct pt_regs *regs, long id) */
		seen++;
	return 0;
}
