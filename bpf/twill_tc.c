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
 * 3. Policy (networks that enforce NetworkPolicy): a second program at egress of the same
 *    veth (packets into the pod) applies the pod's ingress rules to everything the stack
 *    delivers; this one applies the sender's egress rules and, before a fast-path redirect,
 *    the receiver's ingress rules. A verdict is three hash-free lookups — the peer's identity
 *    in the ipcache, then (identity, protocol, port) and (any, protocol, port) in the policy
 *    trie — whatever the number of policies, rules, pods or nodes. Replies of a connection
 *    (conntrack's reply direction) always pass; every packet of the original direction is
 *    judged, so a rule taken away stops a connection already open.
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

/* max_entries are the loader's defaults; it sizes the maps from the network's config. */
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

struct twill_map_def SEC("maps") ipcache = {
	.type = BPF_MAP_TYPE_LPM_TRIE,
	.key_size = sizeof(struct ipc_key),
	.value_size = sizeof(struct ipc_value),
	.max_entries = 65536,
	.map_flags = BPF_F_NO_PREALLOC,
};

struct twill_map_def SEC("maps") policy = {
	.type = BPF_MAP_TYPE_LPM_TRIE,
	.key_size = sizeof(struct pol_key),
	.value_size = sizeof(struct pol_value),
	.max_entries = 65536,
	.map_flags = BPF_F_NO_PREALLOC,
};

/* conntrack kfuncs (net/netfilter/nf_conntrack_bpf.c); the loader resolves their BTF ids. */
struct nf_conn;
struct bpf_ct_opts {
	__s32 netns_id;
	__s32 error;
	__u8 l4proto;
	__u8 dir; /* out: which of the entry's tuples matched */
	__u8 reserved[2];
};
extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *, struct bpf_sock_tuple *, __u32,
					 struct bpf_ct_opts *, __u32) __ksym;
extern void bpf_ct_release(struct nf_conn *) __ksym;

#define IPS_SEEN_REPLY (1 << 1)
#define IPS_CONFIRMED (1 << 3)
#define IPS_NAT_MASK ((1 << 4) | (1 << 5))
#define BPF_F_CURRENT_NETNS (-1)
#define IP_CT_DIR_REPLY 1
#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif

#define PASS TC_ACT_UNSPEC /* == TCX_NEXT: later programs and filters (bandwidth) still run */

enum verdict { V_PASS, V_REDIRECT, V_SPOOFED, V_DENY_IN, V_DENY_OUT };

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
	switch (v) {
	case V_REDIRECT:
		c->redirect_packets++;
		c->redirect_bytes += skb->len;
		break;
	case V_SPOOFED:
		c->spoofed_packets++;
		c->spoofed_bytes += skb->len;
		break;
	case V_DENY_IN:
		c->policy_in_packets++;
		c->policy_in_bytes += skb->len;
		break;
	case V_DENY_OUT:
		c->policy_out_packets++;
		c->policy_out_bytes += skb->len;
		break;
	default:
		c->pass_packets++;
		c->pass_bytes += skb->len;
	}
}

/* What the program needs of a packet's transport header. */
struct flow {
	__u8 proto;
	__u8 ports;  /* TCP/UDP/SCTP with both ports read */
	__u8 ctl;    /* TCP SYN/FIN/RST: always through conntrack */
	__u8 reply;  /* ICMP that answers or reports on earlier traffic (echo reply, errors) */
	__u8 link;   /* ICMPv6 neighbour discovery and MLD: never judged */
	__be16 sport;
	__be16 dport;
};

static __always_inline void parse_l4(void *l4, void *end, __u8 proto, struct flow *f)
{
	f->proto = proto;
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > end)
			return;
		f->ctl = th->syn || th->fin || th->rst;
	} else if (proto == IPPROTO_ICMP) {
		__u8 *t = l4;
		if ((void *)(t + 1) > end)
			return;
		f->reply = *t == 0 || *t == 3 || *t == 11 || *t == 12;
		return;
	} else if (proto == IPPROTO_ICMPV6) {
		__u8 *t = l4;
		if ((void *)(t + 1) > end)
			return;
		f->reply = *t == 129 || (*t >= 1 && *t <= 4);
		f->link = *t >= 130 && *t != 128;
		return;
	} else if (proto != IPPROTO_UDP && proto != IPPROTO_SCTP) {
		return;
	}
	if (l4 + 4 > end)
		return;
	__be16 *p = l4;
	f->sport = p[0];
	f->dport = p[1];
	f->ports = 1;
}

struct ct_seen {
	__u8 found;
	__u8 reply;
	__u8 direct; /* confirmed, answered and not NAT'd: may take the fast path */
};

