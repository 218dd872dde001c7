/* Test object: a map pinned by name (LIBBPF_PIN_BY_NAME), shared by two loads. */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, 1 /* LIBBPF_PIN_BY_NAME */);
} shared_count SEC(".maps");

SEC("socket")
int count_runs(void *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&shared_count, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
	return 0;
}
