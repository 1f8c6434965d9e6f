/* Policy (networks that enforce NetworkPolicy): the program at egress of a pod's veth
 * (packets into the pod) applies the pod's ingress rules to everything the stack delivers;
 * the one at ingress applies the sender's egress rules and, before a fast-path redirect, the
 * receiver's ingress rules. A verdict is at most five hash-free lookups — the peer's identity
 * in the ipcache, then (identity, protocol, port), (its namespace's class, ...), (any pod of
 * the cluster, ...) and (any, protocol, port) in the policy trie — whatever the number of
 * policies, rules, pods or nodes. Replies of a connection (conntrack's reply direction)
 * always pass; every packet of the original direction is judged, so a rule taken away stops
 * a connection already open. ICMP passes as a reply only when it answers something (an echo
 * reply to a request noted as let out, and as delivered, within the last 30 s; an error
 * quoting a connection conntrack tracks); the rest of ICMP is judged as a protocol without
 * ports. Later fragments are judged with their first fragment's ports; IPv6 is judged by the
 * transport header behind its extension headers. */
#ifndef TWILL_LIB_POLICY_H
#define TWILL_LIB_POLICY_H

#include "endpoints.h"
#include "icmp.h"

/* The policy that allows the peer (its ipcache entry; NULL: the world) on (protocol, port)
 * by the endpoint's rules of this direction, as its index + 1; 0 when none does. At most four
 * lookups of one key, the most specific first: the peer's identity, then for a pod its
 * namespace's class and the cluster's, then any peer. */
static __always_inline __u32 allowed(__u32 slot, __u8 dir, const struct ipc_value *peer, struct l4 *f)
{
	struct pol_key k = { .prefixlen = POL_KEY_BITS, .slot = slot, .identity = peer ? peer->identity : ID_WORLD, .dir = dir, .proto = f->proto, .port = f->ports ? f->dport : 0 };
	__u32 ns = peer && (peer->flags & IPC_F_POD) ? peer->ns : 0;
	struct pol_value *v = bpf_map_lookup_elem(&policy, &k);
	if (v)
		return v->policy + 1;
	if (ns) {
		k.identity = ns;
		v = bpf_map_lookup_elem(&policy, &k);
		if (v)
			return v->policy + 1;
		k.identity = CLASS_CLUSTER_POD;
		v = bpf_map_lookup_elem(&policy, &k);
		if (v)
			return v->policy + 1;
	}
	k.identity = ID_ANY;
	v = bpf_map_lookup_elem(&policy, &k);
	return v ? v->policy + 1 : 0;
}

static __always_inline enum reason deny(struct pkt *p, __u8 dir, __u32 slot)
{
	p->o.dir = dir;
	p->o.slot = slot;
	return REASON_POLICY_DENIED;
}

/* The sender's egress rules; then, for a packet the fast path would take past the
 * receiver's egress program, the receiver's ingress rules: a packet they deny goes by the
 * stack instead, where that program drops it and counts it. An echo request let out of a
 * pod whose ingress a policy selects is noted: its reply may come in. */
static __always_inline enum reason policy_from_pod(struct __sk_buff *skb, struct pkt *p, struct verdict_ctx *c)
{
	struct addrs *a = &p->a;
	struct l4 *f = &p->l4;
	struct ep_value *from = c->from;
	if (c->judge && !c->ct.reply) {
		__u32 by = allowed(from->policy_slot, POL_EGRESS, ipc(a->family, a->daddr), f);
		if (!by)
			return deny(p, POL_EGRESS, from->policy_slot);
		p->o.allowed_out = by;
	}
	if (f->icmp == ICMP_K_REQUEST && (from->flags & EP_F_POL_IN))
		echo_note(skb, p, ECHO_SENT);
	struct ep_value *to = c->to;
	if (c->fast && c->ct.direct && to && (to->flags & EP_F_POL_IN) && !c->ct.reply) {
		__u32 by = allowed(to->policy_slot, POL_INGRESS, ipc(a->family, a->saddr), f);
		if (!by)
			c->fast = 0;
		else
			p->o.allowed_in = by;
	}
	return REASON_CONTINUE;
}

/* The pod's ingress rules, for what conntrack and the ICMP records did not pass as a reply. */
static __always_inline enum reason policy_to_pod(struct __sk_buff *skb, struct pkt *p, struct verdict_ctx *c)
{
	if (!c->judge)
		return REASON_CONTINUE;
	__u32 by = allowed(c->to->policy_slot, POL_INGRESS, c->peer, &p->l4);
	if (!by)
		return deny(p, POL_INGRESS, c->to->policy_slot);
	p->o.allowed_in = by;
	return REASON_CONTINUE;
}

#endif
