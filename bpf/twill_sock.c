// SPDX-License-Identifier: GPL-2.0
/* twill's socket-level Service translation: cgroup sock_addr programs on the cgroup v2
 * directory the node's configuration names (cgroupRoot). connect and sendmsg turn a Service
 * address into one of its backends once per connection or datagram; recvmsg and getpeername
 * give the Service address back. After connect() the socket's peer is the backend: the tc
 * programs and policy see the real destination, there is no per-packet NAT.
 *
 * A Service with no endpoint (or none local under traffic policy Local) refuses the socket
 * with ECONNREFUSED at connect()/sendmsg(), at once. IPv4-mapped IPv6 destinations on an
 * AF_INET6 socket are Services' IPv4 frontends. The logic and maps are in lib/lb.h; the
 * socket iterators that move connected sockets off a backend that left, in lib/lb_term.h. */
#include "lib/lb.h"
#include "lib/lb_term.h"

static __always_inline int refuse(void)
{
	bpf_set_retval(-LB_ERR_CONNREFUSED);
	return SYS_REJECT;
}

static __always_inline int xlate4(struct bpf_sock_addr *ctx)
{
	struct lb_fe_key k = { .family = LB_AF_INET };
	struct lb_be be;
	__u32 proto = ctx->protocol;

	if (!lb_proto_ok(proto))
		return SYS_PROCEED;
	*(__u32 *)k.addr = ctx->user_ip4;
	k.port = (__be16)ctx->user_port;
	k.proto = proto;
	switch (lb_choose(ctx, &k, &be)) {
	case LB_TRANSLATED:
		ctx->user_ip4 = *(__u32 *)be.addr;
		ctx->user_port = be.port;
		return SYS_PROCEED;
	case LB_REFUSE:
		return refuse();
	default:
		return SYS_PROCEED;
	}
}

static __always_inline int is_v4_mapped(__u32 w0, __u32 w1, __u32 w2)
{
	return w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff);
}

static __always_inline int xlate6(struct bpf_sock_addr *ctx)
{
	struct lb_fe_key k = {};
	struct lb_be be;
	__u32 proto = ctx->protocol;
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
	__u32 *a = (__u32 *)k.addr;
	int mapped;

	if (!lb_proto_ok(proto))
		return SYS_PROCEED;
	mapped = is_v4_mapped(w0, w1, w2);
	if (mapped) {
		k.family = LB_AF_INET;
		a[0] = w3;
	} else {
		k.family = LB_AF_INET6;
		a[0] = w0;
		a[1] = w1;
		a[2] = w2;
		a[3] = w3;
	}
	k.port = (__be16)ctx->user_port;
	k.proto = proto;
	switch (lb_choose(ctx, &k, &be)) {
	case LB_TRANSLATED: {
		__u32 *b = (__u32 *)be.addr;
		if (mapped) {
			ctx->user_ip6[3] = b[0];
		} else {
			ctx->user_ip6[0] = b[0];
			ctx->user_ip6[1] = b[1];
			ctx->user_ip6[2] = b[2];
			ctx->user_ip6[3] = b[3];
		}
		ctx->user_port = be.port;
		return SYS_PROCEED;
	}
	case LB_REFUSE:
		return refuse();
	default:
		return SYS_PROCEED;
	}
}

static __always_inline void rev4(struct bpf_sock_addr *ctx, __u8 proto)
{
	__u8 addr[16] = {};
	struct lb_rev_val *rv;

	*(__u32 *)addr = ctx->user_ip4;
	rv = lb_reverse(ctx, LB_AF_INET, addr, (__be16)ctx->user_port, proto);
	if (!rv)
		return;
	ctx->user_ip4 = *(__u32 *)rv->addr;
	ctx->user_port = rv->port;
}

static __always_inline void rev6(struct bpf_sock_addr *ctx, __u8 proto)
{
	__u8 addr[16] = {};
	__u32 *a = (__u32 *)addr;
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
	struct lb_rev_val *rv;
	int mapped = is_v4_mapped(w0, w1, w2);

	if (mapped) {
		a[0] = w3;
	} else {
		a[0] = w0;
		a[1] = w1;
		a[2] = w2;
		a[3] = w3;
	}
	rv = lb_reverse(ctx, mapped ? LB_AF_INET : LB_AF_INET6, addr, (__be16)ctx->user_port, proto);
	if (!rv)
		return;
	__u32 *v = (__u32 *)rv->addr;
	if (mapped) {
		ctx->user_ip6[3] = v[0];
	} else {
		ctx->user_ip6[0] = v[0];
		ctx->user_ip6[1] = v[1];
		ctx->user_ip6[2] = v[2];
		ctx->user_ip6[3] = v[3];
	}
	ctx->user_port = rv->port;
}

SEC("cgroup/connect4")
int twill_connect4(struct bpf_sock_addr *ctx)
{
	return xlate4(ctx);
}

SEC("cgroup/connect6")
int twill_connect6(struct bpf_sock_addr *ctx)
{
	return xlate6(ctx);
}

SEC("cgroup/sendmsg4")
int twill_sendmsg4(struct bpf_sock_addr *ctx)
{
	return xlate4(ctx);
}

SEC("cgroup/sendmsg6")
int twill_sendmsg6(struct bpf_sock_addr *ctx)
{
	return xlate6(ctx);
}

/* recvmsg and getpeername must return 1 (the verifier allows nothing else). */
SEC("cgroup/recvmsg4")
int twill_recvmsg4(struct bpf_sock_addr *ctx)
{
	rev4(ctx, IPPROTO_UDP);
	return SYS_PROCEED;
}

SEC("cgroup/recvmsg6")
int twill_recvmsg6(struct bpf_sock_addr *ctx)
{
	rev6(ctx, IPPROTO_UDP);
	return SYS_PROCEED;
}

SEC("cgroup/getpeername4")
int twill_getpeername4(struct bpf_sock_addr *ctx)
{
	__u32 proto = ctx->protocol;

	if (lb_proto_ok(proto))
		rev4(ctx, proto);
	return SYS_PROCEED;
}

SEC("cgroup/getpeername6")
int twill_getpeername6(struct bpf_sock_addr *ctx)
{
	__u32 proto = ctx->protocol;

	if (lb_proto_ok(proto))
		rev6(ctx, proto);
	return SYS_PROCEED;
}

/* Run by user space after an apply that took backends away (lib/datapath/services-term.ts), once
 * per network namespace: connected sockets whose backend left are destroyed, their cookies
 * written out (8 bytes each). */
SEC("iter/udp")
int twill_term_udp(struct bpf_iter__udp *ctx)
{
	struct sock_common *sk = ctx->udp_sk;

	if (!sk)
		return 0;
	return lb_term_sock(ctx->meta, sk, IPPROTO_UDP);
}

SEC("iter/tcp")
int twill_term_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *sk = ctx->sk_common;

	if (!sk)
		return 0;
	return lb_term_sock(ctx->meta, sk, IPPROTO_TCP);
}

char _license[] SEC("license") = "GPL";
