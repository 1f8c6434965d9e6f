/* Who an address is: a pod on this node (the endpoints map) or what twill knows of it
 * (the ipcache: pods of the cluster, the node's own addresses, ipBlock prefixes). */
#ifndef TWILL_LIB_ENDPOINTS_H
#define TWILL_LIB_ENDPOINTS_H

#include "maps.h"

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

#endif
