/* Test object for netkit links, one program per side as libbpf names the sections:
 *  - netkit/primary: runs on what the pair's primary device transmits (towards the peer);
 *  - netkit/peer: runs on what the peer transmits (towards the primary).
 * Both are attached on the primary's ifindex. netkit devices are Ethernet devices (L3 mode, the
 * default, only turns ARP off), so a packet starts with an Ethernet header. UDP datagrams to `port` are counted on the way
 * to the peer, those from `port` (the replies) on the way back, with their bytes; every
 * program returns NETKIT_NEXT, so the device's policy (pass) decides.
 * ebpfpy-vm: prebuild (tests/vm's runner builds it on the host: the guest has no clang) */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define NETKIT_NEXT -1
#define BE16(x) ((__u16)(((x) >> 8) | (((x) & 0xff) << 8)))

enum { TO_PEER, TO_PEER_BYTES, FROM_PEER, FROM_PEER_BYTES, SLOTS };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

const volatile __u16 port = 0;

static __always_inline void bump(__u32 slot, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &slot);
	if (v)
		__sync_fetch_and_add(v, n);
}

/* Is this an IPv4 UDP datagram whose destination (or source) port is `port`? */
static __always_inline int ours(struct __sk_buff *skb, int dest)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);

	if ((void *)(udp + 1) > end)
		return 0;
	if (eth->h_proto != BE16(0x0800) || ip->version != 4 || ip->ihl != 5 || ip->protocol != 17)
		return 0;
	return (dest ? udp->dest : udp->source) == BE16(port);
}

SEC("netkit/primary")
int nk_to_peer(struct __sk_buff *skb)
{
	if (ours(skb, 1)) {
		bump(TO_PEER, 1);
		bump(TO_PEER_BYTES, skb->len);
	}
	return NETKIT_NEXT;
}

SEC("netkit/peer")
int nk_from_peer(struct __sk_buff *skb)
{
	if (ours(skb, 0)) {
		bump(FROM_PEER, 1);
		bump(FROM_PEER_BYTES, skb->len);
	}
	return NETKIT_NEXT;
}
