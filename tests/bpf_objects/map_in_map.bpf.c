/* Test object: libbpf's BTF map features beyond plain maps.
 * - maps of maps (__array(values, ...)): an array of maps with initial inner maps
 *   (.values = { [0] = &inner_a, [2] = &inner_b }) and a hash of maps with an anonymous
 *   inner definition and no initial values;
 * - a program array with an initial program (.values = { [1] = &tail_target });
 * - map_extra (a bloom filter's number of hash functions).
 * lookup_inner bumps inner_b[0] through outer[2], pushes 42 into the bloom filter and
 * tail-calls jump[1], which returns 7. */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"

char LICENSE[] SEC("license") = "GPL";

static long (*bpf_tail_call)(void *ctx, void *prog_array_map, __u32 index) = (void *)12;
static long (*bpf_map_push_elem)(void *map, const void *value, __u64 flags) = (void *)87;

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
};

struct inner inner_a SEC(".maps");
struct inner inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = {
	.values = { [0] = &inner_a, [2] = &inner_b },
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 8);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_HASH);
		__uint(max_entries, 16);
		__type(key, __u32);
		__type(value, __u32);
	});
} by_id SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__uint(max_entries, 64);
	__type(value, __u32);
	__uint(map_extra, 3);
} seen SEC(".maps");

SEC("socket")
int tail_target(void *ctx)
{
	return 7;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, int (void *));
} jump SEC(".maps") = {
	.values = { [1] = (void *)&tail_target },
};

SEC("socket")
int lookup_inner(void *ctx)
{
	__u32 k = 2, z = 0, v42 = 42;
	void *in;
	__u64 *v;

	in = bpf_map_lookup_elem(&outer, &k);
	if (!in)
		return 1;
	v = bpf_map_lookup_elem(in, &z);
	if (!v)
		return 2;
	__sync_fetch_and_add(v, 1);
	if (bpf_map_lookup_elem(&by_id, &z))
		return 4;
	bpf_map_push_elem(&seen, &v42, 0);
	bpf_tail_call(ctx, &jump, 1);
	return 3;
}
