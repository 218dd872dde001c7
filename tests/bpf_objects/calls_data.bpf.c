/* Test object: static and global subprograms (called from two programs), a
 * bpf_loop callback (LD_IMM64 of a function), .rodata/.data/custom .data.*
 * globals, a string literal in .rodata.str1.1, a per-CPU array. Socket
 * filters, so the kernel can run them with BPF_PROG_TEST_RUN. */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static long (*bpf_loop)(__u32 nr_loops, void *callback_fn, void *callback_ctx, __u64 flags) = (void *)181;

const volatile __u32 scale = 3;
__u32 calls SEC(".data.counters") = 0;
static volatile __u32 hidden = 5;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} per SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, char[16]);
} names SEC(".maps");

static __noinline __u32 square(__u32 x)
{
	return x * x;
}

__noinline __u32 poly(__u32 x)
{
	return square(x) * scale + x + hidden;
}

static int add_cb(__u32 idx, void *ctx)
{
	*(__u64 *)ctx += idx;
	return 0;
}

SEC("socket")
int sock_main(struct __sk_buff *skb)
{
	__u64 sum = 0;
	__u32 k = 0;
	bpf_loop(4, add_cb, &sum, 0);
	__u64 *v = bpf_map_lookup_elem(&per, &k);
	if (v)
		*v += 1;
	calls++;
	bpf_map_update_elem(&names, &k, "from-rodata-str", 0);
	return poly(2) + sum;
}

SEC("socket")
int sock_second(struct __sk_buff *skb)
{
	return square(4) + scale + poly(1);
}