static __always_inline void ct_look(struct __sk_buff *skb, struct bpf_sock_tuple *t, __u32 tlen, __u8 proto, struct ct_seen *s)
{
	struct bpf_ct_opts opts = { .netns_id = BPF_F_CURRENT_NETNS, .l4proto = proto };
	struct nf_conn *ct = bpf_skb_ct_lookup(skb, t, tlen, &opts, sizeof(opts));
	if (!ct)
		return;
	unsigned long status = *(volatile unsigned long *)((char *)ct + TWILL_CT_STATUS_MARKER);
	bpf_ct_release(ct);
	s->found = 1;
	s->reply = opts.dir == IP_CT_DIR_REPLY;
	s->direct = (status & (IPS_CONFIRMED | IPS_SEEN_REPLY)) == (IPS_CONFIRMED | IPS_SEEN_REPLY) && !(status & IPS_NAT_MASK);
}

static __always_inline struct ep_value *endpoint(__u32 family, const void *addr)
{
	struct ep_key k = { .family = family };
	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&endpoints, &k);
}

static __always_inline struct ipc_value *ipc(__u32 family, const void *addr)
{
	struct ipc_key k = { .prefixlen = 32 + 128, .family = family };
	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&ipcache, &k);
}

static __always_inline __u32 identity(__u32 family, const void *addr)
{
	struct ipc_value *v = ipc(family, addr);
	return v ? v->identity : ID_WORLD;
}

/* Whether the endpoint's rules of this direction allow the peer on (protocol, port). */
static __always_inline int allowed(__u32 slot, __u8 dir, __u32 peer, struct flow *f)
{
	struct pol_key k = { .prefixlen = POL_KEY_BITS, .slot = slot, .identity = peer, .dir = dir, .proto = f->proto, .port = f->ports ? f->dport : 0 };
	if (bpf_map_lookup_elem(&policy, &k))
		return 1;
	k.identity = ID_ANY;
	return bpf_map_lookup_elem(&policy, &k) != 0;
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

static __always_inline int drop(struct __sk_buff *skb, enum verdict why)
{
	count(skb, why);
	return TC_ACT_SHOT;
}

/* Addresses of one packet, both as 16-byte keys (IPv4 in the first 4 bytes). */
struct addrs {
	__u32 family;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* A validated packet from a pod: the sender's egress rules, then into the destination pod
 * when it is a local endpoint, neither end is (or may be) shaped, conntrack vouches for the
 * flow and the receiver's ingress rules allow it; else on to the stack. */
static __always_inline int from_pod(struct __sk_buff *skb, struct ep_value *from, struct addrs *a,
				    struct flow *f, struct bpf_sock_tuple *t, __u32 tlen)
{
	struct ep_value *to = endpoint(a->family, a->daddr);
	__u32 to_flags = to ? to->flags : 0;
	struct ct_seen ct = {};
	int judge_out = (from->flags & EP_F_POL_OUT) && !f->reply && !f->link;
	int fast = to && f->ports && !f->ctl && (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP) &&
		   !((to_flags | from->flags) & (EP_F_NO_FAST | EP_F_PENDING));
	if ((judge_out || fast) && f->ports && (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP))
		ct_look(skb, t, tlen, f->proto, &ct);
	if (judge_out && !ct.reply && !allowed(from->policy_slot, POL_EGRESS, identity(a->family, a->daddr), f))
		return drop(skb, V_DENY_OUT);
	if (!fast || !ct.direct)
		return pass(skb);
	/* A redirect skips the receiver's egress program: its ingress rules are applied here, and
	 * a packet they deny goes by the stack, where that program drops it and counts it. */
	if ((to_flags & EP_F_POL_IN) && !ct.reply && !allowed(to->policy_slot, POL_INGRESS, identity(a->family, a->saddr), f))
		return pass(skb);
	int r = redirect_to(skb, to);
	return r >= 0 ? r : pass(skb);
}

/* An IPv4 packet's addresses, transport header and conntrack tuple. A later fragment
 * carries no ports: it is judged as port 0 (and never redirected). */
static __always_inline void parse_v4(struct iphdr *ip, void *end, struct addrs *a, struct flow *f, struct bpf_sock_tuple *t)
{
	a->family = TWILL_AF_INET;
	__builtin_memcpy(a->saddr, &ip->saddr, 4);
	__builtin_memcpy(a->daddr, &ip->daddr, 4);
	if (!(ip->frag_off & bpf_htons(0x1fff)) && ip->ihl >= 5)
		parse_l4((void *)ip + ip->ihl * 4, end, ip->protocol, f);
	else
		f->proto = ip->protocol;
	t->ipv4.saddr = ip->saddr;
	t->ipv4.daddr = ip->daddr;
	t->ipv4.sport = f->sport;
	t->ipv4.dport = f->dport;
}

/* The same for IPv6. Extension headers are not walked: such a packet is judged by its next
 * header, port 0. */
static __always_inline void parse_v6(struct ipv6hdr *ip6, void *end, struct addrs *a, struct flow *f, struct bpf_sock_tuple *t)
{
	a->family = TWILL_AF_INET6;
	__builtin_memcpy(a->saddr, &ip6->saddr, 16);
	__builtin_memcpy(a->daddr, &ip6->daddr, 16);
	parse_l4(ip6 + 1, end, ip6->nexthdr, f);
	__builtin_memcpy(t->ipv6.saddr, a->saddr, 16);
	__builtin_memcpy(t->ipv6.daddr, a->daddr, 16);
	t->ipv6.sport = f->sport;
	t->ipv6.dport = f->dport;
}

static __always_inline int from_pod_v4(struct __sk_buff *skb, struct iphdr *ip, void *end)
{
	struct addrs a = {};
	struct flow f = {};
	struct bpf_sock_tuple t = {};
	parse_v4(ip, end, &a, &f, &t);
	struct ep_value *from = endpoint(TWILL_AF_INET, a.saddr);
	if (!from || from->ifindex != skb->ifindex)
		return drop(skb, V_SPOOFED);
	/* Options or fragments: through the stack, never redirected. */
	if (ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))
		f.ctl = 1;
	return from_pod(skb, from, &a, &f, &t, sizeof(t.ipv4));
}

static __always_inline int from_pod_v6(struct __sk_buff *skb, struct ipv6hdr *ip6, void *end)
{
	__u32 w0 = ip6->saddr.in6_u.u6_addr32[0];
	/* fe80::/10 (neighbour discovery) and :: (MLD, DAD) never leave the link. */
	if ((w0 & bpf_htonl(0xffc00000)) == bpf_htonl(0xfe800000) ||
	    !(w0 | ip6->saddr.in6_u.u6_addr32[1] | ip6->saddr.in6_u.u6_addr32[2] | ip6->saddr.in6_u.u6_addr32[3]))
		return pass(skb);
	struct addrs a = {};
	struct flow f = {};
	struct bpf_sock_tuple t = {};
	parse_v6(ip6, end, &a, &f, &t);
	struct ep_value *from = endpoint(TWILL_AF_INET6, a.saddr);
	if (!from || from->ifindex != skb->ifindex)
		return drop(skb, V_SPOOFED);
	return from_pod(skb, from, &a, &f, &t, sizeof(t.ipv6));
}

SEC("tc/from_pod")
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
		return (void *)(ip + 1) > end ? drop(skb, V_SPOOFED) : from_pod_v4(skb, ip, end);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		return (void *)(ip6 + 1) > end ? drop(skb, V_SPOOFED) : from_pod_v6(skb, ip6, end);
	}
	return pass(skb);
}

