// SPDX-License-Identifier: GPL-2.0
/* twill's per-packet Service translation for traffic from outside the node: a tc (tcx ingress)
 * program on the node's external devices. A TCP SYN or a UDP datagram to an external-scope
 * frontend (NodePort on a node address, external IP, load-balancer IP) that the kernel's
 * conntrack does not know yet gets a conntrack entry made here, with its NAT: destination the
 * chosen backend, and source the node's address when the backend is on another node. The
 * stack's nf_nat then translates this packet and every later one, both ways: no own
 * connection table, no reverse program. Everything else passes untouched; a frontend removed
 * stops new connections only.
 *
 * Shares the node's Service maps (lib/lb.h; pinned by name under the node's directory) with
 * the socket-level translation. */
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <stddef.h>
#include "lib/lb.h"
#include "lib/nat.h"

struct lb_np_snat {
	__u8 addr[16];
};

static __always_inline int lb_zero16(const __u8 *a)
{
	const __u32 *x = (const void *)a;
	return (x[0] | x[1] | x[2] | x[3]) == 0;
}

/* The node's address per family (index 0: IPv4 in the first 4 bytes, 1: IPv6) that remote
 * backends see as the client under externalTrafficPolicy Cluster; all-zero: none. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_np_snat);
	__uint(max_entries, 2);
} lb_np_snat SEC(".maps");

/* loadBalancerSourceRanges of the node's Service ports (struct lb_src_key): read for a
 * frontend flagged LB_F_SRCRANGE only. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lb_src_key);
	__type(value, __u8);
	__uint(max_entries, LB_SRC_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb_src SEC(".maps");

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10
#define IP_OFFSET_MASK 0x1fff

struct flow {
	__u32 client[4]; /* the source address (IPv4: the first word) */
	struct bpf_sock_tuple t;
	__u32 tlen;
	__u32 family;
	__u8 proto;
	__u8 syn; /* TCP: a SYN without ACK (the only packet that opens a connection) */
};

static __always_inline int parse(struct __sk_buff *skb, struct flow *f)
{
	__u32 l4;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) || ip.ihl < 5)
			return 0;
		if (bpf_ntohs(ip.frag_off) & IP_OFFSET_MASK)
			return 0; /* a later fragment: the first one decided */
		f->family = LB_AF_INET;
		f->proto = ip.protocol;
		f->t.ipv4.saddr = ip.saddr;
		f->t.ipv4.daddr = ip.daddr;
		f->tlen = sizeof(f->t.ipv4);
		__builtin_memcpy(f->client, &ip.saddr, 4);
		l4 = ETH_HLEN + ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)))
			return 0;
		f->family = LB_AF_INET6;
		f->proto = ip6.nexthdr; /* extension headers: not a frontend's packet here */
		__builtin_memcpy(f->t.ipv6.saddr, &ip6.saddr, 16);
		__builtin_memcpy(f->t.ipv6.daddr, &ip6.daddr, 16);
		f->tlen = sizeof(f->t.ipv6);
		__builtin_memcpy(f->client, &ip6.saddr, 16);
		l4 = ETH_HLEN + sizeof(ip6);
	} else {
		return 0;
	}
	if (f->proto != IPPROTO_TCP && f->proto != IPPROTO_UDP)
		return 0; /* SCTP: the conntrack kfuncs make TCP and UDP entries only */
	__be16 ports[2];
	if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)))
		return 0;
	if (f->family == LB_AF_INET) {
		f->t.ipv4.sport = ports[0];
		f->t.ipv4.dport = ports[1];
	} else {
		f->t.ipv6.sport = ports[0];
		f->t.ipv6.dport = ports[1];
	}
	if (f->proto == IPPROTO_TCP) {
		__u8 flags;

		if (bpf_skb_load_bytes(skb, l4 + 13, &flags, 1))
			return 0;
		f->syn = (flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
	}
	return 1;
}

/* Affinity by client address, in the socket hooks' map: the key's cookie word holds the
 * address with the top bit set, which no network namespace cookie (a counter from 1) has. An
 * IPv6 client is folded to 63 bits: two clients may share a backend, never more. */
static __always_inline __u64 client_key(const struct flow *f)
{
	const __u32 *a = f->client;
	__u64 k = f->family == LB_AF_INET ? a[0] : ((__u64)(a[0] ^ a[2]) << 32 | (a[1] ^ a[3]));
	return k | (1ULL << 63);
}

/* The client may use the frontend: a source range of its Service port holds its address. The
 * source is not authenticated (kube-proxy's filter trusts it too): a forged in-range source is
 * served, and its replies go to the forged address. */
static __always_inline int src_allowed(const struct flow *f, __u32 svc_id)
{
	struct lb_src_key sk = { .svc_id = svc_id, .family = f->family };

	sk.prefixlen = 64 + (f->family == LB_AF_INET ? 32 : 128);
	__builtin_memcpy(sk.addr, f->client, 16);
	return bpf_map_lookup_elem(&lb_src, &sk) != 0;
}

