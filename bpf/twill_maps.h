/* Map layouts shared by the tc program and twill's loader (lib/bpf/layout.ts mirrors them;
 * a unit test checks the two agree against this header). Maps use the legacy "maps"
 * section: twill is its own loader and needs no BTF of the object. */
#ifndef TWILL_MAPS_H
#define TWILL_MAPS_H

#include <linux/types.h>

/* Loader-defined map description (the legacy bpf_map_def layout). */
struct twill_map_def {
	__u32 type;
	__u32 key_size;
	__u32 value_size;
	__u32 max_entries;
	__u32 map_flags;
};

#define TWILL_AF_INET 4
#define TWILL_AF_INET6 6

/* endpoints: pod address → where it lives. */
struct ep_key {
	__u32 family;     /* TWILL_AF_INET or TWILL_AF_INET6 */
	__u8 addr[16];    /* IPv4 in the first 4 bytes, rest zero */
};

#define EP_F_NO_FAST 0x1  /* shaped by the bandwidth plugin: always through the stack */
#define EP_F_PENDING 0x2  /* whether the chain shapes it is not known yet: through the stack */

struct ep_value {
	__u32 ifindex;    /* host-side veth */
	__u32 flags;
	__u8 pod_mac[6];
	__u8 host_mac[6];
};

/* counters: per host veth (per CPU). */
struct ep_counters {
	__u64 redirect_packets;
	__u64 redirect_bytes;
	__u64 pass_packets;
	__u64 pass_bytes;
	__u64 spoofed_packets; /* dropped: source not one of the pod's own addresses */
	__u64 spoofed_bytes;
};

/* Loader-patched field offset: the program reads nf_conn.status at this marker offset and
 * the loader rewrites it with the running kernel's offset, read from its BTF. */
#define TWILL_CT_STATUS_MARKER 0x7ee8

#endif
