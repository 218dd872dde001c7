/* Test object: CO-RE reads of task_struct, global data in .data/.rodata/.bss,
 * BTF-defined hash, array and ringbuf maps, static and global subprograms. */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"

char LICENSE[] SEC("license") = "GPL";

const volatile int target_tgid = 0;      /* .rodata: set from Python before load */
const volatile __u64 magic = 0x1234;     /* .rodata */
int hits = 0;                            /* .bss */
__u64 last_seen = 7;                     /* .data */
char tag[8] = "ebpfpy";                  /* .data */
__u64 reset_bit = 99;                    /* .data: task->sched_reset_on_fork, a bitfield */

struct event {
	__u32 tgid;
	__u32 ppid;
	__u64 magic;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct event);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb SEC(".maps");

/* local flavour of the kernel struct: matched by name without the ___x suffix */
struct task_struct___mine {
	int tgid;
	struct task_struct___mine *real_parent;
} __attribute__((preserve_access_index));

static __noinline __u32 parent_tgid(struct task_struct *task)
{
	struct task_struct *parent = CORE_READ(task, real_parent);
	return CORE_READ(parent, tgid);
}

__noinline int bump(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (!v)
		return 0;
	__sync_fetch_and_add(v, 1);
	return 1;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid != target_tgid)
		return 0;
	struct task_struct *task = (void *)bpf_get_current_task();
	struct task_struct___mine *mine = (void *)task;
	struct event ev = {};
	ev.tgid = CORE_READ(mine, tgid);
	ev.ppid = parent_tgid(task);
	ev.magic = magic;
	bpf_get_current_comm(ev.comm, sizeof(ev.comm));
	bpf_map_update_elem(&events, &tgid, &ev, 0);
	hits++;
	reset_bit = CORE_READ_BITFIELD(task, sched_reset_on_fork);
	last_seen = ev.ppid;
	bump(0);
	bump(CORE_FIELD_EXISTS(task, pid) + CORE_FIELD_EXISTS(mine, tgid));   /* index 2 */
	__u64 sz = CORE_TYPE_SIZE(struct list_head);
	__u32 k = 3;
	bpf_map_update_elem(&counters, &k, &sz, 0);
	struct event *out = bpf_ringbuf_reserve(&rb, sizeof(*out), 0);
	if (out) {
		*out = ev;
		bpf_ringbuf_submit(out, 0);
	}
	return 0;
}

SEC("tp/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid != target_tgid)
		return 0;
	bump(1);
	return 0;
}
