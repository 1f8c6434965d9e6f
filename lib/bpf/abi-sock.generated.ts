// Generated from bpf/twill_sock.o's BTF by tools/build/gen-abi.ts (`make abi`): do not edit.
// The definitions are C's, in bpf/twill_sock_abi.h; a unit test fails when this file is stale.

// enum lb_family
export const LB_AF_INET = 4;
export const LB_AF_INET6 = 6;

// enum lb_scope
export const LB_SCOPE_EXT = 0;
export const LB_SCOPE_INT = 1;

// enum lb_fe_flags
export const LB_F_AFFINITY = 0x1;
export const LB_F_REJECT = 0x2;
export const LB_F_DROP = 0x4;
export const LB_F_SRCRANGE = 0x8;

// enum lb_be_flags
export const LB_BE_VALID = 0x1;
export const LB_BE_TERMINATING = 0x2;
export const LB_BE_RETIRED = 0x4;
export const LB_BE_LOCAL = 0x8;

// enum lb_limits
export const LB_FE_MAX = 65536;
export const LB_SLOTS_MAX = 262144;
export const LB_BE_MAX = 131072;
export const LB_AFF_MAX = 16384;
export const LB_REV_MAX = 32768;
export const LB_SRC_MAX = 16384;
export const LB_ERR_CONNREFUSED = 111;

// enum lb_sk_marker
export const LB_SK_FAMILY_MARKER = 0x7d00;
export const LB_SK_STATE_MARKER = 0x7d10;
export const LB_SK_DPORT_MARKER = 0x7d20;
export const LB_SK_DADDR_MARKER = 0x7d30;
export const LB_SK_V6_DADDR_MARKER = 0x7d40;

/** Byte size and member offsets of each map key and value (and event) struct. */
export const LAYOUTS = {
  lb_fe_key: { size: 24, offsets: { family: 0, addr: 4, port: 20, proto: 22, scope: 23 } },
  lb_fe_val: { size: 24, offsets: { svc_id: 0, base: 4, count: 8, term: 10, flags: 12, cap: 14, affinity_timeout: 16, pad: 20 } },
  lb_be: { size: 28, offsets: { family: 0, addr: 4, port: 20, proto: 22, flags: 23, svc_id: 24 } },
  lb_aff_key: { size: 16, offsets: { netns_cookie: 0, svc_id: 8, pad: 12 } },
  lb_aff_val: { size: 16, offsets: { last_ns: 0, backend_id: 8, pad: 12 } },
  lb_rev_key: { size: 32, offsets: { cookie: 0, family: 8, addr: 12, port: 28, proto: 30, pad: 31 } },
  lb_rev_val: { size: 28, offsets: { svc_id: 0, addr: 4, port: 20, pad: 22, backend_id: 24 } },
  lb_src_key: { size: 28, offsets: { prefixlen: 0, svc_id: 4, family: 8, addr: 12 } },
} as const;