enum np_outcome {
	NP_PASS = 0,
	NP_DROP = 1,
	NP_NAT = 2,
};

static __always_inline enum np_outcome choose(const struct flow *f, struct lb_fe_key *k, struct lb_be *out)
{
	struct lb_fe_val *p, fe;
	struct lb_aff_key ak = {};
	struct lb_be *be;
	__u32 n, id = 0;

	k->scope = LB_SCOPE_EXT;
	p = bpf_map_lookup_elem(&lb_fe, k);
	if (!p)
		return NP_PASS;
	__builtin_memcpy(&fe, p, sizeof(fe));
	/* Before anything is chosen or recorded: a source outside the ranges leaves no trace. */
	if ((fe.flags & LB_F_SRCRANGE) && !src_allowed(f, fe.svc_id))
		return NP_DROP;
	n = fe.count ? fe.count : fe.term;
	if ((fe.flags & (LB_F_REJECT | LB_F_DROP)) || n == 0)
		return NP_DROP;
	ak.netns_cookie = client_key(f);
	be = lb_pick(&fe, &ak, k->family, bpf_get_prandom_u32(), n, &id);
	if (!be)
		return NP_DROP;
	__builtin_memcpy(out, be, sizeof(*out));
	return NP_NAT;
}

SEC("tc/nodeport")
int twill_nodeport(struct __sk_buff *skb)
{
	struct flow f = {};
	struct lb_fe_key k = {};
	struct lb_be be;
	struct bpf_ct_opts opts = { .netns_id = NAT_CURRENT_NETNS };
	struct nf_conn *ct;
	struct nf_conn___init *nct;

	if (!parse(skb, &f))
		return TC_ACT_OK;
	k.family = f.family;
	k.proto = f.proto;
	if (f.family == LB_AF_INET) {
		__builtin_memcpy(k.addr, &f.t.ipv4.daddr, 4);
		k.port = f.t.ipv4.dport;
	} else {
		__builtin_memcpy(k.addr, f.t.ipv6.daddr, 16);
		k.port = f.t.ipv6.dport;
	}
	/* Cheap first: only a frontend's packets ask conntrack. */
	if (!bpf_map_lookup_elem(&lb_fe, (k.scope = LB_SCOPE_EXT, &k)))
		return TC_ACT_OK;
	if (f.tlen > sizeof(f.t))
		return TC_ACT_OK;
	opts.l4proto = f.proto;
	ct = bpf_skb_ct_lookup(skb, &f.t, f.tlen, &opts, sizeof(opts));
	if (ct) {
		/* Known (established, or opened a moment ago): nf_nat carries it, even after its frontend left. */
		bpf_ct_release(ct);
		return TC_ACT_OK;
	}
	if (f.proto == IPPROTO_TCP && !f.syn)
		return TC_ACT_OK; /* nothing to continue: the node answers it as its own */
	switch (choose(&f, &k, &be)) {
	case NP_PASS:
		return TC_ACT_OK;
	case NP_DROP:
		return TC_ACT_SHOT;
	default:
		break;
	}

	opts.netns_id = NAT_CURRENT_NETNS;
	opts.error = 0;
	/* A constant length: one spilled to the stack comes back unbounded to the verifier. */
	nct = bpf_skb_ct_alloc(skb, &f.t, f.family == LB_AF_INET ? sizeof(f.t.ipv4) : sizeof(f.t.ipv6), &opts, sizeof(opts));
	if (!nct)
		return TC_ACT_SHOT; /* no entry, no translation: never let it reach the node's own port */
	/* union nf_inet_addr: IPv4 in the first word, the rest zero (as lb_be holds it). */
	__u8 addr[16];
	__builtin_memcpy(addr, be.addr, 16);
	if (bpf_ct_set_nat_info(nct, addr, bpf_ntohs(be.port), NAT_MANIP_DST))
		goto fail;
	if (!(be.flags & LB_BE_LOCAL)) {
		__u32 i = f.family == LB_AF_INET ? 0 : 1;
		struct lb_np_snat *s = bpf_map_lookup_elem(&lb_np_snat, &i);

		if (s && !lb_zero16(s->addr)) {
			__builtin_memcpy(addr, s->addr, 16);
			if (bpf_ct_set_nat_info(nct, addr, 0, NAT_MANIP_SRC))
				goto fail;
		}
	}
	ct = bpf_ct_insert_entry(nct);
	if (!ct)
		return TC_ACT_OK; /* a twin packet inserted it first: conntrack finds that one */
	bpf_ct_release(ct);
	return TC_ACT_OK;
fail:
	/* The verifier lets an allocated entry go only through insert (bpf_ct_release takes
	 * inserted ones). nf_nat refuses only non-IP entries or memory: not met here. */
	ct = bpf_ct_insert_entry(nct);
	if (ct)
		bpf_ct_release(ct);
	return TC_ACT_SHOT;
}

char _license[] SEC("license") = "GPL";
