/* The per-veth counters (per CPU): what each verdict cost in packets and bytes. */
#ifndef TWILL_LIB_COUNTERS_H
#define TWILL_LIB_COUNTERS_H

#include "maps.h"

enum count_as { COUNT_PASS, COUNT_REDIRECT, COUNT_SPOOFED, COUNT_DENY_IN, COUNT_DENY_OUT };

static __always_inline void count(struct __sk_buff *skb, enum count_as v)
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
	case COUNT_REDIRECT:
		c->redirect_packets++;
		c->redirect_bytes += skb->len;
		break;
	case COUNT_SPOOFED:
		c->spoofed_packets++;
		c->spoofed_bytes += skb->len;
		break;
	case COUNT_DENY_IN:
		c->policy_in_packets++;
		c->policy_in_bytes += skb->len;
		break;
	case COUNT_DENY_OUT:
		c->policy_out_packets++;
		c->policy_out_bytes += skb->len;
		break;
	default:
		c->pass_packets++;
		c->pass_bytes += skb->len;
	}
}

#endif
