// SPDX-License-Identifier: GPL-2.0
/* twill's tc programs, on every pod's host-side veth: twill_from_pod at its ingress (packets
 * leaving the pod), twill_to_pod at its egress (packets the stack delivers into the pod,
 * attached on networks that enforce NetworkPolicy). They trust nothing a pod writes.
 *
 * The pipeline, the one place its order is written down. Each stage returns a named reason
 * (enum reason, twill_maps.h): REASON_CONTINUE goes on to the next stage; any other ends the
 * pipeline with that verdict (REASON_PASS, REASON_REDIRECT) or drop (Hubble's DropReason).
 *
 *   1. parse      lib/parse.h      Ethernet, IPv4/IPv6 and extension headers, the L4 summary
 *   2. validate   lib/validate.h   the source is the pod's own (from_pod) or the destination
 *                                  is this veth's pod (to_pod); nothing hidden or unreadable
 *   3. service    lib/service.h    Service translation goes here (empty: continues)
 *   4. conntrack  lib/conntrack.h  a reply of a connection conntrack holds, an ICMP answer
 *                                  (lib/icmp.h), a later fragment's ports (lib/frags.h)
 *   5. policy     lib/policy.h     the sender's egress and the receiver's ingress rules
 *   6. deliver    lib/deliver.h    into the destination pod (fast path) or to the stack;
 *                                  the verdict becomes a tc action and is counted
 *                                  (lib/counters.h)
 *   7. record     lib/record.h     the flow record and its events, within a budget
 *
 * Map definitions are in lib/maps.h, their layouts and every constant the loader shares in
 * twill_maps.h. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/validate.h"
#include "lib/service.h"
#include "lib/conntrack.h"
#include "lib/policy.h"
#include "lib/deliver.h"
#include "lib/record.h"

SEC("tc/from_pod")
int twill_from_pod(struct __sk_buff *skb)
{
	struct pkt p = {};
	struct verdict_ctx c = {};
	enum reason r;

	r = parse_from_pod(skb, &p);
	if (r == REASON_CONTINUE)
		r = validate_from_pod(skb, &p, &c);
	if (r == REASON_CONTINUE)
		r = translate_service(skb, &p, &c);
	if (r == REASON_CONTINUE)
		r = conntrack_from_pod(skb, &p, &c);
	if (r == REASON_CONTINUE)
		r = policy_from_pod(skb, &p, &c);
	if (r == REASON_CONTINUE)
		r = deliver_from_pod(skb, &p, &c);
	int act = act_from_pod(skb, &p, &c, r);
	record(skb, &p);
	return act;
}

SEC("tc/to_pod")
int twill_to_pod(struct __sk_buff *skb)
{
	struct pkt p = {};
	struct verdict_ctx c = {};
	enum reason r;

	r = parse_to_pod(skb, &p);
	if (r == REASON_CONTINUE)
		r = validate_to_pod(skb, &p, &c);
	if (r == REASON_CONTINUE)
		r = translate_service(skb, &p, &c);
	if (r == REASON_CONTINUE)
		r = conntrack_to_pod(skb, &p, &c);
	if (r == REASON_CONTINUE)
		r = policy_to_pod(skb, &p, &c);
	if (r == REASON_CONTINUE)
		r = deliver_to_pod(skb, &p, &c);
	int act = act_to_pod(skb, &p, r);
	record(skb, &p);
	return act;
}

char _license[] SEC("license") = "GPL";
