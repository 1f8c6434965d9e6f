// Services for traffic from outside the node: bpf/twill_nodeport.c attached by tcx on the node's
// external devices (node-wide, under the node lock, links pinned under the node's directory as
// `twill_nodeport:<device>`), and the address remote backends see as the client under
// externalTrafficPolicy Cluster. The frontends themselves are the external-scope entries
// applyServices writes into the node's Service maps, which this object shares by pin.
import { readdirSync, unlinkSync } from '../sys/fs.js';
import { attachTcx, switchLinks } from '../bpf/attach/tcx.js';
import { linksDir, loadManifestObject, nodeDir, type LoadReport } from '../bpf/loader.js';
import { NODEPORT_OBJECT } from '../bpf/manifest.js';
import { closeFd, linkDetach, mapUpdate, objGet, objInfo } from '../bpf/sys.js';
import { addrBytes, formatAddr, parseAddr, type Addr } from '../net/ip.js';
import { withNetlink, type Netlink } from '../sys/netlink.js';
import { find, NFT, run } from '../sys/nft.js';
import { getLink, getLinkByIndex, listAddresses, listRoutes } from '../sys/rtnl.js';
import { withNodeLock } from './netlock.js';

export interface NodePortTarget {
  bpffsRoot: string;
  /** Where the node lock lives (<stateDir>/locks/node.lock). */
  stateDir?: string;
}

/** The node's addresses remote backends see as the client (SNAT); by default the first global address of the first device per family. */
export interface SnatAddresses {
  v4?: string;
  v6?: string;
}

export interface NodePortReport {
  report: LoadReport;
  /** Devices attached by this call. */
  attached: string[];
  /** Devices whose link was removed (no longer listed, or gone). */
  detached: string[];
  /** The SNAT addresses written. */
  snat: SnatAddresses;
}

const DEFAULT_STATE_DIR = '/var/lib/twill';
const PROGRAM = NODEPORT_OBJECT.programs[0]!.name;
const PREFIX = `${PROGRAM}:`;

/** The nftables table that makes the stack run conntrack and nf_nat in this namespace. */
export const NAT_HOOKS_TABLE = 'twill_nodeport';

/**
 * The entries the program makes are translated by the stack only where conntrack's hooks and
 * nf_nat's are registered in the namespace, which netfilter does only for a rule that uses
 * conntrack and for a nat chain. An empty nat chain registers nf_nat's hooks, and a ct rule
 * registers conntrack's. Neither changes a verdict; nat chains are not consulted for a
 * connection whose NAT is already set up, as the program's entries are.
 */
function ensureNatHooks(): void {
  const nft = find(NFT);
  if (!nft) throw new Error('Services from outside the node need nft(8): conntrack and nf_nat are registered through an nftables nat chain');
  const t = `inet ${NAT_HOOKS_TABLE}`;
  const r = run(nft, ['-f', '-'], `add table ${t}\ndelete table ${t}\ntable ${t} {\n  chain nat_pre {\n    type nat hook prerouting priority dstnat; policy accept;\n    ct state invalid counter\n  }\n}\n`);
  if (!r.ok) throw new Error(`nft table ${t}: ${r.out}`);
}

function removeNatHooks(): void {
  const nft = find(NFT);
  if (nft) run(nft, ['delete', 'table', 'inet', NAT_HOOKS_TABLE]);
}

/** The link pin of the program on a device (interface names hold no colon, bpffs refuses dots only). */
export const nodePortLinkPin = (bpffsRoot: string, device: string): string => `${linksDir(nodeDir(bpffsRoot))}/${PREFIX}${device}`;

const ls = (d: string): string[] => {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
};

/** The ifindex a pinned tcx link is attached to (bpf_link_info.tcx.ifindex; 0 once its device went). */
function linkIfindex(pin: string): number | undefined {
  const fd = objGet(pin);
  if (fd === undefined) return undefined;
  try {
    return objInfo(fd, 64).readUInt32LE(16);
  } finally {
    closeFd(fd);
  }
}

function unpinLink(pin: string): void {
  const fd = objGet(pin);
  if (fd !== undefined) {
    try {
      linkDetach(fd);
    } catch {
      // already detached (its device went)
    } finally {
      closeFd(fd);
    }
  }
  try {
    unlinkSync(pin);
  } catch {
    // gone meanwhile
  }
}

const isGlobal = (a: Addr): boolean => (a.family === 4 ? a.value >> 24n !== 127n : a.value >> 118n !== 0x3fan && a.value !== 1n);

/**
 * The node's external devices as the kernel's routes say: those of the default routes, and
 * those holding nodeAddresses (the node's InternalIP(s)). Sorted, without duplicates.
 */
