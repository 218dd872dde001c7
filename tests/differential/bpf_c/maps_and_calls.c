/* Ordinary C: map lookups (LD_IMM64 with relocations), helper calls, bpf-to-bpf
 * calls, loops (backward jumps), stack stores, narrow loads, 32-bit ALU. */
typedef unsigned int u32;
typedef unsigned long long u64;

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, u64 flags) = (void *)2;
static u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static long (*bpf_trace_printk)(const char *fmt, u32 fmt_size, ...) = (void *)6;

struct {
	__uint(type, 1);
	__uint(max_entries, 16);
	__type(key, u32);
	__type(value, u64);
} counts SEC(".maps");

static __attribute__((noinline)) u64 mix(u64 a, u64 b)
{
	u64 r = a * 31 + (b >> 3);
	for (int i = 0; i < 5; i++)
		r ^= (r << 7) | (a >> (i & 7));
	return r / (b | 1) + r % 13;
}

__attribute__((noinline)) int global_helper(int x)
{
	volatile int y = x;
	return y > 100 ? y - 100 : y * 3;
}

SEC("tracepoint/syscalls/sys_enter_write")
int count_writes(void *ctx)
{
	u32 key = bpf_ktime_get_ns() & 15;
	u64 *val = bpf_map_lookup_elem(&counts, &key);
	if (val) {
		__sync_fetch_and_add(val, 1);
	} else {
		u64 one = mix(key, 7);
		bpf_map_update_elem(&counts, &key, &one, 0);
	}
	char fmt[] = "key %d\n";
	bpf_trace_printk(fmt, sizeof(fmt), key);
	return global_helper(key) & 1;
}

SEC("socket")
int narrow(unsigned char *p)
{
	int s = 0;
	signed char c = (signed char)p[1];
	short h = *(short *)(p + 2);
	int w = *(int *)(p + 4);
	if (c < -3)
		s += h;
	if ((unsigned)w >= 77)
		s -= w;
	if (w & 0x40)
		s |= 1 << 20;
	long big = 0x123456789abcdefLL;
	return s + (int)(big >> (w & 31)) + (s < 0 ? -1 : 1);
}

char LICENSE[] SEC("license") = "GPL";
