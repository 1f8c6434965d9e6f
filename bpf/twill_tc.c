// SPDX-License-Identifier: GPL-2.0
/* twill's tc program, attached at ingress of every pod's host-side veth (packets leaving
 * the pod). It trusts nothing a pod writes:
 *
 * 1. Source validation: an IP packet whose source is not one of the addresses twill
 *    published for the pod behind this veth is dropped and counted, with no flow record (a
 *    record per forged key would let a pod push every real flow out of the history). IPv6
 *    link-local and unspecified sources carry neighbour discovery, MLD and DAD to link-local
 *    or multicast addresses, nothing else. Nor may a pod hide another source inside: IPIP,
 *    IPv6-in-IP, GRE, L2TP and MPLS-in-IP from pods are dropped (the guard table refuses
 *    VXLAN to node addresses), and an ICMP error a pod sends must quote a packet sent to that
 *    pod. A pod cannot borrow another pod's identity, so nothing later needs to ask who sent
 *    a packet. Nor can it hide a packet from the program: anything but untagged IPv4, IPv6
 *    and ARP, a header the program cannot read whole (an extension chain too long, a
 *    transport header cut short or beyond the linear area) and source routes (IPv4 options
 *    other than IGMP's, IPv6 routing headers with segments left) are dropped, whatever the
 *    policy. Neighbour discovery and MLD pass unjudged only to fe80::/10 and ff02::/16.
 * 2. Fast path: a TCP/UDP packet between two local endpoints is handed straight into the
 *    destination pod with bpf_redirect_peer() only when the host's conntrack already holds
 *    the connection confirmed, answered (both directions crossed the host's netfilter) and
 *    not NAT'd. The decision rests on what the kernel knows, never on state a pod's packets
 *    can write; a NAT'd flow (portmap hostPort, hairpin, a kube-proxy Service) always goes
 *    back through conntrack for its reverse translation. TCP SYN/FIN/RST take the stack so
 *    conntrack sees every connection open and close, and its entries age as usual.
 * 3. Policy (networks that enforce NetworkPolicy): a second program at egress of the same
 *    veth (packets into the pod) applies the pod's ingress rules to everything the stack
 *    delivers; this one applies the sender's egress rules and, before a fast-path redirect,
 *    the receiver's ingress rules. A verdict is at most five hash-free lookups — the peer's
 *    identity in the ipcache, then (identity, protocol, port), (its namespace's class, ...),
 *    (any pod of the cluster, ...) and (any, protocol, port) in the policy trie — whatever
 *    the number of policies, rules, pods or nodes. Replies of a connection
 *    (conntrack's reply direction) always pass; every packet of the original direction is
 *    judged, so a rule taken away stops a connection already open. ICMP passes as a reply
 *    only when it answers something: an echo reply to a request noted as let out (and as
 *    delivered) within the last 30 s, an error quoting a connection conntrack tracks; the rest of ICMP is judged
 *    as a protocol without ports. Later fragments are judged with their first fragment's
 *    ports; IPv6 is judged by the transport header behind its extension headers.
 * 4. Visibility: every flow a program judges is kept in an LRU map (first/last seen, packets,
 *    bytes, verdict, reason, the policy that allowed or the pod whose policy denied it), so
 *    a drop can be looked at after the fact with no reader running. A new flow, each drop
 *    and a TCP flow's end become ring buffer events only while a reader says it reads (a
 *    deadline in the observer map): with nobody reading, no event is written. A flow's drops
 *    make at most one event per ~1 s window; new records and their events come out of a
 *    per-veth budget (RECORD_BURST, then one per RECORD_INTERVAL_NS), past which they are
 *    only counted.
 * Everything else continues to the kernel stack. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "twill_maps.h"

/* max_entries are the loader's defaults; it sizes the maps from the network's config. */
struct twill_map_def SEC("maps") endpoints = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(struct ep_key),
	.value_size = sizeof(struct ep_value),
	.max_entries = 1024,
	.map_flags = BPF_F_NO_PREALLOC,
};

struct twill_map_def SEC("maps") counters = {
	.type = BPF_MAP_TYPE_PERCPU_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(struct ep_counters),
	.max_entries = 1024,
	.map_flags = BPF_F_NO_PREALLOC,
};

