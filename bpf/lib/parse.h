/* Parse: the frame's Ethernet, IPv4 or IPv6 (through its extension headers) and transport
 * headers into struct pkt. Parsing judges nothing, save what it cannot read: a frame that
 * is no IP packet, or one too short to name its source, ends here. */
#ifndef TWILL_LIB_PARSE_H
#define TWILL_LIB_PARSE_H

#include "pkt.h"

static __always_inline void parse_l4(void *l4, void *end, __u8 proto, struct l4 *f)
{
	f->proto = proto;
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > end) {
			f->bad = BAD_CUT;
			return;
		}
		f->ctl = th->syn || th->fin || th->rst;
		f->tcp_flags = ((__u8 *)th)[13];
	} else if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
		__u8 *t = l4;
		if ((void *)(t + 8) > end) {
			f->bad = BAD_CUT; /* short, or beyond the linear area: never judged as what it claims */
			return;
		}
		__u8 type = t[0];
		f->sport = bpf_htons(type);
		f->dport = bpf_htons(t[1]);
		if (proto == IPPROTO_ICMP) {
			if (type == 8 || type == 0) {
				f->icmp = type == 8 ? ICMP_K_REQUEST : ICMP_K_REPLY;
				f->echo_id = *(__be16 *)(t + 4);
			} else if (type == 3 || type == 11 || type == 12) {
				f->icmp = ICMP_K_ERROR;
			}
		} else {
			if (type == 128 || type == 129) {
				f->icmp = type == 128 ? ICMP_K_REQUEST : ICMP_K_REPLY;
				f->echo_id = *(__be16 *)(t + 4);
			} else if (type >= 1 && type <= 4) {
				f->icmp = ICMP_K_ERROR;
			} else if ((type >= 130 && type <= 137) || type == 143) {
				f->link = 1; /* the caller keeps it only for a link-local or multicast destination */
			}
		}
		return;
	} else if (proto != IPPROTO_UDP && proto != IPPROTO_SCTP) {
		return;
	}
	if (l4 + 4 > end) {
		f->bad = BAD_CUT;
		return;
	}
	__be16 *p = l4;
	f->sport = p[0];
	f->dport = p[1];
	f->ports = 1;
}

/* The conntrack tuple of the packet's addresses and ports. */
static __always_inline void set_tuple(struct pkt *p)
{
	if (p->a.family == TWILL_AF_INET) {
		__builtin_memcpy(&p->t.ipv4.saddr, p->a.saddr, 4);
		__builtin_memcpy(&p->t.ipv4.daddr, p->a.daddr, 4);
		p->t.ipv4.sport = p->l4.sport;
		p->t.ipv4.dport = p->l4.dport;
		p->tlen = sizeof(p->t.ipv4);
	} else {
		__builtin_memcpy(p->t.ipv6.saddr, p->a.saddr, 16);
		__builtin_memcpy(p->t.ipv6.daddr, p->a.daddr, 16);
		p->t.ipv6.sport = p->l4.sport;
		p->t.ipv6.dport = p->l4.dport;
		p->tlen = sizeof(p->t.ipv6);
	}
}

static __always_inline int is_encap(__u8 proto)
{
	return proto == IPPROTO_IPIP_ || proto == IPPROTO_IPV6_ || proto == IPPROTO_GRE_ || proto == IPPROTO_L2TP_ || proto == IPPROTO_MPLS_;
}

/* An IPv4 packet's addresses, transport header and conntrack tuple. A later fragment carries
 * no ports: the program that judges it takes them from its first fragment (frag_ports). */
static __always_inline void parse_v4(struct iphdr *ip, void *end, struct pkt *p)
{
	p->a.family = TWILL_AF_INET;
	__builtin_memcpy(p->a.saddr, &ip->saddr, 4);
	__builtin_memcpy(p->a.daddr, &ip->daddr, 4);
	p->l4.frag_id = ip->id;
	if (ip->frag_off & bpf_htons(0x1fff)) {
		p->l4.frag = FRAG_LATER;
		p->l4.proto = ip->protocol;
	} else if (ip->ihl >= 5) {
		if (ip->frag_off & bpf_htons(0x2000))
			p->l4.frag = FRAG_FIRST;
		p->l4.l4off = ETH_HLEN + ip->ihl * 4;
		parse_l4((void *)ip + ip->ihl * 4, end, ip->protocol, &p->l4);
	} else {
		p->l4.proto = ip->protocol;
	}
	p->l4.encap = is_encap(p->l4.proto);
	set_tuple(p);
}

#define NH_HOPOPTS 0
#define NH_ROUTING 43
#define NH_FRAGMENT 44
#define NH_DSTOPTS 60
#define IPV6_EXT_MAX 4
#define IPV6_EXT_BYTES 512 /* at most this much of them */

/* The same for IPv6, through up to IPV6_EXT_MAX extension headers (hop-by-hop, routing,
 * destination options, fragment) to the transport header; a chain longer or cut short is
 * marked bad. */
