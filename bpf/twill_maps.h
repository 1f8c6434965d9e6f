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
#define EP_F_POL_IN 0x4   /* a policy selects the pod for ingress: only what the policy map allows reaches it */
#define EP_F_POL_OUT 0x8  /* a policy selects the pod for egress */

struct ep_value {
	__u32 ifindex;    /* host-side veth */
	__u32 flags;
	__u8 pod_mac[6];
	__u8 host_mac[6];
	__u32 policy_slot; /* the pod's entries in the policy trie (given by the sync, by pod name); 0: none */
};

/* counters: per host veth (per CPU). */
struct ep_counters {
	__u64 redirect_packets;
	__u64 redirect_bytes;
	__u64 pass_packets;
	__u64 pass_bytes;
	__u64 spoofed_packets; /* dropped: source not one of the pod's own addresses */
	__u64 spoofed_bytes;
	__u64 policy_in_packets;  /* dropped: to the pod, denied by its ingress policy */
	__u64 policy_in_bytes;
	__u64 policy_out_packets; /* dropped: from the pod, denied by its egress policy */
	__u64 policy_out_bytes;
};

/* ipcache: what twill knows of an address (LPM: a pod's /32 or /128, the node's own
 * addresses, ipBlock prefixes). The prefix counts the 32 family bits first. */
struct ipc_key {
	__u32 prefixlen;
	__u32 family;
	__u8 addr[16];
};

#define ID_ANY 0     /* in policy keys: any peer */
#define ID_HOST 1    /* reserved */
#define ID_WORLD 2   /* an address the ipcache does not hold */
#define ID_UNKNOWN 3 /* a local pod the last sync did not know: matches no rule */

#define IPC_F_HOST 0x1 /* one of this node's own addresses: its traffic to pods is always allowed */

struct ipc_value {
	__u32 identity;
	__u32 flags;
};

/* policy: what a pod allows, per direction. LPM over slot, identity and direction (always
 * whole), then protocol and port (a wildcard or a port range as prefix blocks). A slot is a
 * pod's, by name, not its veth's: the sync installs a pod's entries before its ADD, which then
 * only names the slot in the endpoint map. */
struct pol_key {
	__u32 prefixlen;
	__u32 slot;       /* ep_value.policy_slot */
	__u32 identity;   /* the peer's, or ID_ANY */
	__u8 dir;         /* POL_INGRESS or POL_EGRESS */
	__u8 proto;
	__be16 port;      /* destination port, network order */
};

#define POL_INGRESS 1
#define POL_EGRESS 2
#define POL_KEY_BITS 96

struct pol_value {
	__u32 policy;     /* index of the allowing policy in the network's sync state */
	__u32 flags;
};

/* Loader-patched field offset: the program reads nf_conn.status at this marker offset and
 * the loader rewrites it with the running kernel's offset, read from its BTF. */
#define TWILL_CT_STATUS_MARKER 0x7ee8

#endif
