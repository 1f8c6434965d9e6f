/* Deliver: what a verdict does to the packet, and what it costs in the counters.
 *
 * Fast path: a TCP/UDP packet between two local endpoints is handed straight into the
 * destination pod with bpf_redirect_peer() only when the host's conntrack already holds the
 * connection confirmed, answered (both directions crossed the host's netfilter) and not
 * NAT'd. The decision rests on what the kernel knows, never on state a pod's packets can
 * write; a NAT'd flow (portmap hostPort, hairpin, a kube-proxy Service) always goes back
 * through conntrack for its reverse translation. TCP SYN/FIN/RST take the stack so conntrack
 * sees every connection open and close, and its entries age as usual. Everything else
 * continues to the kernel stack. */
#ifndef TWILL_LIB_DELIVER_H
#define TWILL_LIB_DELIVER_H

#include "counters.h"
#include "icmp.h"

static __always_inline enum reason deliver_from_pod(struct __sk_buff *skb, struct pkt *p, struct verdict_ctx *c)
{
	struct ep_value *to = c->to;
	/* The receiver's egress program judges and records what the stack delivers to it. */
	p->o.skip = to && (to->flags & EP_F_POL_IN);
	if (!c->fast || !c->ct.direct || !to)
		return REASON_PASS;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return REASON_PASS;
	__builtin_memcpy(eth->h_dest, to->pod_mac, 6);
	__builtin_memcpy(eth->h_source, to->host_mac, 6);
	c->redirect_to = to->ifindex;
	/* A redirect skips the receiver's egress program: this one records it. */
	p->o.skip = 0;
	return REASON_REDIRECT;
}

/* An echo request delivered to a pod whose egress a policy selects is noted: its reply may
 * leave. */
static __always_inline enum reason deliver_to_pod(struct __sk_buff *skb, struct pkt *p, struct verdict_ctx *c)
{
	if (p->l4.icmp == ICMP_K_REQUEST && (c->to->flags & EP_F_POL_OUT))
		echo_note(skb, p, ECHO_RCVD);
	return REASON_PASS;
}

/* The verdict of the from-pod program as a tc action, counted. A drop is the pod's egress
 * policy's (policy_out) or, for anything the pod forged or hid, spoofed. */
static __always_inline int act_from_pod(struct __sk_buff *skb, struct pkt *p, struct verdict_ctx *c, enum reason r)
{
	struct obs *o = &p->o;
	if (r == REASON_REDIRECT) {
		count(skb, COUNT_REDIRECT);
		o->verdict = FLOW_FORWARDED;
		o->point = POINT_TO_ENDPOINT;
		return bpf_redirect_peer(c->redirect_to, 0);
	}
	/* Only an explicit pass passes: a stage that ended the pipeline without a verdict
	 * (REASON_CONTINUE) or a reason this code does not know is a drop. */
	if (r == REASON_PASS) {
		count(skb, COUNT_PASS);
		o->verdict = FLOW_FORWARDED;
		o->point = POINT_TO_STACK;
		return TC_PASS;
	}
	count(skb, r == REASON_POLICY_DENIED || r == REASON_FRAG_NOT_FOUND ? COUNT_DENY_OUT : COUNT_SPOOFED);
	o->verdict = FLOW_DROPPED;
	o->reason = r;
	return TC_ACT_SHOT;
}

/* The verdict of the to-pod program: only its drops are counted (policy_in); what passes
 * was counted by the program that sent it. */
static __always_inline int act_to_pod(struct __sk_buff *skb, struct pkt *p, enum reason r)
{
	if (r == REASON_PASS || r == REASON_REDIRECT)
		return TC_PASS;
	count(skb, COUNT_DENY_IN);
	p->o.verdict = FLOW_DROPPED;
	p->o.reason = r;
	return TC_ACT_SHOT;
}

#endif
