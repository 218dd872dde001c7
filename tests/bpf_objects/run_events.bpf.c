/* Test object: ring buffer and perf buffer records typed through BTF, as `ebpfpy run` prints them.
 * On each getpid() of process target_pid (set before load) on_getpid sends
 * - a struct event (libbpf-bootstrap style: reserved in ring buffer rb, the struct only a local's
 *   type, kept in BTF by the unused global pointer as cilium/ebpf's bpf2go -type asks);
 * - a struct perf_rec through perf event array events (bpf_perf_event_output);
 * - 3 raw bytes into ring buffer odd, which fit no type. */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"

char LICENSE[] SEC("license") = "GPL";

static long (*bpf_perf_event_output)(void *ctx, void *map, __u64 flags, void *data, __u64 size) = (void *)25;
static long (*bpf_ringbuf_output)(void *ringbuf, void *data, __u64 size, __u64 flags) = (void *)130;

enum ev_kind { EV_NONE, EV_GETPID };

struct pair {
	short lo;
	short hi;
};

struct event {
	__u32 pid;
	__u64 seq;
	char comm[16];
	struct pair pair;
	enum ev_kind kind;
	int neg;
};

struct perf_rec {
	__u32 pid;
	__u32 seq;
};

struct event *unused_event __attribute__((unused));
struct perf_rec *unused_perf_rec __attribute__((unused));

const volatile __u32 target_pid = 0;
__u64 seq;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} odd SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

SEC("tp/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct perf_rec pr;
	struct event *e;
	char three[3] = {1, 2, 3};
	__u64 n;

	if (pid != target_pid)
		return 0;
	n = __sync_fetch_and_add(&seq, 1) + 1;
	e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
	if (e) {
		e->pid = pid;
		e->seq = n;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		e->pair.lo = -1;
		e->pair.hi = n;
		e->kind = EV_GETPID;
		e->neg = -(int)n;
		bpf_ringbuf_submit(e, 0);
	}
	pr.pid = pid;
	pr.seq = n;
	bpf_perf_event_output(ctx, &events, 0xffffffffULL, &pr, sizeof(pr));
	bpf_ringbuf_output(&odd, three, sizeof(three), 0);
	return 0;
}
