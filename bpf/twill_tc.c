// SPDX-License-Identifier: GPL-2.0
/* twill's tc program, attached at ingress of every pod's host-side veth (packets leaving
 * the pod). It trusts nothing a pod writes:
 *
 * 1. Source validation: an IP packet whose source is not one of the addresses twill
 *    published for the pod behind this veth is dropped and counted (IPv6 link-local and
 *    the unspecified address stay allowed for neighbour discovery and MLD). A pod cannot
 *    borrow another pod's identity, so nothing later needs to ask who sent a packet.
 * 2. Fast path: a TCP/UDP packet between two local endpoints is handed straight into the
 *    destination pod with bpf_redirect_peer() only when the host's conntrack already holds
 *    the connection confirmed, answered (both directions crossed the host's netfilter) and
 *    not NAT'd. The decision rests on what the kernel knows, never on state a pod's packets
 *    can write; a NAT'd flow (portmap hostPort, hairpin, a kube-proxy Service) always goes
 *    back through conntrack for its reverse translation. TCP SYN/FIN/RST take the stack so
 *    conntrack sees every connection open and close, and its entries age as usual.
 * Everything else continues to the kernel stack. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "twill_maps.h"

/* max_entries are the loader's defaults; it sizes both maps from the network's config. */
struct twill_map_def SEC("maps") endpoints = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(struct ep_key),
	.value_size = sizeof(struct ep_value),
	.max_entries = 1024,
	.map_flags = BPF_F_NO_PREALLOC,
};

struct twill_map_def SEC("maps") counters = {
	.type = BPF_MAP_TYPE_PERCPU_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(struct ep_counters),
	.max_entries = 1024,
	.map_flags = BPF_F_NO_PREALLOC,
};

/* conntrack kfuncs (net/netfilter/nf_conntrack_bpf.c); the loader resolves their BTF ids. */
struct nf_conn;
struct bpf_ct_opts {
	__s32 netns_id;
	__s32 error;
	__u8 l4proto;
	__u8 dir;
	__u8 reserved[2];
};
extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *, struct bpf_sock_tuple *, __u32,
					 struct bpf_ct_opts *, __u32) __ksym;
extern void bpf_ct_release(struct nf_conn *) __ksym;

#define IPS_SEEN_REPLY (1 << 1)
#define IPS_CONFIRMED (1 << 3)
#define IPS_NAT_MASK ((1 << 4) | (1 << 5))
#define BPF_F_CURRENT_NETNS (-1)

#define PASS TC_ACT_UNSPEC /* == TCX_NEXT: later programs and filters (bandwidth) still run */

enum verdict { V_PASS, V_REDIRECT, V_SPOOFED };

static __always_inline void count(struct __sk_buff *skb, enum verdict v)
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
	if (v == V_REDIRECT) {
		c->redirect_packets++;
		c->redirect_bytes += skb->len;
	} else if (v == V_SPOOFED) {
		c->spoofed_packets++;
		c->spoofed_bytes += skb->len;
	} else {
		c->pass_packets++;
		c->pass_bytes += skb->len;
	}
}

/* True when the conntrack entry of this tuple is confirmed, answered and not NAT'd. */
static __always_inline int ct_direct(struct __sk_buff *skb, struct bpf_sock_tuple *t, __u32 tlen, __u8 proto)
{
	struct bpf_ct_opts opts = { .netns_id = BPF_F_CURRENT_NETNS, .l4proto = proto };
	struct nf_conn *ct = bpf_skb_ct_lookup(skb, t, tlen, &opts, sizeof(opts));
	if (!ct)
		return 0;
	unsigned long status = *(volatile unsigned long *)((char *)ct + TWILL_CT_STATUS_MARKER);
	bpf_ct_release(ct);
	return (status & (IPS_CONFIRMED | IPS_SEEN_REPLY)) == (IPS_CONFIRMED | IPS_SEEN_REPLY) &&
	       !(status & IPS_NAT_MASK);
}

/* Reads the ports of a TCP/UDP header at l4; 0 when truncated, when not TCP/UDP, or for a
 * TCP segment that opens or closes a connection (those go through conntrack). */
static __always_inline int l4_ports(void *l4, void *end, __u8 proto, __be16 *sport, __be16 *dport)
{
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > end || th->syn || th->fin || th->rst)
			return 0;
	} else if (proto == IPPROTO_UDP) {
		if (l4 + 8 > end)
			return 0;
	} else {
		return 0;
	}
	__be16 *p = l4;
	*sport = p[0];
	*dport = p[1];
	return 1;
}