struct twill_map_def SEC("maps") ipcache = {
	.type = BPF_MAP_TYPE_LPM_TRIE,
	.key_size = sizeof(struct ipc_key),
	.value_size = sizeof(struct ipc_value),
	.max_entries = 65536,
	.map_flags = BPF_F_NO_PREALLOC,
};

struct twill_map_def SEC("maps") policy = {
	.type = BPF_MAP_TYPE_LPM_TRIE,
	.key_size = sizeof(struct pol_key),
	.value_size = sizeof(struct pol_value),
	.max_entries = 65536,
	.map_flags = BPF_F_NO_PREALLOC,
};

struct twill_map_def SEC("maps") flows = {
	.type = BPF_MAP_TYPE_LRU_HASH,
	.key_size = sizeof(struct flow_key),
	.value_size = sizeof(struct flow_value),
	.max_entries = 8192,
};

struct twill_map_def SEC("maps") events = {
	.type = BPF_MAP_TYPE_RINGBUF,
	.max_entries = 256 * 1024,
};

struct twill_map_def SEC("maps") observer = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 4,
};

struct twill_map_def SEC("maps") frags = {
	.type = BPF_MAP_TYPE_LRU_HASH,
	.key_size = sizeof(struct frag_key),
	.value_size = sizeof(struct frag_value),
	.max_entries = 4096,
};

struct twill_map_def SEC("maps") echoes = {
	.type = BPF_MAP_TYPE_LRU_HASH,
	.key_size = sizeof(struct echo_key),
	.value_size = sizeof(__u64),
	.max_entries = 4096,
};

/* conntrack kfuncs (net/netfilter/nf_conntrack_bpf.c); the loader resolves their BTF ids. */
struct nf_conn;
struct bpf_ct_opts {
	__s32 netns_id;
	__s32 error;
	__u8 l4proto;
	__u8 dir; /* out: which of the entry's tuples matched */
	__u8 reserved[2];
};
extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *, struct bpf_sock_tuple *, __u32,
					 struct bpf_ct_opts *, __u32) __ksym;
extern void bpf_ct_release(struct nf_conn *) __ksym;

#define IPS_SEEN_REPLY (1 << 1)
#define IPS_CONFIRMED (1 << 3)
#define IPS_NAT_MASK ((1 << 4) | (1 << 5))
#define BPF_F_CURRENT_NETNS (-1)
#define IP_CT_DIR_REPLY 1
#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif
#define IPPROTO_IPIP_ 4
#define IPPROTO_IPV6_ 41
#define IPPROTO_GRE_ 47
#define IPPROTO_L2TP_ 115
#define IPPROTO_MPLS_ 137
#define IPPROTO_IGMP_ 2

#define PASS TC_ACT_UNSPEC /* == TCX_NEXT: later programs and filters (bandwidth) still run */

enum verdict { V_PASS, V_REDIRECT, V_SPOOFED, V_DENY_IN, V_DENY_OUT };

static __always_inline void count(struct __sk_buff *skb, enum verdict v)
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
	case V_REDIRECT:
		c->redirect_packets++;
		c->redirect_bytes += skb->len;
		break;
	case V_SPOOFED:
		c->spoofed_packets++;
		c->spoofed_bytes += skb->len;
		break;
	case V_DENY_IN:
		c->policy_in_packets++;
		c->policy_in_bytes += skb->len;
		break;
	case V_DENY_OUT:
		c->policy_out_packets++;
		c->policy_out_bytes += skb->len;
		break;
	default:
		c->pass_packets++;
		c->pass_bytes += skb->len;
	}
}

