/* Test object for the BPF link types: one program per section libbpf names for them.
 *  - xdp, tcx/ingress, tcx/egress: count UDP/IPv4 packets to port `port` (set before load)
 *    on an interface (the ethernet header first: xdp_md, __sk_buff on a tc hook);
 *  - cgroup_skb/egress: the same count, from a cgroup (the skb starts at the IP header);
 *  - cgroup/sock_create: AF_INET datagram sockets created in the cgroup;
 *  - cgroup/sysctl: reads of kernel.ostype;
 *  - cgroup/dev: opens of /dev/null (char 1:3);
 *  - uprobe.multi/, uretprobe.multi/: every multi_* function of UMT_PATH (the
 *    uprobe_multi_target program, given with -DUMT_PATH=...), counted per function by
 *    its address and summing the return values.
 * Every program lets everything through. */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"

char LICENSE[] SEC("license") = "GPL";

static long (*bpf_skb_load_bytes)(const void *skb, __u32 offset, void *to, __u32 len) = (void *)26;
static long (*bpf_sysctl_get_name)(struct bpf_sysctl *ctx, char *buf, unsigned long buf_len,
				   __u64 flags) = (void *)101;
static __u64 (*bpf_get_func_ip)(void *ctx) = (void *)173;

enum { XDP_IN, TCX_IN, TCX_OUT, CG_EGRESS, CG_SOCK, CG_SYSCTL, CG_DEV, UPROBES, URETPROBES, URET_SUM, SLOTS };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

/* uprobe.multi hits per function entry address */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, __u64);
} by_ip SEC(".maps");

const volatile __u16 port = 0; /* host order */

static __always_inline void bump(__u32 slot, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &slot);
	if (v)
		__sync_fetch_and_add(v, n);
}

#define ETH_HLEN 14
#define BE16(x) ((__u16)(((x) >> 8) | (((x) & 0xff) << 8)))

/* a UDP/IPv4 packet to `port`, the IP header at byte `l3` of [data, end) */
static __always_inline int is_ours(void *data, void *end, __u32 l3)
{
	struct iphdr *ip = data + l3;
	struct udphdr *udp;

	if ((void *)(ip + 1) > end || ip->version != 4 || ip->protocol != 17)
		return 0;
	udp = (void *)ip + ip->ihl * 4;
	if ((void *)(udp + 1) > end)
		return 0;
	return udp->dest == BE16(port);
}

SEC("xdp")
int count_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) <= end && eth->h_proto == BE16(0x0800) && is_ours(data, end, ETH_HLEN))
		bump(XDP_IN, 1);
	return XDP_PASS;
}

/* tc and cgroup skb programs: copy the headers out, the skb may not be linear there */
static __always_inline int skb_is_ours(struct __sk_buff *skb, __u32 l3)
{
	struct { struct iphdr ip; struct udphdr udp; } h;

	if (bpf_skb_load_bytes(skb, l3, &h, sizeof(h)) < 0)
		return 0;
	return h.ip.version == 4 && h.ip.ihl == 5 && h.ip.protocol == 17 && h.udp.dest == BE16(port);
}

SEC("tcx/ingress")
int count_tcx_in(struct __sk_buff *skb)
{
	if (skb->protocol == BE16(0x0800) && skb_is_ours(skb, ETH_HLEN))
		bump(TCX_IN, 1);
	return -1; /* TCX_NEXT */
}

SEC("tcx/egress")
int count_tcx_out(struct __sk_buff *skb)
{
	if (skb->protocol == BE16(0x0800) && skb_is_ours(skb, ETH_HLEN))
		bump(TCX_OUT, 1);
	return -1; /* TCX_NEXT */
}

SEC("cgroup_skb/egress")
int count_egress(struct __sk_buff *skb)
{
	if (skb->protocol == BE16(0x0800) && skb_is_ours(skb, 0))
		bump(CG_EGRESS, 1);
	return 1; /* allow */
}

SEC("cgroup/sock_create")
int count_sock(struct bpf_sock *sk)
{
	if (sk->family == 2 /* AF_INET */ && sk->type == 2 /* SOCK_DGRAM */)
		bump(CG_SOCK, 1);
	return 1;
}

SEC("cgroup/sysctl")
int count_sysctl(struct bpf_sysctl *ctx)
{
	char name[16] = {};

	if (!ctx->write && bpf_sysctl_get_name(ctx, name, sizeof(name), 0) == 13 &&
	    __builtin_memcmp(name, "kernel/ostype", 14) == 0)
		bump(CG_SYSCTL, 1);
	return 1;
}

SEC("cgroup/dev")
int count_dev(struct bpf_cgroup_dev_ctx *ctx)
{
	if ((ctx->access_type & 0xffff) == 2 /* BPF_DEVCG_DEV_CHAR */ && ctx->major == 1 && ctx->minor == 3)
		bump(CG_DEV, 1);
	return 1;
}

#ifdef UMT_PATH
SEC("uprobe.multi/" UMT_PATH ":multi_*")
int count_multi(struct pt_regs *ctx)
{
	__u64 ip = bpf_get_func_ip(ctx), one = 1, *v;

	bump(UPROBES, 1);
	v = bpf_map_lookup_elem(&by_ip, &ip);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&by_ip, &ip, &one, 1 /* BPF_NOEXIST */);
	return 0;
}

SEC("uretprobe.multi/" UMT_PATH ":multi_[ab]")
int sum_multi_ret(struct pt_regs *ctx)
{
	bump(URETPROBES, 1);
	bump(URET_SUM, (int)ctx->ax);
	return 0;
}
#endif