static __always_inline struct ep_value *endpoint(__u32 family, const void *addr, int len)
{
	struct ep_key k = { .family = family };
	__builtin_memcpy(k.addr, addr, 16);
	if (len == 4)
		__builtin_memset(k.addr + 4, 0, 12);
	return bpf_map_lookup_elem(&endpoints, &k);
}

static __always_inline int redirect_to(struct __sk_buff *skb, struct ep_value *to)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return -1;
	__builtin_memcpy(eth->h_dest, to->pod_mac, 6);
	__builtin_memcpy(eth->h_source, to->host_mac, 6);
	count(skb, V_REDIRECT);
	return bpf_redirect_peer(to->ifindex, 0);
}

static __always_inline int pass(struct __sk_buff *skb)
{
	count(skb, V_PASS);
	return PASS;
}

/* A validated TCP/UDP packet: into the destination pod when it is a local endpoint, neither
 * end is shaped (or may be: pending), and conntrack vouches for the flow; else on to the stack. */
static __always_inline int deliver(struct __sk_buff *skb, struct ep_value *from, struct ep_value *to,
				   struct bpf_sock_tuple *t, __u32 tlen, __u8 proto)
{
	if (!to || ((to->flags | from->flags) & (EP_F_NO_FAST | EP_F_PENDING)) || !ct_direct(skb, t, tlen, proto))
		return pass(skb);
	int r = redirect_to(skb, to);
	return r >= 0 ? r : pass(skb);
}

static __always_inline int spoofed(struct __sk_buff *skb)
{
	count(skb, V_SPOOFED);
	return TC_ACT_SHOT;
}

static __always_inline int from_pod_v4(struct __sk_buff *skb, struct iphdr *ip, void *end)
{
	__u8 saddr[16] = {}, daddr[16] = {};
	__builtin_memcpy(saddr, &ip->saddr, 4);
	__builtin_memcpy(daddr, &ip->daddr, 4);
	struct ep_value *from = endpoint(TWILL_AF_INET, saddr, 16);
	if (!from || from->ifindex != skb->ifindex)
		return spoofed(skb);
	struct bpf_sock_tuple t = {};
	if (ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)) ||
	    !l4_ports(ip + 1, end, ip->protocol, &t.ipv4.sport, &t.ipv4.dport))
		return pass(skb);
	t.ipv4.saddr = ip->saddr;
	t.ipv4.daddr = ip->daddr;
	return deliver(skb, from, endpoint(TWILL_AF_INET, daddr, 16), &t, sizeof(t.ipv4), ip->protocol);
}

static __always_inline int from_pod_v6(struct __sk_buff *skb, struct ipv6hdr *ip6, void *end)
{
	__u32 w0 = ip6->saddr.in6_u.u6_addr32[0];
	/* fe80::/10 (neighbour discovery) and :: (MLD, DAD) never leave the link. */
	if ((w0 & bpf_htonl(0xffc00000)) == bpf_htonl(0xfe800000) ||
	    !(w0 | ip6->saddr.in6_u.u6_addr32[1] | ip6->saddr.in6_u.u6_addr32[2] | ip6->saddr.in6_u.u6_addr32[3]))
		return pass(skb);
	struct ep_value *from = endpoint(TWILL_AF_INET6, &ip6->saddr, 16);
	if (!from || from->ifindex != skb->ifindex)
		return spoofed(skb);
	struct bpf_sock_tuple t = {};
	if (!l4_ports(ip6 + 1, end, ip6->nexthdr, &t.ipv6.sport, &t.ipv6.dport))
		return pass(skb);
	__builtin_memcpy(t.ipv6.saddr, &ip6->saddr, 16);
	__builtin_memcpy(t.ipv6.daddr, &ip6->daddr, 16);
	return deliver(skb, from, endpoint(TWILL_AF_INET6, &ip6->daddr, 16), &t, sizeof(t.ipv6), ip6->nexthdr);
}

SEC("tc")
int twill_from_pod(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return pass(skb);
	/* An IP packet too short to name its source is never let by. */
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		return (void *)(ip + 1) > end ? spoofed(skb) : from_pod_v4(skb, ip, end);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		return (void *)(ip6 + 1) > end ? spoofed(skb) : from_pod_v6(skb, ip6, end);
	}
	return pass(skb);
}

char _license[] SEC("license") = "GPL";
