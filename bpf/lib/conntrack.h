/* Conntrack: whether the packet continues something — a connection the kernel's conntrack
 * holds (asked only for a packet a policy judges or the fast path may take), an ICMP echo
 * reply or error that answers what was let through, a later fragment of a datagram whose
 * first fragment was seen. */
#ifndef TWILL_LIB_CONNTRACK_H
#define TWILL_LIB_CONNTRACK_H

#include "ct.h"
#include "frags.h"
#include "icmp.h"

/* The fast path (deliver.h) takes a TCP/UDP packet between two local endpoints, neither
 * shaped (nor maybe shaped), that opens or closes nothing; conntrack must vouch for it. */
static __always_inline int fast_candidate(struct pkt *p, struct verdict_ctx *c)
{
	struct l4 *f = &p->l4;
	__u32 to_flags = c->to ? c->to->flags : 0;
	return c->to && f->ports && !f->ctl && (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP) &&
	       !((to_flags | c->from->flags) & (EP_F_NO_FAST | EP_F_PENDING));
}

static __always_inline enum reason conntrack_from_pod(struct __sk_buff *skb, struct pkt *p, struct verdict_ctx *c)
{
	struct l4 *f = &p->l4;
	if (c->judge) {
		if (f->frag == FRAG_LATER && !frag_ports(skb, p))
			return REASON_FRAG_NOT_FOUND;
		if (f->frag == FRAG_FIRST)
			frag_note(skb, p);
		if (f->icmp >= ICMP_K_REPLY) {
			int ans = icmp_answers(skb, p, ECHO_RCVD);
			p->o.reply = ans ? 2 : 1;
			c->judge = !ans;
		}
	}
	c->fast = fast_candidate(p, c);
	if ((c->judge || c->fast) && f->ports && (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP)) {
		ct_look(skb, &p->t, p->tlen, f->proto, &c->ct);
		p->o.reply = c->ct.reply ? 2 : 1; /* the flow record needs no second lookup */
	}
	return REASON_CONTINUE;
}

static __always_inline enum reason conntrack_to_pod(struct __sk_buff *skb, struct pkt *p, struct verdict_ctx *c)
{
	struct l4 *f = &p->l4;
	if (!c->judge)
		return REASON_CONTINUE;
	if (f->frag == FRAG_LATER && !frag_ports(skb, p))
		return REASON_FRAG_NOT_FOUND;
	if (f->frag == FRAG_FIRST)
		frag_note(skb, p);
	if (f->icmp >= ICMP_K_REPLY) {
		int ans = icmp_answers(skb, p, ECHO_SENT);
		p->o.reply = ans ? 2 : 1;
		if (ans) {
			c->judge = 0;
			return REASON_CONTINUE;
		}
	}
	if (f->ports && (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP)) {
		ct_look(skb, &p->t, p->tlen, f->proto, &c->ct);
		p->o.reply = c->ct.reply ? 2 : 1;
		if (c->ct.reply)
			c->judge = 0;
	}
	return REASON_CONTINUE;
}

#endif
