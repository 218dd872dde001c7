/* ebpfpy exporter's uprobe test object (config: exporter_uprobe.yaml): counts calls of
 * work(x) in tests/progs/uprobe_target.c by x % 4. TARGET is the binary's absolute path,
 * given at build time: -DTARGET='"/path/to/uprobe_target"'. x86-64: x is in rdi. */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"

#ifndef TARGET
#define TARGET "/usr/local/bin/uprobe_target"
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u64);
	__type(value, __u64);
} work_calls_total SEC(".maps");

SEC("uprobe/" TARGET ":work")
int count_work(struct pt_regs *ctx)
{
	__u64 key = ctx->di % 4;
	__u64 *value = bpf_map_lookup_elem(&work_calls_total, &key);
	if (!value) {
		__u64 zero = 0;
		bpf_map_update_elem(&work_calls_total, &key, &zero, 1 /* BPF_NOEXIST */);
		value = bpf_map_lookup_elem(&work_calls_total, &key);
		if (!value)
			return 0;
	}
	__sync_fetch_and_add(value, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
