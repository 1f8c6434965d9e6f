// What the loader loads: each BPF object described once (cilium/ebpf's CollectionSpec is the
// model) — its programs (section, type, expected attach type, where they attach, scope) and its
// maps (pin scope, where the size comes from, layout version). The loader knows no map or
// program by name; adding an object (Services' socket hooks) is adding an entry here.
import { CT_STATUS_MARKER, OBS_CONF, OBS_CONF_OFF, obsIndex, u64, type MapName } from './layout.js';
import { AttachType, mapUpdate, ProgType } from './sys.js';
import { LAYOUTS, LB_SK_DADDR_MARKER, LB_SK_DPORT_MARKER, LB_SK_FAMILY_MARKER, LB_SK_STATE_MARKER, LB_SK_V6_DADDR_MARKER } from './abi-sock.generated.js';

/** node: one pin for the whole host (<root>/twill-node/); network: one per network (<root>/twill/<network>/). */
export type Scope = 'node' | 'network';

/** The sizes a network's configuration gives its maps (NetConf: maxEndpoints, policy.*Entries, flowEntries). */
export interface MapSizes {
  /** max_entries of the endpoint and counter maps (maxEndpoints). */
  endpoints: number;
  /** max_entries of the ipcache and policy tries (default: the object's). */
  ipcache?: number;
  policy?: number;
  /** Flow history entries (flowEntries); 0 turns the flow record and its events off. */
  flows?: number;
}

export type CgroupHook = 'connect4' | 'connect6' | 'sendmsg4' | 'sendmsg6' | 'recvmsg4' | 'recvmsg6' | 'getpeername4' | 'getpeername6' | 'bind4' | 'bind6' | 'post_bind4' | 'post_bind6' | 'sock_create' | 'sock_release';

/** The attach type (and expected_attach_type) of each cgroup hook. */
export const CGROUP_HOOKS: Record<CgroupHook, number> = {
  connect4: AttachType.CgroupInet4Connect, connect6: AttachType.CgroupInet6Connect,
  sendmsg4: AttachType.CgroupUdp4Sendmsg, sendmsg6: AttachType.CgroupUdp6Sendmsg,
  recvmsg4: AttachType.CgroupUdp4Recvmsg, recvmsg6: AttachType.CgroupUdp6Recvmsg,
  getpeername4: AttachType.CgroupInet4Getpeername, getpeername6: AttachType.CgroupInet6Getpeername,
  bind4: AttachType.CgroupInet4Bind, bind6: AttachType.CgroupInet6Bind,
  post_bind4: AttachType.CgroupInet4PostBind, post_bind6: AttachType.CgroupInet6PostBind,
  sock_create: AttachType.CgroupInetSockCreate, sock_release: AttachType.CgroupInetSockRelease,
};

/** Where a program runs. tc: on a host veth, by legacy cls_bpf or tcx as the network says (datapath/ebpf.ts). */
export type AttachPoint =
  | { kind: 'tc'; direction: 'ingress' | 'egress' }
  | { kind: 'cgroup'; hook: CgroupHook }
  /** Entered by bpf_tail_call through that prog array map, at that index. */
  | { kind: 'tail-call'; map: string; index: number }
  /** A BPF iterator over the kernel's objects of target (bpf_iter_<target>), run by attach/iter.ts runIterator. */
  | { kind: 'iter'; target: 'udp' | 'tcp' }
  /** Loaded only (run by BPF_PROG_TEST_RUN, or attached by its caller). */
  | { kind: 'none' };

export type ProgKind = 'sched_cls' | 'cgroup_sock_addr' | 'cgroup_sock' | 'tracing_iter';
export const PROG_TYPES: Record<ProgKind, number> = { sched_cls: ProgType.SchedCls, cgroup_sock_addr: ProgType.CgroupSockAddr, cgroup_sock: ProgType.CgroupSock, tracing_iter: ProgType.Tracing };

export interface ProgramSpec {
  /** The ELF function (the program's name in errors: `program from_pod load: …`). */
  name: string;
  /** The ELF section that holds it. */
  section: string;
  type: ProgKind;
  /** expected_attach_type; a cgroup program's defaults to its hook's. */
  expectedAttach?: number;
  attach: AttachPoint;
  scope: Scope;
  /** Pin name; {hash} is replaced by the object's hash, so an upgrade pins beside the old one and switches. */
  pin: string;
}

