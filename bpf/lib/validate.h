/* Validate the source: a pod cannot borrow another pod's identity, nor hide a packet from
 * the program, so nothing later needs to ask who sent a packet.
 *
 * From a pod: an IP packet whose source is not one of the addresses twill published for the
 * pod behind this veth is dropped and counted, with no flow record (a record per forged key
 * would let a pod push every real flow out of the history). IPv6 link-local and unspecified
 * sources carry neighbour discovery, MLD and DAD to link-local or multicast addresses,
 * nothing else. Nor may a pod hide another source inside: IPIP, IPv6-in-IP, GRE, L2TP and
 * MPLS-in-IP from pods are dropped (the guard table refuses VXLAN to node addresses), and an
 * ICMP error a pod sends must quote a packet sent to that pod. A header the program cannot
 * read whole (an extension chain too long, a transport header cut short or beyond the linear
 * area) and source routes (IPv4 options other than IGMP's, IPv6 routing headers with
 * segments left) are dropped, whatever the policy.
 *
 * To a pod: an IP packet for an address this veth does not serve never gets in; the node's
 * own addresses (kubelet's probes) are never judged. */
#ifndef TWILL_LIB_VALIDATE_H
#define TWILL_LIB_VALIDATE_H

#include "endpoints.h"
#include "icmp.h"

static __always_inline enum reason validate_from_pod(struct __sk_buff *skb, struct pkt *p, struct verdict_ctx *c)
{
	struct addrs *a = &p->a;
	struct l4 *f = &p->l4;
	/* fe80::/10 and :: are no pod's address: only neighbour discovery, MLD and DAD, to a
	 * link-local or multicast address, may use them (and never leave the link). */
	if (p->src_link) {
		p->o.skip = 1;
		return f->link ? REASON_PASS : REASON_INVALID_SOURCE_IP;
	}
	struct ep_value *from = endpoint(a->family, a->saddr);
	if (!from || from->ifindex != skb->ifindex) {
		p->o.skip = 1; /* counted, never recorded: forged keys would push real flows out of the history */
		return REASON_INVALID_SOURCE_IP;
	}
	if (p->bad_opts)
		return REASON_INVALID_PACKET;
	c->from = from;
	/* Whatever a pod encapsulates would be delivered, once unwrapped, as coming from the
	 * inner source: never carried (the guard table refuses VXLAN to node addresses). */
	if (f->encap)
		return REASON_UNKNOWN_L4;
	/* What the program cannot read whole is never passed unjudged, policy or not: an ICMP
	 * error behind an unwalkable chain or out of the linear area would skip the check below.
	 * The pod's own stack never sends such (its headers are linear, its chains short). */
	if (f->bad)
		return f->bad == BAD_CUT ? REASON_INVALID_PACKET : REASON_BAD_EXT_HDR;
	/* A pod is no router: an ICMP error it sends reports on a packet sent to it, whatever the
	 * policy. Else it could break other pods' connections (port unreachable, frag needed)
	 * that the receiving node's conntrack rightly tracks. */
	if (f->icmp == ICMP_K_ERROR) {
		struct quoted q = {};
		if (!quote(skb, a->family, f->l4off + 8, &q) || !same16(q.daddr, a->saddr))
			return REASON_INVALID_PACKET;
	}
	c->judge = (from->flags & EP_F_POL_OUT) && !f->link;
	c->to = endpoint(a->family, a->daddr);
	return REASON_CONTINUE;
}

/* Only the pods a policy selects for ingress are judged (and recorded) here: the sender's
 * program records the rest. */
static __always_inline enum reason validate_to_pod(struct __sk_buff *skb, struct pkt *p, struct verdict_ctx *c)
{
	struct ep_value *ep = endpoint(p->a.family, p->a.daddr);
	if (!ep || ep->ifindex != skb->ifindex)
		return REASON_UNROUTABLE_IP;
	c->to = ep;
	if (!(ep->flags & EP_F_POL_IN) || p->l4.link) {
		p->o.skip = 1;
		return REASON_CONTINUE;
	}
	p->o.verdict = FLOW_FORWARDED;
	p->o.point = POINT_TO_ENDPOINT;
	c->peer = ipc(p->a.family, p->a.saddr);
	if (c->peer && (c->peer->flags & IPC_F_HOST))
		return REASON_CONTINUE;
	if (p->l4.bad)
		return p->l4.bad == BAD_CUT ? REASON_INVALID_PACKET : REASON_BAD_EXT_HDR;
	c->judge = 1;
	return REASON_CONTINUE;
}

#endif
