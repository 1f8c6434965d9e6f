/* Moving connected sockets off backends that left their Service (bpf/twill_sock.c's iter/udp and
 * iter/tcp): a socket the hooks translated (lb_rev holds its cookie and its peer) whose backend
 * entry is no longer live is destroyed, and the application's next recv/send fails with
 * ECONNABORTED, so it reconnects and connect() chooses again. The cookie is the kernel's: a pod
 * cannot name another's socket, and a socket the hooks never translated has no entry. Only
 * connected sockets: an unconnected UDP socket's next datagram is translated afresh by sendmsg,
 * and destroying it would free its port under its owner (Cilium #48564). */
#ifndef TWILL_LIB_LB_TERM_H
#define TWILL_LIB_LB_TERM_H

#include "lb.h"

#define LB_SK_AF_INET 2
#define LB_SK_AF_INET6 10
#define LB_TCP_ESTABLISHED 1 /* also a connected UDP socket's state */

/* A load at exactly sk + marker, as one instruction: written in C, clang may fold a marker into
 * a pointer first, and the loader's patch would not find the load. */
#define LB_SK_FIELD(sk, marker, width)                                                    \
	({                                                                                \
		__u64 __v;                                                                \
		asm volatile("%0 = *(" #width " *)(%1 + %2)" : "=r"(__v) : "r"(sk), "i"(marker)); \
		__v;                                                                      \
	})

struct seq_file;
struct sock_common;
struct bpf_iter_meta {
	struct seq_file *seq;
	__u64 session_id;
	__u64 seq_num;
};
/* The iterators' contexts: one u64 slot per argument of bpf_iter_udp / bpf_iter_tcp. */
struct bpf_iter__udp {
	struct bpf_iter_meta *meta;
	struct sock_common *udp_sk;
};
struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
};

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

/* The backend rv was chosen as is still what lb_be says for it: valid, not retired, and the
 * same Service and address (an id freed and given to another backend is not it). Id 0: an entry
 * written before ids were recorded, not judged. */
static __always_inline int lb_rev_live(const struct lb_rev_val *rv, const struct lb_rev_key *rk)
{
	__u32 id = rv->backend_id;
	struct lb_be *be;

	if (id == 0)
		return 1;
	be = bpf_map_lookup_elem(&lb_be, &id);
	return be && (be->flags & LB_BE_VALID) && !(be->flags & LB_BE_RETIRED) && be->svc_id == rv->svc_id &&
	       be->family == rk->family && be->port == rk->port && be->proto == rk->proto && lb_same16(be->addr, rk->addr);
}

static __always_inline int lb_term_sock(struct bpf_iter_meta *meta, struct sock_common *sk, __u8 proto)
{
	struct lb_rev_key rk = { .proto = proto };
	struct lb_rev_val *rv;
	__u32 family;

	if (LB_SK_FIELD(sk, LB_SK_STATE_MARKER, u8) != LB_TCP_ESTABLISHED)
		return 0;
	family = LB_SK_FIELD(sk, LB_SK_FAMILY_MARKER, u16);
	if (family == LB_SK_AF_INET) {
		rk.family = LB_AF_INET;
		*(__u32 *)rk.addr = LB_SK_FIELD(sk, LB_SK_DADDR_MARKER, u32);
	} else if (family == LB_SK_AF_INET6) {
		/* In words: the address sits 12 bytes into the key. */
		__u32 *a = (__u32 *)rk.addr;
		__u32 w0 = LB_SK_FIELD(sk, LB_SK_V6_DADDR_MARKER, u32), w1 = LB_SK_FIELD(sk, LB_SK_V6_DADDR_MARKER + 4, u32);
		__u32 w2 = LB_SK_FIELD(sk, LB_SK_V6_DADDR_MARKER + 8, u32), w3 = LB_SK_FIELD(sk, LB_SK_V6_DADDR_MARKER + 12, u32);

		/* An IPv4-mapped peer was translated as IPv4 (twill_sock.c xlate6). */
		if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff)) {
			rk.family = LB_AF_INET;
			a[0] = w3;
		} else {
			rk.family = LB_AF_INET6;
			a[0] = w0;
			a[1] = w1;
			a[2] = w2;
			a[3] = w3;
		}
	} else {
		return 0;
	}
	rk.port = (__be16)LB_SK_FIELD(sk, LB_SK_DPORT_MARKER, u16);
	rk.cookie = bpf_get_socket_cookie(sk);
	rv = bpf_map_lookup_elem(&lb_rev, &rk);
	if (!rv || lb_rev_live(rv, &rk))
		return 0;
	if (bpf_sock_destroy(sk) == 0)
		bpf_seq_write(meta->seq, &rk.cookie, sizeof(rk.cookie));
	/* The entry is the dead backend's: the socket's next translation writes its own. */
	bpf_map_delete_elem(&lb_rev, &rk);
	return 0;
}

#endif
