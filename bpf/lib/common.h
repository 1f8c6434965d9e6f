/* What every stage includes: the kernel's headers, helpers and the protocol numbers the
 * program needs beyond <linux/in.h>. */
#ifndef TWILL_LIB_COMMON_H
#define TWILL_LIB_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "../twill_maps.h"

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif
#define IPPROTO_IPIP_ 4
#define IPPROTO_IPV6_ 41
#define IPPROTO_GRE_ 47
#define IPPROTO_L2TP_ 115
#define IPPROTO_MPLS_ 137
#define IPPROTO_IGMP_ 2

#define TC_PASS TC_ACT_UNSPEC /* == TCX_NEXT: later programs and filters (bandwidth) still run */

static __always_inline int same16(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const void *)a, *y = (const void *)b;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

#endif
