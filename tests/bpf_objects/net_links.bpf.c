/* Test object for the network-namespace link types, one program per section libbpf names:
 *  - netfilter: an IPv4 netfilter hook function (the family, hook and priority are given at
 *    attach time). UDP datagrams to `port` are counted per hook (slot = NF_INET_* number) and
 *    their bytes summed; datagrams to `drop_port` (if set) get NF_DROP;
 *  - sk_lookup: runs when a TCP SYN or a UDP datagram looks for a socket. Lookups for `port` are
 *    counted per protocol; TCP connections to `steer_port` are handed to the socket in
 *    `target[0]` (a SOCKMAP the test fills with a listening socket bound elsewhere).
 * Ports are set before load (host order); every program lets the rest through.
 * ebpfpy-vm: prebuild (tests/vm's runner builds it on the host: the guest has no clang) */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"

char LICENSE[] SEC("license") = "GPL";

static long (*bpf_sk_assign)(void *ctx, void *sk, __u64 flags) = (void *)124;
static long (*bpf_sk_release)(void *sock) = (void *)86;

#define NF_DROP 0
#define NF_ACCEPT 1
#define BE16(x) ((__u16)(((x) >> 8) | (((x) & 0xff) << 8)))

/* slots 0..4: datagrams to `port` seen at each NF_INET_* hook */
enum { NF_BYTES = 5, NF_DROPPED, SKL_TCP, SKL_UDP, SKL_STEERED, SLOTS };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} target SEC(".maps");

const volatile __u16 port = 0;
const volatile __u16 drop_port = 0;
const volatile __u16 steer_port = 0;

static __always_inline void bump(__u32 slot, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &slot);
	if (v)
		__sync_fetch_and_add(v, n);
}

#ifndef NO_NETFILTER /* libbpf before 1.2 does not know the section: a build for bpftool 7.1 leaves it out */
SEC("netfilter")
int nf_count(struct bpf_nf_ctx *ctx)
{
	const struct nf_hook_state *state = ctx->state;
	struct sk_buff *skb = ctx->skb;
	struct { struct iphdr ip; struct udphdr udp; } h;
	__u32 hook = state->hook;

	if (state->pf != 2 /* NFPROTO_IPV4 */ || hook > 4)
		return NF_ACCEPT;
	/* the context's pointers are BTF-typed: their fields load directly */
	if (bpf_probe_read_kernel(&h, sizeof(h), skb->head + skb->network_header))
		return NF_ACCEPT;
	if (h.ip.version != 4 || h.ip.ihl != 5 || h.ip.protocol != 17)
		return NF_ACCEPT;
	if (drop_port && h.udp.dest == BE16(drop_port)) {
		bump(NF_DROPPED, 1);
		return NF_DROP;
	}
	if (h.udp.dest == BE16(port)) {
		bump(hook, 1);
		bump(NF_BYTES, skb->len);
	}
	return NF_ACCEPT;
}
#endif

SEC("sk_lookup")
int steer(struct bpf_sk_lookup *ctx)
{
	struct bpf_sock *sk;
	__u32 zero = 0;
	long err;

	if (ctx->local_port == port) /* host order, unlike remote_port */
		bump(ctx->protocol == 17 ? SKL_UDP : SKL_TCP, 1);
	if (ctx->protocol != 6 || !steer_port || ctx->local_port != steer_port)
		return SK_PASS;
	sk = bpf_map_lookup_elem(&target, &zero);
	if (!sk)
		return SK_PASS;
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (!err)
		bump(SKL_STEERED, 1);
	return SK_PASS;
}