/* What the program needs of a packet's transport header. */
struct flow {
	/* What the flow record reads, in one 8-byte stack slot: the verifier compares a slot
	 * whole when any byte of it is read later, so the verdict's own flags below stay out of
	 * it and do not make it walk the record once per combination of them. */
	__u8 proto;
	__u8 ports;  /* TCP/UDP/SCTP with both ports read */
	__u8 tcp_flags;
	__u8 pad0;
	__be16 sport; /* ICMP: the type (network order) */
	__be16 dport; /* ICMP: the code */
	__u8 ctl;    /* TCP SYN/FIN/RST: always through conntrack */
	__u8 icmp;   /* ICMP_K_*: what the message claims to be; only a check makes it a reply */
	__u8 link;   /* ICMPv6 neighbour discovery and MLD to a link-local or multicast address: never judged */
	__u8 frag;   /* FRAG_FIRST (more follow) or FRAG_LATER (no transport header) */
	__u8 encap;  /* IPIP, IPv6-in-IP or GRE */
	__u8 bad;    /* IPv6 extension headers that cannot be walked, or a routing header with segments left */
	__be16 echo_id;
	__u32 frag_id;
	__u32 l4off; /* of the transport header in the frame */
} __attribute__((aligned(8)));

#define ICMP_K_REQUEST 1 /* echo request */
#define ICMP_K_REPLY 2   /* echo reply */
#define ICMP_K_ERROR 3   /* reports on a packet it quotes */
#define BAD_CUT 2 /* f->bad: the transport header is not all in the linear area (or short) */
#define FRAG_FIRST 1
#define FRAG_LATER 2

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

/* What the programs decided about a packet, for the flow record. */
struct obs {
	__u8 verdict;
	__u8 reason;
	__u8 point;
	__u8 dir;
	__u8 reply;
	__u8 skip; /* judged again at the receiver's veth, which records it */
	__u32 allowed_out;
	__u32 allowed_in;
	__u32 slot;
};

static __always_inline void parse_l4(void *l4, void *end, __u8 proto, struct flow *f)
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

struct ct_seen {
	__u8 found;
	__u8 reply;
	__u8 direct; /* confirmed, answered and not NAT'd: may take the fast path */
};

static __always_inline void ct_look(struct __sk_buff *skb, struct bpf_sock_tuple *t, __u32 tlen, __u8 proto, struct ct_seen *s)
{
	/* The verifier wants the length bounded by the tuple it describes. */
	if (tlen > sizeof(*t))
		return;
	struct bpf_ct_opts opts = { .netns_id = BPF_F_CURRENT_NETNS, .l4proto = proto };
	struct nf_conn *ct = bpf_skb_ct_lookup(skb, t, tlen, &opts, sizeof(opts));
	if (!ct)
		return;
	unsigned long status = *(volatile unsigned long *)((char *)ct + TWILL_CT_STATUS_MARKER);
	bpf_ct_release(ct);
	s->found = 1;
	s->reply = opts.dir == IP_CT_DIR_REPLY;
	s->direct = (status & (IPS_CONFIRMED | IPS_SEEN_REPLY)) == (IPS_CONFIRMED | IPS_SEEN_REPLY) && !(status & IPS_NAT_MASK);
}

static __always_inline struct ep_value *endpoint(__u32 family, const void *addr)
{
	struct ep_key k = { .family = family };
	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&endpoints, &k);
}

static __always_inline struct ipc_value *ipc(__u32 family, const void *addr)
{
	struct ipc_key k = { .prefixlen = 32 + 128, .family = family };
	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&ipcache, &k);
}

/* The policy that allows the peer (its ipcache entry; NULL: the world) on (protocol, port)
 * by the endpoint's rules of this direction, as its index + 1; 0 when none does. At most four
 * lookups of one key, the most specific first: the peer's identity, then for a pod its
 * namespace's class and the cluster's, then any peer. */
static __always_inline __u32 allowed(__u32 slot, __u8 dir, const struct ipc_value *peer, struct flow *f)
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

static __always_inline int redirect_to(struct __sk_buff *skb, struct ep_value *to, struct obs *o)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return -1;
	__builtin_memcpy(eth->h_dest, to->pod_mac, 6);
	__builtin_memcpy(eth->h_source, to->host_mac, 6);
	count(skb, V_REDIRECT);
	o->verdict = FLOW_FORWARDED;
	o->point = POINT_TO_ENDPOINT;
	return bpf_redirect_peer(to->ifindex, 0);
}

static __always_inline int pass(struct __sk_buff *skb, struct obs *o)
{
	count(skb, V_PASS);
	o->verdict = FLOW_FORWARDED;
	o->point = POINT_TO_STACK;
	return PASS;
}

