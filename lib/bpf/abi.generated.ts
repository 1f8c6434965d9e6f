// Generated from bpf/twill_tc.o's BTF by tools/build/gen-abi.ts (`make abi`): do not edit.
// The definitions are C's, in bpf/twill_maps.h; a unit test fails when this file is stale.

// enum twill_family
export const TWILL_AF_INET = 4;
export const TWILL_AF_INET6 = 6;

// enum ep_flags
export const EP_F_NO_FAST = 0x1;
export const EP_F_PENDING = 0x2;
export const EP_F_POL_IN = 0x4;
export const EP_F_POL_OUT = 0x8;

// enum identity
export const ID_ANY = 0;
export const ID_HOST = 1;
export const ID_WORLD = 2;
export const ID_UNKNOWN = 3;
export const CLASS_CLUSTER_POD = 4;

// enum ipc_flags
export const IPC_F_HOST = 0x1;
export const IPC_F_POD = 0x2;

// enum pol_dir
export const POL_INGRESS = 1;
export const POL_EGRESS = 2;

// enum pol_key_bits
export const POL_KEY_BITS = 96;

// enum flow_verdict
export const FLOW_FORWARDED = 1;
export const FLOW_DROPPED = 2;

// enum reason
export const REASON_CONTINUE = 0;
export const REASON_PASS = 1;
export const REASON_REDIRECT = 2;
export const REASON_INVALID_SOURCE_IP = 132;
export const REASON_POLICY_DENIED = 133;
export const REASON_INVALID_PACKET = 134;
export const REASON_UNSUPPORTED_L3 = 139;
export const REASON_UNKNOWN_L4 = 142;
export const REASON_UNROUTABLE_IP = 151;
export const REASON_BAD_EXT_HDR = 156;
export const REASON_FRAG_NOT_FOUND = 165;

// enum obs_point
export const POINT_TO_STACK = 3;
export const POINT_TO_ENDPOINT = 101;

// enum echo_kind
export const ECHO_SENT = 1;
export const ECHO_RCVD = 2;

// enum event_kind
export const EV_NEW = 1;
export const EV_DROP = 2;
export const EV_END = 3;

// enum obs_index
export const OBS_READER = 0;
export const OBS_LOST = 1;
export const OBS_CONF = 2;
export const OBS_RECORD_TTL = 3;

// enum obs_conf
export const OBS_CONF_OFF = 1;

// enum ct_marker
export const TWILL_CT_STATUS_MARKER = 0x7ee8;

/** Byte size and member offsets of each map key and value (and event) struct. */
export const LAYOUTS = {
  ep_key: { size: 20, offsets: { family: 0, addr: 4 } },
  ep_value: { size: 24, offsets: { ifindex: 0, flags: 4, pod_mac: 8, host_mac: 14, policy_slot: 20 } },
  ep_counters: { size: 96, offsets: { redirect_packets: 0, redirect_bytes: 8, pass_packets: 16, pass_bytes: 24, spoofed_packets: 32, spoofed_bytes: 40, policy_in_packets: 48, policy_in_bytes: 56, policy_out_packets: 64, policy_out_bytes: 72, records_suppressed: 80, budget_tat: 88 } },
  ipc_key: { size: 24, offsets: { prefixlen: 0, family: 4, addr: 8 } },
  ipc_value: { size: 12, offsets: { identity: 0, flags: 4, ns: 8 } },
  pol_key: { size: 16, offsets: { prefixlen: 0, slot: 4, identity: 8, dir: 12, proto: 13, port: 14 } },
  pol_value: { size: 8, offsets: { policy: 0, flags: 4 } },
  flow_key: { size: 44, offsets: { family: 0, proto: 4, pad: 5, sport: 8, dport: 10, saddr: 12, daddr: 28 } },
  flow_value: { size: 56, offsets: { first_ns: 0, last_ns: 8, packets: 16, bytes: 24, allowed_out: 32, allowed_in: 36, slot: 40, verdict: 44, reason: 45, point: 46, tcp_flags: 47, reply: 48, dir: 49, event_win: 50, ifindex: 52 } },
  flow_event: { size: 112, offsets: { time_ns: 0, kind: 8, key: 12, value: 56 } },
  frag_key: { size: 48, offsets: { family: 0, proto: 4, pad: 5, id: 8, saddr: 12, daddr: 28, ifindex: 44 } },
  frag_value: { size: 16, offsets: { sport: 0, dport: 2, icmp: 4, ports: 5, echo_id: 6, until_ns: 8 } },
  echo_key: { size: 44, offsets: { family: 0, kind: 4, pad: 5, id: 6, requester: 8, responder: 24, ifindex: 40 } },
} as const;