/* A packet the stack delivers to a pod whose ingress a policy selects: the node's own
 * addresses (kubelet's probes), replies and ICMP reports pass; the rest needs a rule. An IP
 * packet for an address this veth does not serve never gets in (multicast and link-local
 * excepted). */
static __always_inline int to_pod(struct __sk_buff *skb, struct addrs *a, struct flow *f, struct bpf_sock_tuple *t, __u32 tlen)
{
	struct ep_value *ep = endpoint(a->family, a->daddr);
	if (!ep || ep->ifindex != skb->ifindex)
		return drop(skb, V_DENY_IN);
	if (!(ep->flags & EP_F_POL_IN) || f->reply || f->link)
		return PASS;
	struct ipc_value *peer = ipc(a->family, a->saddr);
	if (peer && (peer->flags & IPC_F_HOST))
		return PASS;
	if (f->ports && (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP)) {
		struct ct_seen ct = {};
		ct_look(skb, t, tlen, f->proto, &ct);
		if (ct.reply)
			return PASS;
	}
	if (allowed(ep->policy_slot, POL_INGRESS, peer ? peer->identity : ID_WORLD, f))
		return PASS;
	return drop(skb, V_DENY_IN);
}

SEC("tc/to_pod")
int twill_to_pod(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return drop(skb, V_DENY_IN);
		__u32 d = bpf_ntohl(ip->daddr);
		if ((d >> 28) == 0xe || d == 0xffffffff)
			return PASS;
		struct addrs a = {};
		struct flow f = {};
		struct bpf_sock_tuple t = {};
		parse_v4(ip, end, &a, &f, &t);
		return to_pod(skb, &a, &f, &t, sizeof(t.ipv4));
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return drop(skb, V_DENY_IN);
		__u32 w0 = ip6->daddr.in6_u.u6_addr32[0];
		if ((w0 & bpf_htonl(0xff000000)) == bpf_htonl(0xff000000) || (w0 & bpf_htonl(0xffc00000)) == bpf_htonl(0xfe800000))
			return PASS;
		struct addrs a = {};
		struct flow f = {};
		struct bpf_sock_tuple t = {};
		parse_v6(ip6, end, &a, &f, &t);
		return to_pod(skb, &a, &f, &t, sizeof(t.ipv6));
	}
	return PASS;
}

char _license[] SEC("license") = "GPL";