static __always_inline int drop(struct __sk_buff *skb, enum verdict why, struct obs *o, __u8 reason)
{
	count(skb, why);
	o->verdict = FLOW_DROPPED;
	o->reason = reason;
	return TC_ACT_SHOT;
}

static __always_inline int deny(struct __sk_buff *skb, struct obs *o, __u8 dir, __u32 slot)
{
	o->dir = dir;
	o->slot = slot;
	return drop(skb, dir == POL_INGRESS ? V_DENY_IN : V_DENY_OUT, o, REASON_POLICY_DENIED);
}

/* Addresses of one packet, both as 16-byte keys (IPv4 in the first 4 bytes). */
struct addrs {
	__u32 family;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* One packet, as parsed: what the decision and the flow record need. */
struct pkt {
	struct addrs a;
	struct flow f;
	struct bpf_sock_tuple t;
	__u32 tlen;
	struct obs o;
};

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
	struct flow_key k = { .family = p->a.family, .proto = p->f.proto, .sport = p->f.sport, .dport = p->f.dport };
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
		if ((v->tcp_flags | p->f.tcp_flags) != v->tcp_flags)
			v->tcp_flags |= p->f.tcp_flags;
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
		} else if (p->f.tcp_flags & 0x5) { /* FIN or RST */
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
	if (!o->reply && p->f.ports && (p->f.proto == IPPROTO_TCP || p->f.proto == IPPROTO_UDP)) {
		struct ct_seen ct = {};
		ct_look(skb, &p->t, p->tlen, p->f.proto, &ct);
		o->reply = ct.reply ? 2 : 1;
	} else if (!o->reply && (p->f.proto == IPPROTO_ICMP || p->f.proto == IPPROTO_ICMPV6)) {
		/* What it claims (nothing judged it), from the type: a field no branch has fixed keeps
		 * the verifier from walking this once per kind. */
		__u8 type = bpf_ntohs(p->f.sport);
		o->reply = (p->f.proto == IPPROTO_ICMP ? type == 0 || type == 3 || type == 11 || type == 12 : type == 129 || (type >= 1 && type <= 4)) ? 2 : 1;
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
		.verdict = o->verdict, .reason = o->reason, .point = o->point, .tcp_flags = p->f.tcp_flags, .reply = o->reply, .dir = o->dir,
		.ifindex = skb->ifindex, .event_win = o->verdict == FLOW_DROPPED ? win : 0,
	};
	bpf_map_update_elem(&flows, &k, &nv, BPF_ANY);
	emit(o->verdict == FLOW_DROPPED ? EV_DROP : EV_NEW, &k, &nv, now);
}

static __always_inline void set_tuple(struct pkt *p)
{
	if (p->a.family == TWILL_AF_INET) {
		__builtin_memcpy(&p->t.ipv4.saddr, p->a.saddr, 4);
		__builtin_memcpy(&p->t.ipv4.daddr, p->a.daddr, 4);
		p->t.ipv4.sport = p->f.sport;
		p->t.ipv4.dport = p->f.dport;
		p->tlen = sizeof(p->t.ipv4);
	} else {
		__builtin_memcpy(p->t.ipv6.saddr, p->a.saddr, 16);
		__builtin_memcpy(p->t.ipv6.daddr, p->a.daddr, 16);
		p->t.ipv6.sport = p->f.sport;
		p->t.ipv6.dport = p->f.dport;
		p->tlen = sizeof(p->t.ipv6);
	}
}

static __always_inline int is_encap(__u8 proto)
{
	return proto == IPPROTO_IPIP_ || proto == IPPROTO_IPV6_ || proto == IPPROTO_GRE_ || proto == IPPROTO_L2TP_ || proto == IPPROTO_MPLS_;
}

static __always_inline int same16(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const void *)a, *y = (const void *)b;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/* How long an echo or fragment record answers: OBS_RECORD_TTL, else RECORD_TTL_NS. */
static __always_inline __u64 record_ttl(void)
{
	__u32 i = OBS_RECORD_TTL;
	__u64 *ttl = bpf_map_lookup_elem(&observer, &i);
	return ttl && *ttl ? *ttl : RECORD_TTL_NS;
}

