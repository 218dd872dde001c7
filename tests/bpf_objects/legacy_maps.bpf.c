/* Test object: an old-style map definition in SEC("maps") (no BTF needed). */
typedef unsigned int __u32;
typedef unsigned long long __u64;
#define SEC(name) __attribute__((section(name), used))

struct legacy_map_def {
	unsigned int type, key_size, value_size, max_entries, map_flags;
};

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

struct legacy_map_def SEC("maps") legacy_counts = {
	.type = 2 /* array */, .key_size = 4, .value_size = 8, .max_entries = 2,
};

char LICENSE[] SEC("license") = "GPL";

SEC("socket")
int legacy(void *ctx)
{
	__u32 k = 1;
	__u64 *v = bpf_map_lookup_elem(&legacy_counts, &k);
	if (v)
		*v += 7;
	return 3;
}
