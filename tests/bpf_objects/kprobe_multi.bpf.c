/* Test object: kprobe_multi links by section name.  kprobe.multi/__x64_sys_get*id counts each
 * entry of process target_tgid by function address (bpf_get_func_ip) in `calls`; the
 * kretprobe.multi program counts getpgid's returns and sums their values.  (Since 6.9 the
 * argument-less syscalls' wrappers, getpid and getppid among them, are inlined into
 * x64_sys_call and are not in available_filter_functions: the tests count getpgid and getsid.)
 * ebpfpy-vm: prebuild (tests/vm's runner builds it on the host: the guest has no clang) */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

const volatile int target_tgid = 0;
__u64 rets = 0, ret_sum = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, __u64);
} calls SEC(".maps");

static __always_inline int ours(void)
{
	return !target_tgid || (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("kprobe.multi/__x64_sys_get*id")
int count_entry(struct pt_regs *ctx)
{
	__u64 ip, one = 1, *n;

	if (!ours())
		return 0;
	ip = bpf_get_func_ip(ctx);
	n = bpf_map_lookup_elem(&calls, &ip);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&calls, &ip, &one, BPF_NOEXIST);
	return 0;
}

SEC("kretprobe.multi/__x64_sys_getpgid")
int count_return(struct pt_regs *ctx)
{
	if (!ours())
		return 0;
	rets++;
	ret_sum += PT_REGS_RC(ctx);
	return 0;
}