static __always_inline void parse_v6(struct __sk_buff *skb, struct ipv6hdr *ip6, void *end, struct pkt *p)
{
	p->a.family = TWILL_AF_INET6;
	__builtin_memcpy(p->a.saddr, &ip6->saddr, 16);
	__builtin_memcpy(p->a.daddr, &ip6->daddr, 16);
	/* The walk reads each header into the stack at an offset from the fixed header, rather
	 * than keeping a packet pointer per header: the verifier then meets one state after the
	 * walk, not one per path through it. */
	__u8 nh = ip6->nexthdr;
	void *l3 = ip6 + 1;
	__u32 off = 0;
#pragma clang loop unroll(full)
	for (int i = 0; i < IPV6_EXT_MAX; i++) {
		if (nh != NH_HOPOPTS && nh != NH_ROUTING && nh != NH_DSTOPTS && nh != NH_FRAGMENT)
			break;
		if (off > IPV6_EXT_BYTES)
			break;
		__u8 e[8];
		if (bpf_skb_load_bytes(skb, ETH_HLEN + sizeof(*ip6) + off, e, sizeof(e)) < 0) {
			p->l4.bad = 1;
			break;
		}
		if (nh == NH_FRAGMENT) {
			__be16 fo = *(__be16 *)(e + 2);
			p->l4.frag_id = *(__u32 *)(e + 4);
			nh = e[0];
			off += 8;
			if (fo & bpf_htons(0xfff8)) {
				p->l4.frag = FRAG_LATER;
				break;
			}
			if (fo & bpf_htons(1))
				p->l4.frag = FRAG_FIRST;
		} else {
			/* A routing header with segments left sends the packet on to an address policy
			 * never judged: never from a pod. */
			if (nh == NH_ROUTING && e[3])
				p->l4.bad = 1;
			nh = e[0];
			off += (e[1] + 1) * 8;
		}
	}
	if (off > IPV6_EXT_BYTES || (p->l4.frag != FRAG_LATER && (nh == NH_HOPOPTS || nh == NH_ROUTING || nh == NH_DSTOPTS || nh == NH_FRAGMENT)))
		p->l4.bad = 1;
	/* Extension headers or fragments: through the stack (its defragmentation), never
	 * redirected, as IPv4 options and fragments. */
	if (off)
		p->l4.ctl = 1;
	if (p->l4.frag == FRAG_LATER || p->l4.bad) {
		p->l4.proto = nh;
	} else {
		p->l4.l4off = ETH_HLEN + sizeof(*ip6) + off;
		parse_l4(l3 + off, end, nh, &p->l4);
	}
	p->l4.encap = is_encap(p->l4.proto);
	/* Neighbour discovery and MLD never leave the link: only to a link-local (fe80::/10) or
	 * link-scope multicast (ff02::/16) address are they. */
	__u32 d0 = ip6->daddr.in6_u.u6_addr32[0];
	if (p->l4.link && (d0 & bpf_htonl(0xffff0000)) != bpf_htonl(0xff020000) && (d0 & bpf_htonl(0xffc00000)) != bpf_htonl(0xfe800000))
		p->l4.link = 0;
	set_tuple(p);
}

/* A frame from a pod. A pod sends IPv4, IPv6 and ARP, untagged, nothing else: a VLAN tag (the
 * kernel took an outer one off before this program: vlan_present) or any other ethertype
 * could carry IP that the stack unwraps after this program, unjudged (a second priority
 * tag). An IP packet too short to name its source is never let by. What ends here is
 * counted, never recorded. */
static __always_inline enum reason parse_from_pod(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	p->o.skip = 1;
	if ((void *)(eth + 1) > end)
		return REASON_PASS;
	if (skb->vlan_present)
		return REASON_UNSUPPORTED_L3;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return REASON_INVALID_PACKET;
		parse_v4(ip, end, p);
		/* IPv4 options only as IGMP's Router Alert, to a multicast group: source routes
		 * (LSRR, SSRR) would send it on to an address policy never judged, and nothing else
		 * a pod sends needs options. */
		p->bad_opts = ip->ihl != 5 && (ip->protocol != IPPROTO_IGMP_ || (bpf_ntohl(ip->daddr) >> 28) != 0xe);
		/* Options or fragments: through the stack, never redirected. */
		if (ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))
			p->l4.ctl = 1;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return REASON_INVALID_PACKET;
		parse_v6(skb, ip6, end, p);
		__u32 w0 = ip6->saddr.in6_u.u6_addr32[0];
		p->src_link = (w0 & bpf_htonl(0xffc00000)) == bpf_htonl(0xfe800000) ||
			      !(w0 | ip6->saddr.in6_u.u6_addr32[1] | ip6->saddr.in6_u.u6_addr32[2] | ip6->saddr.in6_u.u6_addr32[3]);
	} else if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
		return REASON_PASS;
	} else {
		return REASON_UNSUPPORTED_L3;
	}
	p->o.skip = 0;
	return REASON_CONTINUE;
}

/* A frame the stack delivers to a pod. Multicast, broadcast and link-local destinations
 * and what is not IP pass unparsed and unrecorded: no policy judges them. */
static __always_inline enum reason parse_to_pod(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	p->o.skip = 1;
	if ((void *)(eth + 1) > end)
		return REASON_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return REASON_INVALID_PACKET;
		__u32 d = bpf_ntohl(ip->daddr);
		if ((d >> 28) == 0xe || d == 0xffffffff)
			return REASON_PASS;
		parse_v4(ip, end, p);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return REASON_INVALID_PACKET;
		__u32 w0 = ip6->daddr.in6_u.u6_addr32[0];
		if ((w0 & bpf_htonl(0xff000000)) == bpf_htonl(0xff000000) || (w0 & bpf_htonl(0xffc00000)) == bpf_htonl(0xfe800000))
			return REASON_PASS;
		parse_v6(skb, ip6, end, p);
	} else {
		return REASON_PASS;
	}
	p->o.skip = 0;
	return REASON_CONTINUE;
}

#endif