/* Echo and fragment records are keyed by the veth whose program notes and reads them: a
 * record serves that pod alone (a pod that reuses an address on another veth inherits none),
 * and expires. What a pod flooding either map can still do: push others' records out of the
 * LRU before their reply or later fragment comes (a lost ping, a datagram to resend); it can
 * never make a record that lets anything else pass. */
static __always_inline void frag_key_of(struct __sk_buff *skb, struct pkt *p, struct frag_key *k)
{
	k->ifindex = skb->ifindex;
	k->family = p->a.family;
	k->proto = p->f.proto;
	k->id = p->f.frag_id;
	__builtin_memcpy(k->saddr, p->a.saddr, 16);
	__builtin_memcpy(k->daddr, p->a.daddr, 16);
}

/* A first fragment's ports (ICMP: its kind and echo id) for the later ones. Its source was
 * validated (or it comes from the stack): a pod can only describe its own datagrams, and
 * the kernel reassembles them behind the header that was judged. */
static __always_inline void frag_note(struct __sk_buff *skb, struct pkt *p)
{
	if (!p->f.ports && !p->f.icmp)
		return;
	struct frag_key k = {};
	frag_key_of(skb, p, &k);
	struct frag_value v = { .sport = p->f.sport, .dport = p->f.dport, .icmp = p->f.icmp, .ports = p->f.ports, .echo_id = p->f.echo_id, .until_ns = bpf_ktime_get_ns() + record_ttl() };
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
	p->f.sport = v->sport;
	p->f.dport = v->dport;
	p->f.icmp = v->icmp;
	p->f.ports = v->ports;
	p->f.echo_id = v->echo_id;
	set_tuple(p);
	return 1;
}

