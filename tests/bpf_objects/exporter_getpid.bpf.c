/* ebpfpy exporter's test object (config: exporter_getpid.yaml): on every getpid() it counts
 * the call by command name, and files the syscall number (39 on x86-64) into an exp2
 * histogram by command name, with the running sum of the numbers one key past the last
 * bucket, so a workload of N calls gives known counters, buckets and sum. */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"

#define BUCKET_MAX 10

struct comm_key {
	char comm[16];
};

struct slot_key {
	char comm[16];
	__u64 slot;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct comm_key);
	__type(value, __u64);
} getpid_calls_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct comm_key);
	__type(value, __u64);
} getpid_calls_percpu_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct slot_key);
	__type(value, __u64);
} getpid_syscall_nr SEC(".maps");

static __always_inline void add(void *map, void *key, __u64 n)
{
	__u64 *value = bpf_map_lookup_elem(map, key);
	if (!value) {
		__u64 zero = 0;
		bpf_map_update_elem(map, key, &zero, 1 /* BPF_NOEXIST: another CPU may have won */);
		value = bpf_map_lookup_elem(map, key);
		if (!value)
			return;
	}
	__sync_fetch_and_add(value, n);
}

/* the smallest k with value <= 2**k (0 for 0 and 1) */
static __always_inline __u64 log2_ceil(__u64 value)
{
	__u64 k = 0;
	if (value <= 1)
		return 0;
	value -= 1;
	for (int i = 0; i < 64 && value; i++) {
		value >>= 1;
		k++;
	}
	return k;
}

/* the sys_enter_getpid record: the common fields, then the syscall number (no arguments) */
struct getpid_enter {
	__u64 common;
	int syscall_nr;
};

SEC("tracepoint/syscalls/sys_enter_getpid")
int count_getpid(struct getpid_enter *ctx)
{
	struct comm_key ckey = {};
	struct slot_key skey = {};
	__u64 nr = ctx->syscall_nr;

	bpf_get_current_comm(ckey.comm, sizeof(ckey.comm));
	add(&getpid_calls_total, &ckey, 1);

	__u64 *cell = bpf_map_lookup_elem(&getpid_calls_percpu_total, &ckey);
	if (cell) {
		*cell += 1;
	} else {
		__u64 one = 1;
		bpf_map_update_elem(&getpid_calls_percpu_total, &ckey, &one, 0);
	}

	__builtin_memcpy(skey.comm, ckey.comm, sizeof(skey.comm));
	skey.slot = log2_ceil(nr);
	if (skey.slot > BUCKET_MAX)
		skey.slot = BUCKET_MAX;
	add(&getpid_syscall_nr, &skey, 1);
	skey.slot = BUCKET_MAX + 1; /* the sum key */
	add(&getpid_syscall_nr, &skey, nr);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
