// SPDX-License-Identifier: GPL-2.0
/* twill's tc program, attached at ingress of every pod's host-side veth (packets leaving
 * the pod). A packet between two local endpoints is handed straight into the destination
 * pod with bpf_redirect_peer(); everything else continues to the kernel stack.
 *
 * NAT safety: a flow is redirected only once the program has seen BOTH of its directions
 * travelling endpoint to endpoint. A flow NAT'd by netfilter (portmap's hostPort DNAT, a
 * kube-proxy Service) never qualifies: its client side addresses the NAT'd address, so
 * its replies keep going back through conntrack for the reverse translation. The first
 * packet of a direct flow crosses the stack; the rest take the fast path. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "twill_maps.h"

struct twill_map_def SEC("maps") endpoints = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(struct ep_key),
	.value_size = sizeof(struct ep_value),
	.max_entries = 65536,
};

struct twill_map_def SEC("maps") flows = {
	.type = BPF_MAP_TYPE_LRU_HASH,
	.key_size = sizeof(struct flow_key),
	.value_size = sizeof(__u32),
	.max_entries = 131072,
};

struct twill_map_def SEC("maps") counters = {
	.type = BPF_MAP_TYPE_PERCPU_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(struct ep_counters),
	.max_entries = 65536,
};

#define PASS TC_ACT_UNSPEC /* == TCX_NEXT: later programs and filters (bandwidth) still run */

static __always_inline void count(struct __sk_buff *skb, int redirected)
{
	__u32 key = skb->ifindex;
	struct ep_counters *c = bpf_map_lookup_elem(&counters, &key);
	if (!c) {
		struct ep_counters zero = {};
		bpf_map_update_elem(&counters, &key, &zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&counters, &key);
		if (!c)
			return;
	}
	if (redirected) {
		c->redirect_packets++;
		c->redirect_bytes += skb->len;
	} else {
		c->pass_packets++;
		c->pass_bytes += skb->len;
	}
}

/* Fills ports for TCP/UDP and ICMP echo (the identifier on both sides); 0 for others. */
static __always_inline int l4_ports(void *l4, void *end, __u8 proto, struct flow_key *fk)
{
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		__u16 *p = l4;
		if ((void *)(p + 2) > end)
			return 0;
		fk->sport = p[0];
		fk->dport = p[1];
		return 1;
	}
	if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
		__u8 *h = l4;
		if ((void *)(h + 8) > end)
			return 0;
		__u8 type = h[0];
		int echo = proto == IPPROTO_ICMP ? (type == 8 || type == 0) : (type == 128 || type == 129);
		if (!echo)
			return 0;
		fk->sport = *(__u16 *)(h + 4);
		fk->dport = fk->sport;
		return 1;
	}
	return 0;
}

SEC("tc")
int twill_from_pod(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct flow_key fk = {};
	struct ep_key src = {}, dst = {};

	if ((void *)(eth + 1) > end)
		goto pass;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))
			goto pass;
		fk.family = TWILL_AF_INET;
		fk.proto = ip->protocol;
		__builtin_memcpy(fk.saddr, &ip->saddr, 4);
		__builtin_memcpy(fk.daddr, &ip->daddr, 4);
		if (!l4_ports(ip + 1, end, ip->protocol, &fk))
			goto pass;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			goto pass;
		fk.family = TWILL_AF_INET6;
		fk.proto = ip6->nexthdr;
		__builtin_memcpy(fk.saddr, &ip6->saddr, 16);
		__builtin_memcpy(fk.daddr, &ip6->daddr, 16);
		if (!l4_ports(ip6 + 1, end, ip6->nexthdr, &fk))
			goto pass;
	} else {
		goto pass;
	}

	dst.family = fk.family;
	__builtin_memcpy(dst.addr, fk.daddr, 16);
	struct ep_value *to = bpf_map_lookup_elem(&endpoints, &dst);
	if (!to)
		goto pass;
	src.family = fk.family;
	__builtin_memcpy(src.addr, fk.saddr, 16);
	struct ep_value *from = bpf_map_lookup_elem(&endpoints, &src);
	if (!from || ((to->flags | from->flags) & EP_F_NO_FAST))
		goto pass;

	/* Write only when new: an LRU update on every packet costs more than the lookup. */
	if (!bpf_map_lookup_elem(&flows, &fk)) {
		__u32 seen = 1;
		bpf_map_update_elem(&flows, &fk, &seen, BPF_ANY);
	}
	struct flow_key rev = {};
	rev.family = fk.family;
	rev.proto = fk.proto;
	__builtin_memcpy(rev.saddr, fk.daddr, 16);
	__builtin_memcpy(rev.daddr, fk.saddr, 16);
	rev.sport = fk.dport;
	rev.dport = fk.sport;
	if (!bpf_map_lookup_elem(&flows, &rev))
		goto pass;

	__u32 ifindex = to->ifindex;
	__builtin_memcpy(eth->h_dest, to->pod_mac, 6);
	__builtin_memcpy(eth->h_source, to->host_mac, 6);
	count(skb, 1);
	return bpf_redirect_peer(ifindex, 0);

pass:
	count(skb, 0);
	return PASS;
}

char _license[] SEC("license") = "GPL";