static __always_inline void echo_key_of(struct __sk_buff *skb, struct pkt *p, struct echo_key *k, __u8 kind, const __u8 *requester, const __u8 *responder)
{
	k->ifindex = skb->ifindex;
	k->family = p->a.family;
	k->kind = kind;
	k->id = p->f.echo_id;
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
	if (p->f.icmp == ICMP_K_REPLY) {
		struct echo_key k = {};
		echo_key_of(skb, p, &k, kind, p->a.daddr, p->a.saddr);
		__u64 *at = bpf_map_lookup_elem(&echoes, &k);
		return at && *at >= bpf_ktime_get_ns();
	}
	struct quoted qb = {}, *q = &qb;
	if (p->f.icmp != ICMP_K_ERROR || !quote(skb, p->a.family, p->f.l4off + 8, q))
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

/* A validated packet from a pod: the sender's egress rules, then into the destination pod
 * when it is a local endpoint, neither end is (or may be) shaped, conntrack vouches for the
 * flow and the receiver's ingress rules allow it; else on to the stack. */
static __always_inline int from_pod(struct __sk_buff *skb, struct ep_value *from, struct pkt *p)
{
	struct addrs *a = &p->a;
	struct flow *f = &p->f;
	/* Whatever a pod encapsulates would be delivered, once unwrapped, as coming from the
	 * inner source: never carried (the guard table refuses VXLAN to node addresses). */
	if (f->encap)
		return drop(skb, V_SPOOFED, &p->o, REASON_UNKNOWN_L4);
	/* What the program cannot read whole is never passed unjudged, policy or not: an ICMP
	 * error behind an unwalkable chain or out of the linear area would skip the check below.
	 * The pod's own stack never sends such (its headers are linear, its chains short). */
	if (f->bad)
		return drop(skb, V_SPOOFED, &p->o, f->bad == BAD_CUT ? REASON_INVALID_PACKET : REASON_BAD_EXT_HDR);

	/* A pod is no router: an ICMP error it sends reports on a packet sent to it, whatever the
	 * policy. Else it could break other pods' connections (port unreachable, frag needed)
	 * that the receiving node's conntrack rightly tracks. */
	if (f->icmp == ICMP_K_ERROR) {
		struct quoted q = {};
		if (!quote(skb, a->family, f->l4off + 8, &q) || !same16(q.daddr, a->saddr))
			return drop(skb, V_SPOOFED, &p->o, REASON_INVALID_PACKET);
	}
	int judge_out = (from->flags & EP_F_POL_OUT) && !f->link;
	if (judge_out) {
		if (f->frag == FRAG_LATER && !frag_ports(skb, p))
			return drop(skb, V_DENY_OUT, &p->o, REASON_FRAG_NOT_FOUND);
		if (f->frag == FRAG_FIRST)
			frag_note(skb, p);
		if (f->icmp >= ICMP_K_REPLY) {
			int ans = icmp_answers(skb, p, ECHO_RCVD);
			p->o.reply = ans ? 2 : 1;
			judge_out = !ans;
		}
	}
	struct ep_value *to = endpoint(a->family, a->daddr);
	__u32 to_flags = to ? to->flags : 0;
	struct ct_seen ct = {};
	int fast = to && f->ports && !f->ctl && (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP) &&
		   !((to_flags | from->flags) & (EP_F_NO_FAST | EP_F_PENDING));
	if ((judge_out || fast) && f->ports && (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP)) {
		ct_look(skb, &p->t, p->tlen, f->proto, &ct);
		p->o.reply = ct.reply ? 2 : 1; /* the flow record needs no second lookup */
	}
	if (judge_out && !ct.reply) {
		__u32 by = allowed(from->policy_slot, POL_EGRESS, ipc(a->family, a->daddr), f);
		if (!by)
			return deny(skb, &p->o, POL_EGRESS, from->policy_slot);
		p->o.allowed_out = by;
	}
	if (f->icmp == ICMP_K_REQUEST && (from->flags & EP_F_POL_IN))
		echo_note(skb, p, ECHO_SENT);
	/* The receiver's egress program judges and records what the stack delivers to it. */
	p->o.skip = (to_flags & EP_F_POL_IN) != 0;
	if (!fast || !ct.direct)
		return pass(skb, &p->o);
	/* A redirect skips the receiver's egress program: its ingress rules are applied here, and
	 * a packet they deny goes by the stack, where that program drops it and counts it. */
	if ((to_flags & EP_F_POL_IN) && !ct.reply) {
		__u32 by = allowed(to->policy_slot, POL_INGRESS, ipc(a->family, a->saddr), f);
		if (!by)
			return pass(skb, &p->o);
		p->o.allowed_in = by;
	}
	int r = redirect_to(skb, to, &p->o);
	if (r < 0)
		return pass(skb, &p->o);
	p->o.skip = 0;
	return r;
}

/* An IPv4 packet's addresses, transport header and conntrack tuple. A later fragment carries
 * no ports: the program that judges it takes them from its first fragment (frag_ports). */
static __always_inline void parse_v4(struct iphdr *ip, void *end, struct pkt *p)
{
	p->a.family = TWILL_AF_INET;
	__builtin_memcpy(p->a.saddr, &ip->saddr, 4);
	__builtin_memcpy(p->a.daddr, &ip->daddr, 4);
	p->f.frag_id = ip->id;
	if (ip->frag_off & bpf_htons(0x1fff)) {
		p->f.frag = FRAG_LATER;
		p->f.proto = ip->protocol;
	} else if (ip->ihl >= 5) {
		if (ip->frag_off & bpf_htons(0x2000))
			p->f.frag = FRAG_FIRST;
		p->f.l4off = ETH_HLEN + ip->ihl * 4;
		parse_l4((void *)ip + ip->ihl * 4, end, ip->protocol, &p->f);
	} else {
		p->f.proto = ip->protocol;
	}
	p->f.encap = is_encap(p->f.proto);
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
			p->f.bad = 1;
			break;
		}
		if (nh == NH_FRAGMENT) {
			__be16 fo = *(__be16 *)(e + 2);
			p->f.frag_id = *(__u32 *)(e + 4);
			nh = e[0];
			off += 8;
			if (fo & bpf_htons(0xfff8)) {
				p->f.frag = FRAG_LATER;
				break;
			}
			if (fo & bpf_htons(1))
				p->f.frag = FRAG_FIRST;
		} else {
			/* A routing header with segments left sends the packet on to an address policy
			 * never judged: never from a pod. */
			if (nh == NH_ROUTING && e[3])
				p->f.bad = 1;
			nh = e[0];
			off += (e[1] + 1) * 8;
		}
	}
	if (off > IPV6_EXT_BYTES || (p->f.frag != FRAG_LATER && (nh == NH_HOPOPTS || nh == NH_ROUTING || nh == NH_DSTOPTS || nh == NH_FRAGMENT)))
		p->f.bad = 1;
	/* Extension headers or fragments: through the stack (its defragmentation), never
	 * redirected, as IPv4 options and fragments. */
	if (off)
		p->f.ctl = 1;
	if (p->f.frag == FRAG_LATER || p->f.bad) {
		p->f.proto = nh;
	} else {
		p->f.l4off = ETH_HLEN + sizeof(*ip6) + off;
		parse_l4(l3 + off, end, nh, &p->f);
	}
	p->f.encap = is_encap(p->f.proto);
	/* Neighbour discovery and MLD never leave the link: only to a link-local (fe80::/10) or
	 * link-scope multicast (ff02::/16) address are they. */
	__u32 d0 = ip6->daddr.in6_u.u6_addr32[0];
	if (p->f.link && (d0 & bpf_htonl(0xffff0000)) != bpf_htonl(0xff020000) && (d0 & bpf_htonl(0xffc00000)) != bpf_htonl(0xfe800000))
		p->f.link = 0;
	set_tuple(p);
}

