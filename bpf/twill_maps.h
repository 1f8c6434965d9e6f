/* The ABI the tc programs share with twill's loader and readers: map key and value layouts
 * and the constants written into or read from them. C is their one definition: constants are
 * enums (BTF keeps enums, not #defines), and lib/bpf/abi.generated.ts is generated from the
 * object's BTF (`make abi`; a unit test fails when it is stale). Maps use the legacy "maps"
 * section (bpf/lib/maps.h). */
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

enum twill_family {
	TWILL_AF_INET = 4,
	TWILL_AF_INET6 = 6,
};

/* endpoints: pod address → where it lives. */
struct ep_key {
	__u32 family;     /* TWILL_AF_INET or TWILL_AF_INET6 */
	__u8 addr[16];    /* IPv4 in the first 4 bytes, rest zero */
};

enum ep_flags {
	EP_F_NO_FAST = 0x1,  /* shaped by the bandwidth plugin: always through the stack */
	EP_F_PENDING = 0x2,  /* whether the chain shapes it is not known yet: through the stack */
	EP_F_POL_IN = 0x4,   /* a policy selects the pod for ingress: only what the policy map allows reaches it */
	EP_F_POL_OUT = 0x8,  /* a policy selects the pod for egress */
};

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
	__u64 records_suppressed; /* new flows over the veth's budget: neither recorded nor an event */
	__u64 budget_tat;         /* the budget's theoretical arrival time (GCRA, bpf_ktime_get_ns()); not a counter */
};

/* New flow records (and their events) per veth and CPU: a burst, then a steady rate. */
#define RECORD_BURST 1000
#define RECORD_INTERVAL_NS 2000000ULL /* 500 a second */

/* ipcache: what twill knows of an address (LPM: a pod's /32 or /128, the node's own
 * addresses, ipBlock prefixes). The prefix counts the 32 family bits first. */
struct ipc_key {
	__u32 prefixlen;
	__u32 family;
	__u8 addr[16];
};

enum identity {
	ID_ANY = 0,     /* in policy keys: any peer */
	ID_HOST = 1,    /* reserved */
	ID_WORLD = 2,   /* an address the ipcache does not hold */
	ID_UNKNOWN = 3, /* a local pod the last sync did not know: matches no rule */
	CLASS_CLUSTER_POD = 4, /* in policy keys: any pod of the cluster (an ipcache entry with IPC_F_POD) */
};

enum ipc_flags {
	IPC_F_HOST = 0x1, /* one of this node's own addresses: its traffic to pods is always allowed */
	IPC_F_POD = 0x2,  /* a pod of the cluster: its namespace's class and CLASS_CLUSTER_POD apply */
};

struct ipc_value {
	__u32 identity;
	__u32 flags;
	__u32 ns;         /* IPC_F_POD: the class of the pod's namespace (a policy key identity) */
};

/* policy: what a pod allows, per direction. LPM over slot, identity and direction (always
 * whole), then protocol and port (a wildcard or a port range as prefix blocks). A slot is a
 * group's (the pods selected by the same policies share it), not a veth's: the sync installs
 * its entries before a pod's ADD, which then only names the slot in the endpoint map. The
 * identity is a peer's, a class (a namespace's, CLASS_CLUSTER_POD) or ID_ANY. */
struct pol_key {
	__u32 prefixlen;
	__u32 slot;       /* ep_value.policy_slot */
	__u32 identity;   /* the peer's, or ID_ANY */
	__u8 dir;         /* POL_INGRESS or POL_EGRESS */
	__u8 proto;
	__be16 port;      /* destination port, network order */
};

enum pol_dir {
	POL_INGRESS = 1,
	POL_EGRESS = 2,
};

enum pol_key_bits {
	POL_KEY_BITS = 96, /* the whole key (slot, identity, direction, protocol, port): every lookup asks for all of it; the trie's entries are shorter where they wildcard port or protocol */
};

struct pol_value {
	__u32 policy;     /* index of the allowing policy in the network's sync state */
	__u32 flags;
};

/* flows: the node's recent flows, kept by the programs themselves (LRU: the oldest go first),
 * one entry per direction of a connection, as the packet names it. */
struct flow_key {
	__u32 family;
	__u8 proto;
	__u8 pad[3];
	__be16 sport;     /* ICMP: the type */
	__be16 dport;     /* ICMP: the code */
	__u8 saddr[16];
	__u8 daddr[16];
};

enum flow_verdict {
	FLOW_FORWARDED = 1,
	FLOW_DROPPED = 2,
};

/* What a stage of the pipeline (bpf/twill_tc.c) decided: go on, a verdict, or a drop. Drops
 * are numbered as Hubble's DropReason (flow_value.reason holds them). */
enum reason {
	REASON_CONTINUE = 0, /* on to the next stage */
	REASON_PASS = 1,     /* to the kernel stack (and on to the next tc program) */
	REASON_REDIRECT = 2, /* straight into the destination pod (bpf_redirect_peer) */
	REASON_INVALID_SOURCE_IP = 132,
	REASON_POLICY_DENIED = 133,
	REASON_INVALID_PACKET = 134,
	REASON_UNSUPPORTED_L3 = 139, /* from a pod: not IPv4, IPv6 or ARP, or VLAN-tagged */
	REASON_UNKNOWN_L4 = 142, /* an encapsulating protocol (IPIP, IPv6-in-IP, GRE, L2TP, MPLS-in-IP) from a pod: never carried */
	REASON_UNROUTABLE_IP = 151, /* for an address this veth does not serve */
	REASON_BAD_EXT_HDR = 156,   /* IPv6 extension headers truncated or too many to walk */
	REASON_FRAG_NOT_FOUND = 165, /* a later fragment whose first one was not seen: its ports are unknown */
};

