/* Test object: BPF iterators (iter/task, iter/bpf_map) printing text with BPF_SEQ_PRINTF.
 * iter/task prints "pid comm" for each task of process target_tgid (0: every task) and counts
 * them; iter/bpf_map prints "map ID NAME" for each map whose name starts with "iter_".
 * ebpfpy-vm: prebuild (tests/vm's runner builds it on the host: the guest has no clang) */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

const volatile int target_tgid = 0;
__u64 tasks_seen = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} iter_marker SEC(".maps");

SEC("iter/task")
int dump_task(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;

	if (!task)
		return 0;
	if (target_tgid && task->tgid != target_tgid)
		return 0;
	tasks_seen++;
	BPF_SEQ_PRINTF(seq, "%d %s\n", task->pid, task->comm);
	return 0;
}

SEC("iter/bpf_map")
int dump_map(struct bpf_iter__bpf_map *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct bpf_map *map = ctx->map;

	if (!map)
		return 0;
	if (map->name[0] != 'i' || map->name[1] != 't' || map->name[2] != 'e' || map->name[3] != 'r'
	    || map->name[4] != '_')
		return 0;
	BPF_SEQ_PRINTF(seq, "map %u %s\n", map->id, map->name);
	return 0;
}