static __always_inline int from_pod_v4(struct __sk_buff *skb, struct iphdr *ip, void *end, struct pkt *p)
{
	parse_v4(ip, end, p);
	struct ep_value *from = endpoint(TWILL_AF_INET, p->a.saddr);
	if (!from || from->ifindex != skb->ifindex) {
		p->o.skip = 1; /* counted, never recorded: forged keys would push real flows out of the history */
		return drop(skb, V_SPOOFED, &p->o, REASON_INVALID_SOURCE_IP);
	}
	/* IPv4 options from a pod only as IGMP's Router Alert, to a multicast group: source routes
	 * (LSRR, SSRR) would send it on to an address policy never judged, and nothing else a pod
	 * sends needs options. */
	if (ip->ihl != 5 && (ip->protocol != IPPROTO_IGMP_ || (bpf_ntohl(ip->daddr) >> 28) != 0xe))
		return drop(skb, V_SPOOFED, &p->o, REASON_INVALID_PACKET);
	/* Options or fragments: through the stack, never redirected. */
	if (ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))
		p->f.ctl = 1;
	return from_pod(skb, from, p);
}

static __always_inline int from_pod_v6(struct __sk_buff *skb, struct ipv6hdr *ip6, void *end, struct pkt *p)
{
	parse_v6(skb, ip6, end, p);
	__u32 w0 = ip6->saddr.in6_u.u6_addr32[0];
	/* fe80::/10 and :: are no pod's address: only neighbour discovery, MLD and DAD, to a
	 * link-local or multicast address, may use them (and never leave the link). */
	if ((w0 & bpf_htonl(0xffc00000)) == bpf_htonl(0xfe800000) ||
	    !(w0 | ip6->saddr.in6_u.u6_addr32[1] | ip6->saddr.in6_u.u6_addr32[2] | ip6->saddr.in6_u.u6_addr32[3])) {
		p->o.skip = 1;
		if (p->f.link)
			return pass(skb, &p->o);
		return drop(skb, V_SPOOFED, &p->o, REASON_INVALID_SOURCE_IP);
	}
	struct ep_value *from = endpoint(TWILL_AF_INET6, p->a.saddr);
	if (!from || from->ifindex != skb->ifindex) {
		p->o.skip = 1;
		return drop(skb, V_SPOOFED, &p->o, REASON_INVALID_SOURCE_IP);
	}
	return from_pod(skb, from, p);
}

SEC("tc/from_pod")
int twill_from_pod(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct pkt p = {};
	int r;

	if ((void *)(eth + 1) > end)
		return pass(skb, &p.o);
	/* A pod sends IPv4, IPv6 and ARP, untagged, nothing else: a VLAN tag (the kernel took an
	 * outer one off before this program: vlan_present) or any other ethertype could carry IP
	 * that the stack unwraps after this program, unjudged (a second priority tag). */
	if (skb->vlan_present)
		return drop(skb, V_SPOOFED, &p.o, REASON_UNSUPPORTED_L3);
	/* An IP packet too short to name its source is never let by. */
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return drop(skb, V_SPOOFED, &p.o, REASON_INVALID_PACKET);
		r = from_pod_v4(skb, ip, end, &p);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return drop(skb, V_SPOOFED, &p.o, REASON_INVALID_PACKET);
		r = from_pod_v6(skb, ip6, end, &p);
	} else if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
		return pass(skb, &p.o);
	} else {
		return drop(skb, V_SPOOFED, &p.o, REASON_UNSUPPORTED_L3);
	}
	record(skb, &p);
	return r;
}

