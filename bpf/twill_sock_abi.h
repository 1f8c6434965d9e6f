/* The ABI of the socket-level Service translation (bpf/twill_sock.c) shared with twill's
 * loader and sync: the Service maps' key and value layouts and their constants. C is their
 * one definition; lib/bpf/abi-sock.generated.ts is generated from the object's BTF
 * (`make abi`; a unit test fails when it is stale), through struct twill_abi. */
#ifndef TWILL_SOCK_ABI_H
#define TWILL_SOCK_ABI_H

#include <linux/types.h>

enum lb_family {
	LB_AF_INET = 4,
	LB_AF_INET6 = 6,
};

/* Which traffic a frontend serves (Cilium's split): the socket hooks look up INT, then EXT. */
enum lb_scope {
	LB_SCOPE_EXT = 0,
	LB_SCOPE_INT = 1,
};

enum lb_fe_flags {
	LB_F_AFFINITY = 0x1, /* sessionAffinity ClientIP: affinity_timeout holds its seconds */
	LB_F_REJECT = 0x2,   /* no endpoints at all: refused (ECONNREFUSED at connect/sendmsg) */
	LB_F_DROP = 0x4,     /* traffic policy Local without a local endpoint: a socket cannot be
	                      * dropped, so it is refused the same way */
	LB_F_SRCRANGE = 0x8, /* loadBalancerSourceRanges: traffic from outside the node is served only
	                      * from a source lb_src holds for (svc_id, family); others are dropped.
	                      * The socket hooks (pods, the node itself) do not look at it. */
};

enum lb_be_flags {
	LB_BE_VALID = 0x1,       /* 0: a freed id (an entry not written, or pruned) */
	LB_BE_TERMINATING = 0x2, /* serving and terminating (KEP-1669): only used when no ready one */
	LB_BE_RETIRED = 0x4,     /* gone from its Service, kept one more round for a reader of the
	                          * slots it left: never chosen by affinity */
	LB_BE_LOCAL = 0x8,       /* the endpoint's nodeName is this node: traffic from outside reaches
	                          * it without SNAT (unset: SNAT to the node under traffic policy Cluster) */
};

enum lb_limits {
	LB_FE_MAX = 65536,
	LB_SLOTS_MAX = 262144,
	LB_BE_MAX = 131072,
	LB_AFF_MAX = 16384,
	LB_REV_MAX = 32768, /* live (socket, backend) pairs; 3.75 MiB: the node's Service maps stay within 16 MiB at 10,000 Services */
	LB_SRC_MAX = 16384, /* lb_src: source ranges of every load-balancer Service port of the node */
	LB_ERR_CONNREFUSED = 111, /* ECONNREFUSED: what the hooks answer for a Service with no endpoints */
};

/* lb_fe (HASH, no prealloc: a rewrite is an RCU swap of the element, so a reader sees the whole
 * old value or the whole new one). */
struct lb_fe_key {
	__u32 family;   /* LB_AF_INET / LB_AF_INET6 */
	__u8 addr[16];  /* IPv4 in the first 4 bytes, rest zero */
	__be16 port;
	__u8 proto;     /* IPPROTO_TCP / UDP / SCTP */
	__u8 scope;     /* enum lb_scope */
};

struct lb_fe_val {
	__u32 svc_id;   /* stable id of (Service, port): affinity and reverse translation */
	__u32 base;     /* first slot in lb_slots */
	__u16 count;    /* ready backends: lb_slots[base .. base+count) */
	__u16 term;     /* serving+terminating, used only when count == 0: lb_slots[base .. base+term) */
	__u16 flags;    /* enum lb_fe_flags */
	__u16 cap;      /* slots reserved at base (the allocator's) */
	__u32 affinity_timeout; /* seconds */
	__u32 pad;
};

/* lb_slots: ARRAY of __u32 backend ids. lb_be: ARRAY indexed by backend id (0 is never used).
 * A backend entry belongs to one Service (svc_id): an id reused for another never satisfies an
 * affinity recorded for the first. */
struct lb_be {
	__u32 family;
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 flags;     /* enum lb_be_flags */
	__u32 svc_id;
};

/* lb_aff (LRU): sessionAffinity at the socket layer. The client is its network namespace (the
 * source address is not chosen at connect()): the kernel gives the cookie, a pod cannot forge
 * another's. */
struct lb_aff_key {
	__u64 netns_cookie;
	__u32 svc_id;
	__u32 pad;
};

struct lb_aff_val {
	__u64 last_ns;  /* bpf_ktime_get_ns() of the last use */
	__u32 backend_id;
	__u32 pad;
};

/* lb_rev (LRU): what recvmsg/getpeername translate back, by socket cookie and the backend the
 * socket was sent to. (Socket storage would live and die with the socket, but twill's loader
 * loads no BTF into the kernel, which BPF_MAP_TYPE_SK_STORAGE needs.) */
struct lb_rev_key {
	__u64 cookie;
	__u32 family;
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 pad;
};

struct lb_rev_val {
	__u32 svc_id;
	__u8 addr[16];  /* the Service address (in the backend's family) */
	__be16 port;
	__u16 pad;
	__u32 backend_id; /* the lb_be entry chosen: the socket iterators destroy a connected
	                   * socket whose backend is no longer live (retired, freed, reused) */
};

/* lb_src (LPM_TRIE, twill_nodeport.c): a Service port's loadBalancerSourceRanges. prefixlen
 * counts svc_id and family whole (64 bits) plus the range's prefix; a match is an allowed
 * source. Keyed by svc_id: every load-balancer frontend of a Service port has the same ranges
 * (per family). The value is 1. */
struct lb_src_key {
	__u32 prefixlen;
	__u32 svc_id;
	__u32 family;   /* LB_AF_INET / LB_AF_INET6 */
	__u8 addr[16];  /* IPv4 in the first 4 bytes, rest zero */
};

/* Where the socket iterators (iter/udp, iter/tcp) read struct sock_common's fields: marker
 * offsets the loader moves to the running kernel's (FieldPatch with a span); twill's loader
 * loads no object BTF, so there is no CO-RE. */
enum lb_sk_marker {
	LB_SK_FAMILY_MARKER = 0x7d00,   /* skc_family, 2 bytes */
	LB_SK_STATE_MARKER = 0x7d10,    /* skc_state, 1 byte */
	LB_SK_DPORT_MARKER = 0x7d20,    /* skc_dport, 2 bytes */
	LB_SK_DADDR_MARKER = 0x7d30,    /* skc_daddr, 4 bytes */
	LB_SK_V6_DADDR_MARKER = 0x7d40, /* skc_v6_daddr, 16 bytes */
};

/* Every enum and struct above, named in one struct so the object's BTF keeps them all. */
struct twill_abi {
	enum lb_family family;
	enum lb_scope scope;
	enum lb_fe_flags fe_flags;
	enum lb_be_flags be_flags;
	enum lb_limits limits;
	enum lb_sk_marker sk_marker;
	struct lb_fe_key fe_key;
	struct lb_fe_val fe_val;
	struct lb_be be;
	struct lb_aff_key aff_key;
	struct lb_aff_val aff_val;
	struct lb_rev_key rev_key;
	struct lb_rev_val rev_val;
	struct lb_src_key src_key;
};

#endif