/** What the running kernel gives a program: a struct member's offset written where the object put a marker. */
export interface FieldPatch {
  marker: number;
  struct: string;
  member: string;
  /** Every program of the object must read it (a program that reads none was built wrong). */
  required: boolean;
  /**
   * Set: loads of any width in [marker, marker + span) are moved (a field read in parts, or a
   * byte of it). Unset: 64-bit loads at marker only.
   */
  span?: number;
}

/** Where a map's max_entries comes from: the object's definition, or a size of the network's configuration. */
export type SizeSource = { from: 'object' } | { from: 'conf'; field: keyof MapSizes; /** used when the configured size is 0 */ whenZero?: number };

export interface MapEntry {
  key: Buffer;
  value: Buffer;
}

export interface MapSpec {
  scope: Scope;
  size: SizeSource;
  /**
   * Layout version: bumped when the meaning of the key or value changes without its size. The
   * kernel map's name carries it (`<name>.v<n>` from 2), so a pinned map says which it is.
   */
  version: number;
  /** Written before the map is pinned: no program sees the map without it. */
  init?: (fd: number, sizes: MapSizes) => void;
  /**
   * An entry of the pinned map whose layout changed, in the new layout (undefined: dropped).
   * Without it, such a map is recreated empty.
   */
  migrate?: (old: MapEntry, from: { version: number; keySize: number; valueSize: number }) => MapEntry | undefined;
}

export interface ObjectSpec<M extends string = string> {
  /** Name in errors and pin paths. */
  name: string;
  /** The object file (an asset of the executable, bpf/ in a checkout; lib/bpf/object.ts). */
  file: string;
  programs: ProgramSpec[];
  maps: Record<M, MapSpec>;
  fields?: FieldPatch[];
}

/** max_entries of a map: the configured size its source names, else the object's (objectSize). */
export function mapSize(spec: MapSpec, objectSize: number, sizes: MapSizes): number {
  if (spec.size.from === 'object') return objectSize;
  const n = sizes[spec.size.field];
  if (n === undefined) return objectSize;
  return n === 0 && spec.size.whenZero !== undefined ? spec.size.whenZero : n;
}

const networkMap = (size: SizeSource = { from: 'object' }): MapSpec => ({ scope: 'network', size, version: 1 });

/** twill's tc object: the two host-veth programs and the network's maps. */
export const TC_OBJECT: ObjectSpec<MapName> = {
  name: 'tc',
  file: 'twill_tc.o',
  programs: [
    { name: 'twill_from_pod', section: 'tc/from_pod', type: 'sched_cls', attach: { kind: 'tc', direction: 'ingress' }, scope: 'network', pin: 'prog_{hash}' },
    { name: 'twill_to_pod', section: 'tc/to_pod', type: 'sched_cls', attach: { kind: 'tc', direction: 'egress' }, scope: 'network', pin: 'prog_{hash}_to' },
  ],
  maps: {
    endpoints: networkMap({ from: 'conf', field: 'endpoints' }),
    counters: networkMap({ from: 'conf', field: 'endpoints' }),
    ipcache: networkMap({ from: 'conf', field: 'ipcache' }),
    policy: networkMap({ from: 'conf', field: 'policy' }),
    // An LRU map needs an entry at least: with flows off, the programs never write it.
    flows: networkMap({ from: 'conf', field: 'flows', whenZero: 1 }),
    events: networkMap(),
    observer: {
      ...networkMap(),
      init: (fd, sizes) => {
        if (sizes.flows === 0) mapUpdate(fd, obsIndex(OBS_CONF), u64(OBS_CONF_OFF));
      },
    },
    frags: networkMap(),
    echoes: networkMap(),
  },
  fields: [{ marker: CT_STATUS_MARKER, struct: 'nf_conn', member: 'status', required: true }],
};

/** The maps of twill_sock.c (bpf/lib/lb.h): Services, node-wide. */
export type SockMapName = 'lb_fe' | 'lb_slots' | 'lb_be' | 'lb_aff' | 'lb_rev';

const SOCK_HOOKS: CgroupHook[] = ['connect4', 'connect6', 'sendmsg4', 'sendmsg6', 'recvmsg4', 'recvmsg6', 'getpeername4', 'getpeername6'];
const nodeMap: MapSpec = { scope: 'node', size: { from: 'object' }, version: 1 };

