/* Record: every flow a program judges is kept in an LRU map (first/last seen, packets,
 * bytes, verdict, reason, the policy that allowed or the pod whose policy denied it), so a
 * drop can be looked at after the fact with no reader running. A new flow, each drop and a
 * TCP flow's end become ring buffer events only while a reader says it reads (a deadline in
 * the observer map): with nobody reading, no event is written. A flow's drops make at most
 * one event per ~1 s window; new records and their events come out of a per-veth budget
 * (RECORD_BURST, then one per RECORD_INTERVAL_NS), past which they are only counted. */
#ifndef TWILL_LIB_RECORD_H
#define TWILL_LIB_RECORD_H

#include "ct.h"

static __always_inline void emit(__u32 kind, struct flow_key *k, struct flow_value *v, __u64 now)
{
	__u32 i = OBS_READER;
	__u64 *until = bpf_map_lookup_elem(&observer, &i);
	if (!until || *until < now)
		return;
	struct flow_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		i = OBS_LOST;
		__u64 *lost = bpf_map_lookup_elem(&observer, &i);
		if (lost)
			__sync_fetch_and_add(lost, 1);
		return;
	}
	e->time_ns = now;
	e->kind = kind;
	__builtin_memcpy(&e->key, k, sizeof(*k));
	__builtin_memcpy(&e->value, v, sizeof(*v));
	/* The reader polls: no wakeup to pay for on the packet's path. */
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

/* The packet into its flow's record; an event for a new flow, a drop, a TCP flow's end, or a
 * verdict that changed. An established flow's packet costs one LRU lookup and a few adds. */
static __always_inline void record(struct __sk_buff *skb, struct pkt *p)
{
	struct obs *o = &p->o;
	if (o->skip || !o->verdict)
		return;
	__u32 ci = OBS_CONF;
	__u64 *conf = bpf_map_lookup_elem(&observer, &ci);
	if (!conf || (*conf & OBS_CONF_OFF))
		return;
	struct flow_key k = { .family = p->a.family, .proto = p->l4.proto, .sport = p->l4.sport, .dport = p->l4.dport };
	__builtin_memcpy(k.saddr, p->a.saddr, 16);
	__builtin_memcpy(k.daddr, p->a.daddr, 16);
	__u64 now = bpf_ktime_get_ns();
	__u16 win = now >> 30;
	struct flow_value *v = bpf_map_lookup_elem(&flows, &k);
	if (v) {
		__u32 kind = 0;
		/* Plain adds: one direction of a flow is judged on one CPU at a time (its sender's), and
		 * a history may lose a rare increment where a locked add would cost every packet. The
		 * per-veth counters are per CPU and exact. */
		v->last_ns = now;
		v->packets++;
		v->bytes += skb->len;
		if ((v->tcp_flags | p->l4.tcp_flags) != v->tcp_flags)
			v->tcp_flags |= p->l4.tcp_flags;
		if (v->point != o->point) /* a connection's first packets take the stack, the rest may be redirected */
			v->point = o->point;
		if (v->verdict != o->verdict || (o->verdict == FLOW_DROPPED && v->reason != o->reason)) {
			v->verdict = o->verdict;
			v->reason = o->reason;
			v->dir = o->dir;
			v->slot = o->slot;
			kind = o->verdict == FLOW_DROPPED ? EV_DROP : EV_NEW;
		} else if (o->verdict == FLOW_DROPPED) {
			kind = EV_DROP;
		} else if (p->l4.tcp_flags & 0x5) { /* FIN or RST */
			kind = EV_END;
		}
		if (o->allowed_out)
			v->allowed_out = o->allowed_out;
		if (o->allowed_in)
			v->allowed_in = o->allowed_in;
		/* A flow's drops make one event per window: a pod flooding a denied peer cannot fill
		 * the ring buffer for everyone else's events. */
		if (kind == EV_DROP) {
			if (v->event_win == win)
				kind = 0;
			else
				v->event_win = win;
		}
		if (kind)
			emit(kind, &k, v, now);
		return;
	}
	/* Not looked up by the verdict: conntrack now. Unknown to it, the packet opens a connection
	 * (conntrack will make it the original direction); the verdict's own lookups say the same. */
	if (!o->reply && p->l4.ports && (p->l4.proto == IPPROTO_TCP || p->l4.proto == IPPROTO_UDP)) {
		struct ct_seen ct = {};
		ct_look(skb, &p->t, p->tlen, p->l4.proto, &ct);
		o->reply = ct.reply ? 2 : 1;
	} else if (!o->reply && (p->l4.proto == IPPROTO_ICMP || p->l4.proto == IPPROTO_ICMPV6)) {
		/* What it claims (nothing judged it), from the type: a field no branch has fixed keeps
		 * the verifier from walking this once per kind. */
		__u8 type = bpf_ntohs(p->l4.sport);
		o->reply = (p->l4.proto == IPPROTO_ICMP ? type == 0 || type == 3 || type == 11 || type == 12 : type == 129 || (type >= 1 && type <= 4)) ? 2 : 1;
	}
	/* A new record and its event come out of the veth's budget (per CPU): a pod opening flows
	 * by the thousand (its own valid source, a new port each) is counted, and cannot push the
	 * other pods' flows out of the history nor fill the ring buffer. Established flows (above)
	 * never pay. */
	__u32 ck = skb->ifindex;
	struct ep_counters *c = bpf_map_lookup_elem(&counters, &ck);
	if (c) {
		__u64 tat = c->budget_tat < now ? now : c->budget_tat;
		if (tat > now + RECORD_BURST * RECORD_INTERVAL_NS) {
			c->records_suppressed++;
			return;
		}
		c->budget_tat = tat + RECORD_INTERVAL_NS;
	}
	struct flow_value nv = {
		.first_ns = now, .last_ns = now, .packets = 1, .bytes = skb->len,
		.allowed_out = o->allowed_out, .allowed_in = o->allowed_in, .slot = o->slot,
		.verdict = o->verdict, .reason = o->reason, .point = o->point, .tcp_flags = p->l4.tcp_flags, .reply = o->reply, .dir = o->dir,
		.ifindex = skb->ifindex, .event_win = o->verdict == FLOW_DROPPED ? win : 0,
	};
	bpf_map_update_elem(&flows, &k, &nv, BPF_ANY);
	emit(o->verdict == FLOW_DROPPED ? EV_DROP : EV_NEW, &k, &nv, now);
}

#endif
