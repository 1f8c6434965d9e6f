/* ICMP that answers something: echo requests noted where they were let out or delivered
 * (conntrack's kfuncs look up TCP and UDP only), and the packet an ICMP error quotes. */
#ifndef TWILL_LIB_ICMP_H
#define TWILL_LIB_ICMP_H

#include "ct.h"

/* The packet an ICMP error quotes (TCP or UDP), as 16-byte addresses. */
struct quoted {
	__u8 proto;
	__u8 pad;
	__be16 sport;
	__be16 dport;
	__u8 pad2[2];
	__u8 saddr[16];
	__u8 daddr[16];
};

static __always_inline void echo_key_of(struct __sk_buff *skb, struct pkt *p, struct echo_key *k, __u8 kind, const __u8 *requester, const __u8 *responder)
{
	k->ifindex = skb->ifindex;
	k->family = p->a.family;
	k->kind = kind;
	k->id = p->l4.echo_id;
	__builtin_memcpy(k->requester, requester, 16);
	__builtin_memcpy(k->responder, responder, 16);
}

/* An echo request let out (ECHO_SENT) or delivered (ECHO_RCVD): its reply may pass. */
static __always_inline void echo_note(struct __sk_buff *skb, struct pkt *p, __u8 kind)
{
	struct echo_key k = {};
	echo_key_of(skb, p, &k, kind, p->a.saddr, p->a.daddr);
	__u64 now = bpf_ktime_get_ns() + record_ttl();
	bpf_map_update_elem(&echoes, &k, &now, BPF_ANY);
}

/* The packet an ICMP error quotes: its IP header (IPv4 without options, not a later
 * fragment) and the 4 bytes after it (TCP and UDP ports); 0 when there is no such header.
 * Read with bpf_skb_load_bytes: only ICMP errors pay for it. */
static __always_inline int quote(struct __sk_buff *skb, __u32 family, __u32 off, struct quoted *q)
{
	if (family == TWILL_AF_INET) {
		struct {
			struct iphdr ip;
			__be16 ports[2];
		} b;
		if (bpf_skb_load_bytes(skb, off, &b, sizeof(b)) < 0)
			return 0;
		if (b.ip.version != 4 || b.ip.ihl != 5 || (b.ip.frag_off & bpf_htons(0x1fff)))
			return 0;
		q->proto = b.ip.protocol;
		__builtin_memcpy(q->saddr, &b.ip.saddr, 4);
		__builtin_memcpy(q->daddr, &b.ip.daddr, 4);
		q->sport = b.ports[0];
		q->dport = b.ports[1];
	} else {
		struct {
			struct ipv6hdr ip6;
			__be16 ports[2];
		} b;
		if (bpf_skb_load_bytes(skb, off, &b, sizeof(b)) < 0)
			return 0;
		q->proto = b.ip6.nexthdr;
		__builtin_memcpy(q->saddr, &b.ip6.saddr, 16);
		__builtin_memcpy(q->daddr, &b.ip6.daddr, 16);
		q->sport = b.ports[0];
		q->dport = b.ports[1];
	}
	return 1;
}

/* Whether an ICMP echo reply or error answers something, and so passes as a reply: an echo
 * reply to a request noted as kind (ECHO_SENT at the requester's veth, ECHO_RCVD at the
 * responder's); an error sent to the source of the packet it quotes, whose connection the
 * kernel's conntrack tracks (the quoted tuple as it is, then reversed: a NAT'd connection
 * matches one of the two). A pod (ECHO_RCVD: the responder's own veth) reports only on a
 * packet sent to it: it is no router. */
static __always_inline int icmp_answers(struct __sk_buff *skb, struct pkt *p, __u8 kind)
{
	if (p->l4.icmp == ICMP_K_REPLY) {
		struct echo_key k = {};
		echo_key_of(skb, p, &k, kind, p->a.daddr, p->a.saddr);
		__u64 *at = bpf_map_lookup_elem(&echoes, &k);
		return at && *at >= bpf_ktime_get_ns();
	}
	struct quoted qb = {}, *q = &qb;
	if (p->l4.icmp != ICMP_K_ERROR || !quote(skb, p->a.family, p->l4.l4off + 8, q))
		return 0;
	if (q->proto != IPPROTO_TCP && q->proto != IPPROTO_UDP)
		return 0;
	if (!same16(q->saddr, p->a.daddr))
		return 0;
	if (kind == ECHO_RCVD && !same16(q->daddr, p->a.saddr))
		return 0;
	struct ct_seen ct = {};
#pragma clang loop unroll(full)
	for (int swap = 0; swap < 2 && !ct.found; swap++) {
		struct bpf_sock_tuple t = {};
		const __u8 *src = swap ? q->daddr : q->saddr, *dst = swap ? q->saddr : q->daddr;
		__u32 tlen;
		if (p->a.family == TWILL_AF_INET) {
			__builtin_memcpy(&t.ipv4.saddr, src, 4);
			__builtin_memcpy(&t.ipv4.daddr, dst, 4);
			t.ipv4.sport = swap ? q->dport : q->sport;
			t.ipv4.dport = swap ? q->sport : q->dport;
			tlen = sizeof(t.ipv4);
		} else {
			__builtin_memcpy(t.ipv6.saddr, src, 16);
			__builtin_memcpy(t.ipv6.daddr, dst, 16);
			t.ipv6.sport = swap ? q->dport : q->sport;
			t.ipv6.dport = swap ? q->sport : q->dport;
			tlen = sizeof(t.ipv6);
		}
		ct_look(skb, &t, tlen, q->proto, &ct);
	}
	return ct.found;
}

#endif