/** sock_common's fields the socket iterators read (LB_SK_*_MARKER); the cgroup programs read none. */
const skField = (marker: number, member: string, span: number): FieldPatch => ({ marker, struct: 'sock_common', member, required: false, span });

/**
 * The socket-level Service translation: one program per cgroup hook, attached to cgroupRoot; the
 * socket iterators that destroy connected sockets whose backend left (run by
 * datapath/services-term.ts); node-wide maps.
 */
export const SOCK_OBJECT: ObjectSpec<SockMapName> = {
  name: 'sock',
  file: 'twill_sock.o',
  programs: [
    ...SOCK_HOOKS.map((hook): ProgramSpec => ({ name: `twill_${hook}`, section: `cgroup/${hook}`, type: 'cgroup_sock_addr', attach: { kind: 'cgroup', hook }, scope: 'node', pin: `sock_${hook}_{hash}` })),
    ...(['udp', 'tcp'] as const).map((target): ProgramSpec => ({ name: `twill_term_${target}`, section: `iter/${target}`, type: 'tracing_iter', attach: { kind: 'iter', target }, scope: 'node', pin: `sock_term_${target}_{hash}` })),
  ],
  maps: {
    lb_fe: nodeMap, lb_slots: nodeMap, lb_be: nodeMap, lb_aff: nodeMap,
    // v2: the value records the backend id (the iterators judge it); older entries keep
    // translating back, with id 0 (not judged).
    lb_rev: { ...nodeMap, version: 2, migrate: (e, from) => (from.valueSize === 24 ? { key: e.key, value: Buffer.concat([e.value, Buffer.alloc(LAYOUTS.lb_rev_val.size - 24)]) } : undefined) },
  },
  fields: [
    skField(LB_SK_FAMILY_MARKER, 'skc_family', 2), skField(LB_SK_STATE_MARKER, 'skc_state', 1), skField(LB_SK_DPORT_MARKER, 'skc_dport', 2),
    skField(LB_SK_DADDR_MARKER, 'skc_daddr', 4), skField(LB_SK_V6_DADDR_MARKER, 'skc_v6_daddr', 16),
  ],
};

/** The maps of twill_nodeport.c: the node's Service maps (the same pins as SOCK_OBJECT's), the SNAT address and the load-balancer source ranges. */
export type NodePortMapName = SockMapName | 'lb_np_snat' | 'lb_src';

/**
 * The per-packet translation of traffic from outside the node (NodePort, external and
 * load-balancer IPs): one tc program on the node's external devices (tcx ingress, links pinned
 * under the node's directory by datapath/nodeport.ts). Its Service maps are SOCK_OBJECT's pins:
 * their layout versions must stay equal to SOCK_OBJECT's, or each object's load would replace
 * the other's maps.
 */
export const NODEPORT_OBJECT: ObjectSpec<NodePortMapName> = {
  name: 'nodeport',
  file: 'twill_nodeport.o',
  programs: [{ name: 'twill_nodeport', section: 'tc/nodeport', type: 'sched_cls', attach: { kind: 'tc', direction: 'ingress' }, scope: 'node', pin: 'nodeport_{hash}' }],
  maps: { ...SOCK_OBJECT.maps, lb_np_snat: nodeMap, lb_src: nodeMap },
};

/** Every object twill loads. */
export const OBJECTS: readonly ObjectSpec[] = [TC_OBJECT, SOCK_OBJECT, NODEPORT_OBJECT];

/** The pinned kernel name of a map at a layout version (map names allow [A-Za-z0-9_.], 15 bytes). */
export function kernelMapName(name: string, version: number): string {
  if (version <= 1) return name.slice(0, 15);
  const suffix = `.v${version}`;
  return `${name.slice(0, 15 - suffix.length)}${suffix}`;
}

/** The layout version a kernel map name says (1 without a suffix). */
export function versionOfName(kernelName: string): number {
  const m = /\.v(\d+)$/.exec(kernelName);
  return m ? Number(m[1]) : 1;
}

/** The map names of an object spec. */
export const mapNames = <M extends string>(o: ObjectSpec<M>): M[] => Object.keys(o.maps) as M[];