static __always_inline int to_pod_judge(struct __sk_buff *skb, struct pkt *p, struct ep_value *ep)
{
	struct obs *o = &p->o;
	struct flow *f = &p->f;
	if (!(ep->flags & EP_F_POL_IN) || f->link) {
		o->skip = 1;
		return PASS;
	}
	o->verdict = FLOW_FORWARDED;
	o->point = POINT_TO_ENDPOINT;
	struct ipc_value *peer = ipc(p->a.family, p->a.saddr);
	if (peer && (peer->flags & IPC_F_HOST))
		return PASS;
	if (f->bad)
		return drop(skb, V_DENY_IN, o, f->bad == BAD_CUT ? REASON_INVALID_PACKET : REASON_BAD_EXT_HDR);

	if (f->frag == FRAG_LATER && !frag_ports(skb, p))
		return drop(skb, V_DENY_IN, o, REASON_FRAG_NOT_FOUND);
	if (f->frag == FRAG_FIRST)
		frag_note(skb, p);
	if (f->icmp >= ICMP_K_REPLY) {
		int ans = icmp_answers(skb, p, ECHO_SENT);
		o->reply = ans ? 2 : 1;
		if (ans)
			return PASS;
	}
	if (f->ports && (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP)) {
		struct ct_seen ct = {};
		ct_look(skb, &p->t, p->tlen, f->proto, &ct);
		o->reply = ct.reply ? 2 : 1;
		if (ct.reply)
			return PASS;
	}
	__u32 by = allowed(ep->policy_slot, POL_INGRESS, peer, f);
	if (by) {
		o->allowed_in = by;
		return PASS;
	}
	return deny(skb, o, POL_INGRESS, ep->policy_slot);
}

/* A packet the stack delivers to a pod whose ingress a policy selects: the node's own
 * addresses (kubelet's probes), replies of tracked connections and ICMP that answers what
 * the pod sent pass; the rest needs a rule. An IP packet for an address this veth does not
 * serve never gets in (multicast and link-local excepted). Only the pods a policy selects
 * are recorded here: the sender's program records the rest. An echo request delivered to
 * a pod whose egress a policy selects is noted: its reply may leave. */
static __always_inline int to_pod(struct __sk_buff *skb, struct pkt *p)
{
	struct ep_value *ep = endpoint(p->a.family, p->a.daddr);
	if (!ep || ep->ifindex != skb->ifindex)
		return drop(skb, V_DENY_IN, &p->o, REASON_UNROUTABLE_IP);
	int r = to_pod_judge(skb, p, ep);
	if (r == PASS && p->f.icmp == ICMP_K_REQUEST && (ep->flags & EP_F_POL_OUT))
		echo_note(skb, p, ECHO_RCVD);
	return r;
}

SEC("tc/to_pod")
int twill_to_pod(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct pkt p = {};
	int r;

	if ((void *)(eth + 1) > end)
		return PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return drop(skb, V_DENY_IN, &p.o, REASON_INVALID_PACKET);
		__u32 d = bpf_ntohl(ip->daddr);
		if ((d >> 28) == 0xe || d == 0xffffffff)
			return PASS;
		parse_v4(ip, end, &p);
		r = to_pod(skb, &p);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return drop(skb, V_DENY_IN, &p.o, REASON_INVALID_PACKET);
		__u32 w0 = ip6->daddr.in6_u.u6_addr32[0];
		if ((w0 & bpf_htonl(0xff000000)) == bpf_htonl(0xff000000) || (w0 & bpf_htonl(0xffc00000)) == bpf_htonl(0xfe800000))
			return PASS;
		parse_v6(skb, ip6, end, &p);
		r = to_pod(skb, &p);
	} else {
		return PASS;
	}
	record(skb, &p);
	return r;
}

char _license[] SEC("license") = "GPL";
