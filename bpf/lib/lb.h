/* Socket-level Service translation (bpf/twill_sock.c): the Service maps, the frontend lookup,
 * the backend choice (session affinity, then a random slot for TCP/SCTP or the socket cookie
 * for UDP) and the reverse translation recvmsg and getpeername give back. Node-wide: one set of
 * maps for every cgroup the hooks are attached to. Layouts and constants: twill_sock_abi.h. */
#ifndef TWILL_LIB_LB_H
#define TWILL_LIB_LB_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "../twill_sock_abi.h"

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb_fe_key);
	__type(value, struct lb_fe_val);
	__uint(max_entries, LB_FE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb_fe SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, LB_SLOTS_MAX);
} lb_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_be);
	__uint(max_entries, LB_BE_MAX);
} lb_be SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_aff_key);
	__type(value, struct lb_aff_val);
	__uint(max_entries, LB_AFF_MAX);
} lb_aff SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_rev_key);
	__type(value, struct lb_rev_val);
	__uint(max_entries, LB_REV_MAX);
} lb_rev SEC(".maps");

/* Not a map: a pointer to the ABI's types so that the object's BTF holds them. */
struct twill_abi *twill_abi SEC(".twill_abi");

#define SYS_REJECT 0
#define SYS_PROCEED 1

enum lb_outcome {
	LB_NOT_SERVICE = 0, /* not a frontend: the socket goes where it asked */
	LB_TRANSLATED = 1,
	LB_REFUSE = 2,      /* a frontend with nothing to serve it */
};

static __always_inline int lb_proto_ok(__u32 p)
{
	return p == IPPROTO_TCP || p == IPPROTO_UDP || p == IPPROTO_SCTP;
}

static __always_inline int lb_same16(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const void *)a, *y = (const void *)b;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/* The frontend for traffic with a socket on this node: the internal scope, else the external. */
static __always_inline struct lb_fe_val *lb_frontend(struct lb_fe_key *k)
{
	struct lb_fe_val *v;

	k->scope = LB_SCOPE_INT;
	v = bpf_map_lookup_elem(&lb_fe, k);
	if (v)
		return v;
	k->scope = LB_SCOPE_EXT;
	return bpf_map_lookup_elem(&lb_fe, k);
}

static __always_inline struct lb_be *lb_backend_of(__u32 id, __u32 svc_id, __u32 family)
{
	struct lb_be *be = bpf_map_lookup_elem(&lb_be, &id);

	if (!be || !(be->flags & LB_BE_VALID) || be->svc_id != svc_id || be->family != family)
		return 0;
	return be;
}

/*
 * A backend of fe for a client whose affinity key is ak (its netns cookie at the socket, its
 * address from outside): the one its affinity names while fresh and not retired, else slot
 * r % n of the live range; the affinity is renewed. 0: none (a slot or backend gone under a
 * racing update).
 */
static __always_inline struct lb_be *lb_pick(const struct lb_fe_val *fe, struct lb_aff_key *ak, __u32 family, __u32 r, __u32 n, __u32 *id)
{
	struct lb_be *be = 0;
	__u64 now = 0;

	if (fe->flags & LB_F_AFFINITY) {
		struct lb_aff_val *av;

		ak->svc_id = fe->svc_id;
		now = bpf_ktime_get_ns();
		av = bpf_map_lookup_elem(&lb_aff, ak);
		if (av && now - av->last_ns < (__u64)fe->affinity_timeout * 1000000000ULL) {
			be = lb_backend_of(av->backend_id, fe->svc_id, family);
			if (be && !(be->flags & LB_BE_RETIRED))
				*id = av->backend_id;
			else
				be = 0;
		}
	}
	if (!be) {
		__u32 slot = fe->base + r % n;
		__u32 *idp = bpf_map_lookup_elem(&lb_slots, &slot);

		if (!idp)
			return 0;
		*id = *idp;
		be = lb_backend_of(*id, fe->svc_id, family);
		if (!be)
			return 0;
	}
	if (fe->flags & LB_F_AFFINITY) {
		struct lb_aff_val nv = { .last_ns = now, .backend_id = *id };

		bpf_map_update_elem(&lb_aff, ak, &nv, BPF_ANY);
	}
	return be;
}

/*
 * Chooses the backend of the frontend k names (family, addr, port, proto filled; the scope is
 * looked up). On LB_TRANSLATED *out holds it and the reverse entry is written.
 */
static __always_inline enum lb_outcome lb_choose(void *ctx, struct lb_fe_key *k, struct lb_be *out)
{
	struct lb_fe_val *p = lb_frontend(k);
	struct lb_fe_val fe;
	struct lb_aff_key ak = {};
	struct lb_be *be;
	__u32 n, id = 0;

	if (!p)
		return LB_NOT_SERVICE;
	/* One copy: the element is swapped whole on update (no prealloc), so this is one version. */
	__builtin_memcpy(&fe, p, sizeof(fe));
	if (fe.flags & (LB_F_REJECT | LB_F_DROP))
		return LB_REFUSE;
	n = fe.count ? fe.count : fe.term;
	if (n == 0)
		return LB_REFUSE;

	ak.netns_cookie = bpf_get_netns_cookie(ctx);
	be = lb_pick(&fe, &ak, k->family, k->proto == IPPROTO_UDP ? (__u32)bpf_get_socket_cookie(ctx) : bpf_get_prandom_u32(), n, &id);
	if (!be)
		return LB_REFUSE;
	__builtin_memcpy(out, be, sizeof(*out));

	/* What recvmsg/getpeername give back; rewritten only when it changed. */
	struct lb_rev_key rk = { .cookie = bpf_get_socket_cookie(ctx), .family = be->family, .port = be->port, .proto = k->proto };
	struct lb_rev_val rv = { .svc_id = fe.svc_id, .port = k->port, .backend_id = id };
	__builtin_memcpy(rk.addr, be->addr, 16);
	__builtin_memcpy(rv.addr, k->addr, 16);
	struct lb_rev_val *old = bpf_map_lookup_elem(&lb_rev, &rk);
	if (!old || old->svc_id != rv.svc_id || old->port != rv.port || old->backend_id != rv.backend_id || !lb_same16(old->addr, rv.addr))
		bpf_map_update_elem(&lb_rev, &rk, &rv, BPF_ANY);
	return LB_TRANSLATED;
}

/* The Service address a socket's peer (a backend it was translated to) stands for, if the
 * Service still has it; 0 leaves the peer as it is. */
static __always_inline struct lb_rev_val *lb_reverse(void *ctx, __u32 family, const __u8 *addr, __be16 port, __u8 proto)
{
	struct lb_rev_key rk = { .cookie = bpf_get_socket_cookie(ctx), .family = family, .port = port, .proto = proto };
	struct lb_rev_val *rv;
	struct lb_fe_key k = { .family = family, .proto = proto };
	struct lb_fe_val *fe;

	__builtin_memcpy(rk.addr, addr, 16);
	rv = bpf_map_lookup_elem(&lb_rev, &rk);
	if (!rv)
		return 0;
	__builtin_memcpy(k.addr, rv->addr, 16);
	k.port = rv->port;
	fe = lb_frontend(&k);
	if (!fe || fe->svc_id != rv->svc_id) {
		bpf_map_delete_elem(&lb_rev, &rk);
		return 0;
	}
	return rv;
}

#endif
