/* One packet as the stages see it: what parsing read (struct pkt) and what the stages learn
 * on the way (struct verdict_ctx). */
#ifndef TWILL_LIB_PKT_H
#define TWILL_LIB_PKT_H

#include "common.h"

/* One packet's transport header: what the verdict needs of it. (A flow is what the flows map
 * keeps: every packet of one direction of a connection.) */
struct l4 {
	/* What the flow record reads, in one 8-byte stack slot: the verifier compares a slot
	 * whole when any byte of it is read later, so the verdict's own flags below stay out of
	 * it and do not make it walk the record once per combination of them. */
	__u8 proto;
	__u8 ports;  /* TCP/UDP/SCTP with both ports read */
	__u8 tcp_flags;
	__u8 pad0;
	__be16 sport; /* ICMP: the type (network order) */
	__be16 dport; /* ICMP: the code */
	__u8 ctl;    /* TCP SYN/FIN/RST, IP options, fragments, IPv6 extension headers: always through conntrack */
	__u8 icmp;   /* ICMP_K_*: what the message claims to be; only a check makes it a reply */
	__u8 link;   /* ICMPv6 neighbour discovery and MLD to a link-local or multicast address: never judged */
	__u8 frag;   /* FRAG_FIRST (more follow) or FRAG_LATER (no transport header) */
	__u8 encap;  /* IPIP, IPv6-in-IP or GRE */
	__u8 bad;    /* IPv6 extension headers that cannot be walked, or a routing header with segments left */
	__be16 echo_id;
	__u32 frag_id;
	__u32 l4off; /* of the transport header in the frame */
} __attribute__((aligned(8)));

#define ICMP_K_REQUEST 1 /* echo request */
#define ICMP_K_REPLY 2   /* echo reply */
#define ICMP_K_ERROR 3   /* reports on a packet it quotes */
#define BAD_CUT 2 /* l4.bad: the transport header is not all in the linear area (or short) */
#define FRAG_FIRST 1
#define FRAG_LATER 2

/* What the programs decided about a packet, for the flow record. */
struct obs {
	__u8 verdict;
	__u8 reason;
	__u8 point;
	__u8 dir;
	__u8 reply;
	__u8 skip; /* not recorded: forged, never judged, or judged again at the receiver's veth, which records it */
	__u32 allowed_out;
	__u32 allowed_in;
	__u32 slot;
};

/* Addresses of one packet, both as 16-byte keys (IPv4 in the first 4 bytes). */
struct addrs {
	__u32 family;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* One packet, as parsed: what the decision and the flow record need. */
struct pkt {
	struct addrs a;
	struct l4 l4;
	struct bpf_sock_tuple t;
	__u32 tlen;
	struct obs o;
	__u8 bad_opts; /* IPv4 options other than IGMP's Router Alert to a multicast group */
	__u8 src_link; /* IPv6: a link-local (fe80::/10) or the unspecified source */
};

/* What conntrack says of a packet. */
struct ct_seen {
	__u8 found;
	__u8 reply;
	__u8 direct; /* confirmed, answered and not NAT'd: may take the fast path */
};

/* What the stages learn of a packet beyond its headers, for the stages after them. */
struct verdict_ctx {
	struct ep_value *from; /* the sending pod (from_pod: validated) */
	struct ep_value *to;   /* the receiving pod, when it is local */
	struct ipc_value *peer; /* to_pod: the sender's ipcache entry (NULL: the world) */
	struct ct_seen ct;
	__u8 judge;            /* a policy judges it (from_pod: the sender's egress; to_pod: the pod's ingress) */
	__u8 fast;             /* from_pod: it may be redirected into the receiving pod */
	__u32 redirect_to;     /* REASON_REDIRECT: the receiving pod's host veth */
};

#endif
