/* Fragments: a later fragment carries no transport header; the program that judges it takes
 * the ports of its first fragment, noted in the frags map.
 *
 * Echo and fragment records are keyed by the veth whose program notes and reads them: a
 * record serves that pod alone (a pod that reuses an address on another veth inherits none),
 * and expires. What a pod flooding either map can still do: push others' records out of the
 * LRU before their reply or later fragment comes (a lost ping, a datagram to resend); it can
 * never make a record that lets anything else pass. */
#ifndef TWILL_LIB_FRAGS_H
#define TWILL_LIB_FRAGS_H

#include "ct.h"
#include "parse.h"

static __always_inline void frag_key_of(struct __sk_buff *skb, struct pkt *p, struct frag_key *k)
{
	k->ifindex = skb->ifindex;
	k->family = p->a.family;
	k->proto = p->l4.proto;
	k->id = p->l4.frag_id;
	__builtin_memcpy(k->saddr, p->a.saddr, 16);
	__builtin_memcpy(k->daddr, p->a.daddr, 16);
}

/* A first fragment's ports (ICMP: its kind and echo id) for the later ones. Its source was
 * validated (or it comes from the stack): a pod can only describe its own datagrams, and
 * the kernel reassembles them behind the header that was judged. */
static __always_inline void frag_note(struct __sk_buff *skb, struct pkt *p)
{
	if (!p->l4.ports && !p->l4.icmp)
		return;
	struct frag_key k = {};
	frag_key_of(skb, p, &k);
	struct frag_value v = { .sport = p->l4.sport, .dport = p->l4.dport, .icmp = p->l4.icmp, .ports = p->l4.ports, .echo_id = p->l4.echo_id, .until_ns = bpf_ktime_get_ns() + record_ttl() };
	bpf_map_update_elem(&frags, &k, &v, BPF_ANY);
}

/* A later fragment takes its first one's transport fields; 0 when that was not seen. */
static __always_inline int frag_ports(struct __sk_buff *skb, struct pkt *p)
{
	struct frag_key k = {};
	frag_key_of(skb, p, &k);
	struct frag_value *v = bpf_map_lookup_elem(&frags, &k);
	if (!v || v->until_ns < bpf_ktime_get_ns())
		return 0;
	p->l4.sport = v->sport;
	p->l4.dport = v->dport;
	p->l4.icmp = v->icmp;
	p->l4.ports = v->ports;
	p->l4.echo_id = v->echo_id;
	set_tuple(p);
	return 1;
}

#endif