export function detectNodePortDevices(nodeAddresses: readonly string[] = []): string[] {
  return withNetlink((nl) => {
    const idx = new Set<number>();
    for (const f of [4, 6] as const) for (const r of listRoutes(nl, f)) if (r.dst.prefix === 0 && r.oif > 0) idx.add(r.oif);
    const want = nodeAddresses.map(parseAddr).filter((a): a is Addr => a !== undefined);
    for (const la of listAddresses(nl)) if (want.some((a) => a.family === la.cidr.addr.family && a.value === la.cidr.addr.value)) idx.add(la.index);
    const names = new Set<string>();
    for (const i of idx) {
      const l = getLinkByIndex(nl, i);
      if (l) names.add(l.name);
    }
    return [...names].sort();
  });
}

/** The SNAT address per family: the given ones, else the first global address of the first device that has one. */
function snatOf(nl: Netlink, devices: readonly { index: number }[], given: SnatAddresses): SnatAddresses {
  const out: SnatAddresses = { ...given };
  for (const d of devices) {
    for (const la of listAddresses(nl, d.index)) {
      const a = la.cidr.addr;
      if (!isGlobal(a)) continue;
      if (a.family === 4 && out.v4 === undefined) out.v4 = formatAddr(a);
      if (a.family === 6 && out.v6 === undefined) out.v6 = formatAddr(a);
    }
  }
  return out;
}

function writeSnat(fd: number, s: SnatAddresses): void {
  for (const [i, text, family] of [[0, s.v4, 4], [1, s.v6, 6]] as const) {
    const v = Buffer.alloc(16);
    if (text !== undefined) {
      const a = parseAddr(text);
      if (!a || a.family !== family) throw new Error(`SNAT address ${text}: not IPv${family}`);
      addrBytes(a).copy(v);
    }
    const k = Buffer.alloc(4);
    k.writeUInt32LE(i);
    mapUpdate(fd, k, v);
  }
}

/**
 * Loads bpf/twill_nodeport.c once per node (a new build of it takes over every pinned link) and
 * makes its tcx ingress links exactly the devices given: attaches the missing ones, re-attaches
 * one whose device was recreated, detaches the ones no longer listed. Writes the SNAT
 * addresses. Idempotent; an unknown device is an error before anything changes.
 */
export function ensureNodePortPrograms(t: NodePortTarget, devices: readonly string[], snat: SnatAddresses = {}): NodePortReport {
  return withNodeLock(t.stateDir ?? DEFAULT_STATE_DIR, () => withNetlink((nl) => {
    const devs = [...new Set(devices)].map((name) => {
      const l = getLink(nl, name);
      if (!l) throw new Error(`Services device ${name}: no such interface`);
      return { name, index: l.index };
    });
    const dir = linksDir(nodeDir(t.bpffsRoot));
    const l = loadManifestObject(NODEPORT_OBJECT, { root: t.bpffsRoot, sizes: { endpoints: 0 } });
    try {
      if (l.report.reloaded) switchLinks(dir, () => l.programs.get(PROGRAM)!, (pin) => pin.startsWith(PREFIX));
      ensureNatHooks();
      const addrs = snatOf(nl, devs, snat);
      writeSnat(l.maps.get('lb_np_snat')!, addrs);
      const attached: string[] = [], detached: string[] = [];
      const wanted = new Map(devs.map((d) => [d.name, d.index]));
      for (const f of ls(dir)) {
        if (!f.startsWith(PREFIX)) continue;
        const name = f.slice(PREFIX.length), at = linkIfindex(`${dir}/${f}`);
        if (wanted.get(name) === at) continue;
        unpinLink(`${dir}/${f}`);
        detached.push(name);
      }
      for (const d of devs) {
        const pin = nodePortLinkPin(t.bpffsRoot, d.name);
        if (linkIfindex(pin) === d.index) continue;
        attachTcx(l.programs.get(PROGRAM)!, d.index, 'ingress', pin);
        attached.push(d.name);
      }
      return { report: l.report, attached, detached: detached.filter((n) => !attached.includes(n)), snat: addrs };
    } finally {
      l.close();
    }
  }));
}

/** Detaches the program from every device and unpins it (the shared Service maps stay, they are the socket hooks'). */
export function removeNodePortPrograms(t: NodePortTarget): { detached: string[] } {
  return withNodeLock(t.stateDir ?? DEFAULT_STATE_DIR, () => {
    const dir = linksDir(nodeDir(t.bpffsRoot));
    const detached: string[] = [];
    for (const f of ls(dir)) {
      if (!f.startsWith(PREFIX)) continue;
      unpinLink(`${dir}/${f}`);
      detached.push(f.slice(PREFIX.length));
    }
    const node = nodeDir(t.bpffsRoot);
    const progPin = new RegExp(`^${NODEPORT_OBJECT.programs[0]!.pin.replace('{hash}', '[0-9a-f]{16}')}$`);
    let found = detached.length > 0;
    for (const f of ls(node)) {
      if (!progPin.test(f) && f !== 'lb_np_snat' && f !== 'lb_src') continue;
      unlinkSync(`${node}/${f}`);
      found = true;
    }
    // Nothing of the program was there: neither is its table (a sync with no external frontend calls this each round).
    if (found) removeNatHooks();
    return { detached };
  });
}