/* Where the verdict was given, numbered as Hubble's TraceObservationPoint. */
enum obs_point {
	POINT_TO_STACK = 3,
	POINT_TO_ENDPOINT = 101,
};

struct flow_value {
	__u64 first_ns;   /* bpf_ktime_get_ns() */
	__u64 last_ns;
	__u64 packets;
	__u64 bytes;
	__u32 allowed_out; /* the egress policy that allowed it: index + 1 in the sync state (0: none judged) */
	__u32 allowed_in;  /* the ingress one */
	__u32 slot;        /* of the pod whose policy denied it */
	__u8 verdict;     /* FLOW_* of the last packet */
	__u8 reason;      /* REASON_* of the last drop */
	__u8 point;       /* POINT_* */
	__u8 tcp_flags;   /* every flag seen */
	__u8 reply;       /* 0: not known, 1: original direction, 2: reply */
	__u8 dir;         /* POL_INGRESS or POL_EGRESS: the policy direction that denied it */
	__u16 event_win;  /* bpf_ktime_get_ns() >> 30 of the last drop event: at most one per flow per window (~1 s) */
	__u32 ifindex;    /* the host veth it was seen on: who really sent a forged packet */
};

/* frags: the ports of a fragmented datagram, from its first fragment, for the later ones
 * (which carry none). Keyed by what the kernel reassembles by; written only for datagrams a
 * policy judges, by the program that judges them. */
struct frag_key {
	__u32 family;
	__u8 proto;
	__u8 pad[3];
	__u32 id;         /* IPv4: the 16-bit identification; IPv6: the fragment header's */
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 ifindex;    /* the veth whose program noted it: a pod's records serve its own veth only */
};

struct frag_value {
	__be16 sport;     /* ICMP: the type */
	__be16 dport;     /* ICMP: the code */
	__u8 icmp;        /* ICMP: what it claims to be (request, reply) */
	__u8 ports;       /* 1: TCP/UDP/SCTP with ports */
	__be16 echo_id;
	__u64 until_ns;   /* bpf_ktime_get_ns() until which it answers: the first fragment's + the TTL */
};

/* echoes: ICMP echo requests a policy will see answered (conntrack's kfuncs look up TCP and
 * UDP only). ECHO_SENT: the requester's program let it out (its ingress takes the reply);
 * ECHO_RCVD: it was delivered to the responder (its egress lets the reply out). */
enum echo_kind {
	ECHO_SENT = 1,
	ECHO_RCVD = 2,
};

struct echo_key {
	__u32 family;
	__u8 kind;        /* ECHO_SENT or ECHO_RCVD */
	__u8 pad;
	__be16 id;        /* the echo identifier */
	__u8 requester[16];
	__u8 responder[16];
	__u32 ifindex;    /* the veth whose program noted it (and alone looks it up) */
};
/* echoes' value (__u64): bpf_ktime_get_ns() until which it answers, the last request's + the
 * TTL. A record of either map is valid for OBS_RECORD_TTL (default RECORD_TTL_NS: conntrack's
 * ICMP timeout, ipfrag_time); only a new request or first fragment renews it. */
#define RECORD_TTL_NS 30000000000ULL

/* events (ring buffer): a new flow, a drop, a TCP flow's end; written only while a reader
 * has said, in the observer map, that it reads. */
enum event_kind {
	EV_NEW = 1,
	EV_DROP = 2,
	EV_END = 3,
};

struct flow_event {
	__u64 time_ns;
	__u32 kind;
	struct flow_key key;
	struct flow_value value;
};

/* observer: an array of __u64 at these indexes. */
enum obs_index {
	OBS_READER = 0,    /* a reader reads events until this bpf_ktime_get_ns() */
	OBS_LOST = 1,      /* events the ring buffer had no room for */
	OBS_CONF = 2,      /* OBS_CONF_OFF: keep no flows, emit no events */
	OBS_RECORD_TTL = 3, /* validity of echo and fragment records in ns; 0: RECORD_TTL_NS */
};

enum obs_conf {
	OBS_CONF_OFF = 1,
};

/* Loader-patched field offset: the program reads nf_conn.status at this marker offset and
 * the loader rewrites it with the running kernel's offset, read from its BTF. */
enum ct_marker {
	TWILL_CT_STATUS_MARKER = 0x7ee8,
};

/* Every type above the loader reads, in one struct: its BTF carries them (with their enums)
 * into the object for the generator. Never instantiated; bpf/lib/maps.h points at it. */
struct twill_abi {
	enum twill_family family;
	enum ep_flags ep_flags;
	enum identity identity;
	enum ipc_flags ipc_flags;
	enum pol_dir pol_dir;
	enum pol_key_bits pol_key_bits;
	enum flow_verdict flow_verdict;
	enum reason reason;
	enum obs_point obs_point;
	enum echo_kind echo_kind;
	enum event_kind event_kind;
	enum obs_index obs_index;
	enum obs_conf obs_conf;
	enum ct_marker ct_marker;
	struct ep_key ep_key;
	struct ep_value ep_value;
	struct ep_counters ep_counters;
	struct ipc_key ipc_key;
	struct ipc_value ipc_value;
	struct pol_key pol_key;
	struct pol_value pol_value;
	struct flow_key flow_key;
	struct flow_value flow_value;
	struct flow_event flow_event;
	struct frag_key frag_key;
	struct frag_value frag_value;
	struct echo_key echo_key;
};

#endif
