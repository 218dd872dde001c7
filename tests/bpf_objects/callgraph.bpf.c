/* Test object: a call graph (static and global subprograms several levels deep), callbacks
 * registered from subprograms (bpf_loop, bpf_for_each_map_elem), string literals used in
 * subprograms, and one program per common section type. Only loaded, never attached. */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"
char LICENSE[] SEC("license") = "GPL";
static long (*bpf_for_each_map_elem)(void *map, void *cb, void *ctx, __u64 flags) = (void *)164;
static long (*bpf_loop)(__u32 nr, void *cb, void *ctx, __u64 flags) = (void *)181;
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 8); __type(key, __u32); __type(value, __u64);} arr SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 8); __type(key, __u32); __type(value, char[16]);} strs SEC(".maps");
static const char greeting[] = "hello from rodata";
int counter = 0;
static __noinline int leaf(int x) { return x * 3 + counter; }
static __noinline int mid(int x) { return leaf(x) + leaf(x + 1); }
__noinline int top(int x) { __u32 k = 1; bpf_map_update_elem(&strs, &k, "a string in a subprog!!", 0); return mid(x) + 1; }
static long sum_cb(void *map, __u32 *key, __u64 *val, void *ctx) { *(__u64 *)ctx += *val + leaf(1); return 0; }
static int loop_cb(__u32 i, void *ctx) { __u64 s = 0; bpf_for_each_map_elem(&arr, sum_cb, &s, 0); *(__u64 *)ctx += s; return 0; }
__noinline int with_cb(void) { __u64 s = 0; bpf_loop(2, loop_cb, &s, 0); return s; }
SEC("xdp") int xdp_prog(struct xdp_md *ctx) { return top(1) > 0 ? 2 : 1; }
SEC("tc") int tc_prog(struct __sk_buff *skb) { __u32 k = 0; bpf_map_update_elem(&strs, &k, greeting, 0); return mid(2) + with_cb(); }
SEC("perf_event") int pe_prog(void *ctx) { counter++; return with_cb() + top(3); }
SEC("raw_tp/sys_enter") int rtp(void *ctx) { return leaf(5); }
SEC("tp/sched/sched_switch") int tp2(void *ctx) { return mid(1); }
