/* The kernel's conntrack, asked through its kfuncs (net/netfilter/nf_conntrack_bpf.c; the
 * loader resolves their BTF ids), and how long twill's own records (echoes, fragments) of
 * what conntrack does not track answer. */
#ifndef TWILL_LIB_CT_H
#define TWILL_LIB_CT_H

#include "maps.h"
#include "pkt.h"

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

static __always_inline void ct_look(struct __sk_buff *skb, struct bpf_sock_tuple *t, __u32 tlen, __u8 proto, struct ct_seen *s)
{
	/* The verifier wants the length bounded by the tuple it describes. */
	if (tlen > sizeof(*t))
		return;
	struct bpf_ct_opts opts = { .netns_id = BPF_F_CURRENT_NETNS, .l4proto = proto };
	struct nf_conn *ct = bpf_skb_ct_lookup(skb, t, tlen, &opts, sizeof(opts));
	if (!ct)
		return;
	/* nf_conn.status, at an offset the loader patches with the running kernel's. */
	unsigned long status = *(volatile unsigned long *)((char *)ct + TWILL_CT_STATUS_MARKER);
	bpf_ct_release(ct);
	s->found = 1;
	s->reply = opts.dir == IP_CT_DIR_REPLY;
	s->direct = (status & (IPS_CONFIRMED | IPS_SEEN_REPLY)) == (IPS_CONFIRMED | IPS_SEEN_REPLY) && !(status & IPS_NAT_MASK);
}

/* How long an echo or fragment record answers: OBS_RECORD_TTL, else RECORD_TTL_NS. */
static __always_inline __u64 record_ttl(void)
{
	__u32 i = OBS_RECORD_TTL;
	__u64 *ttl = bpf_map_lookup_elem(&observer, &i);
	return ttl && *ttl ? *ttl : RECORD_TTL_NS;
}

#endif
