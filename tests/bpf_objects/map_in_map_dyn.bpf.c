/* Test object: a map of maps declared without __array(values, ...), as libbpf-based tools do
 * when user space supplies the inner map's shape (bpf_map__set_inner_map_fd) and fills the
 * slots at run time.  bump_inner adds 1 to slot 0 of the inner map in dyn[1]: returns 1 when
 * there is none, 0 when it counted. */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__uint(value_size, sizeof(__u32));
} dyn SEC(".maps");

SEC("socket")
int bump_inner(void *ctx)
{
	__u32 k = 1, z = 0;
	__u64 *v;
	void *in;

	in = bpf_map_lookup_elem(&dyn, &k);
	if (!in)
		return 1;
	v = bpf_map_lookup_elem(in, &z);
	if (!v)
		return 2;
	__sync_fetch_and_add(v, 1);
	return 0;
}
