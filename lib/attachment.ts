// ADD, DEL, CHECK, GC and STATUS of one attachment, composed from ipam/ and sys/.
// Every kernel or store change of an ADD is undone if a later step fails.
import { accessSync, constants } from './sys/fs.js';
import { Code, CniError } from './cni/errors.js';
import type { Dns, Result } from './cni/result.js';
import { parseResult } from './cni/result.js';
import type { NetConf } from './config/types.js';
import { formatAddr, formatCidr, network, parseAddr, parseCidr, sameAddr, type Addr, type Cidr } from './net/ip.js';
import type { IpamOutcome } from './ipam/hostlocal.js';
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamHeldCount, ipamStatus, type IpamCall } from './ipam/ipam.js';
import { log } from './log.js';
import { ensureBackend, readBackendState } from './datapath/backend.js';
import { crashPoint } from './crash.js';
import { aliasPrefix, hostVethAlias, hostVethName, randomMac } from './naming.js';
import { openNetns, type Netns } from './sys/netns.js';
import { NetnsGone } from './sys/errors.js';
import { ensureNetworkMasq, removeNetworkMasq } from './datapath/masq.js';
import { attachPod, detachPod, freePodIfName, hostLinkIndex, hostLinksWithAlias, listHostLinkNames, localAddresses, readHostSide, readPodSide, type SideState } from './sys/podlink.js';
import { ebpfNet, isShaped, policyBlocker, readDatapathState, setupDatapath, shaping, teardownDatapath } from './datapath/select.js';
import { clearPending, markPending, promotePending } from './datapath/promote.js';
import { EP_F_PENDING } from './bpf/layout.js';
import { ebpfGc, ebpfRead, unpinLater } from './datapath/ebpf.js';
import { ensureNetworkGuard, guardBlocker, removeNetworkGuard } from './datapath/guard.js';
import { withNetworkLock } from './datapath/netlock.js';
import { readAppliedMap, removeEndpoint, writeEndpoint } from './datapath/policy-state.js';
import { readPodStart } from './state/files.js';

export interface Call extends IpamCall {
  netnsPath: string;
}

const hostName = (c: Call): string => hostVethName(c.conf.hostVethPrefix, c.containerId, c.ifName);

/** Pod routes: each range's subnet and the configured routes, through the family's gateway. */
export function podRoutes(ipam: IpamOutcome): { dst: Cidr; gw: Addr }[] {
  const out = new Map<string, { dst: Cidr; gw: Addr }>();
  const gwFor = (f: 4 | 6): Addr | undefined => ipam.ips.find((i) => i.cidr.addr.family === f)?.gateway;
  for (const ip of ipam.ips) {
    const dst = network(ip.cidr);
    out.set(formatCidr(dst), { dst, gw: ip.gateway });
  }
  for (const r of ipam.routes) {
    const dst = parseCidr(r.dst);
    if (!dst) throw new CniError(Code.InvalidConfig, `invalid route destination "${r.dst}"`);
    const gw = r.gw ? parseAddr(r.gw) : gwFor(dst.addr.family);
    if (!gw) continue; // no address of that family: the route cannot apply to this pod
    out.set(formatCidr(network(dst)), { dst: network(dst), gw });
  }
  return [...out.values()];
}

function mergeDns(a: Dns | undefined, b: Dns | undefined): Dns | undefined {
  if (!a) return b;
  if (!b) return a;
  return { ...b, ...a };
}

function runUndo(undo: (() => void)[], cause: unknown): void {
  for (const step of undo.reverse()) {
    try {
      step();
    } catch (e) {
      log.error('cleanup after failed ADD failed', { error: (e as Error).message, cause: (cause as Error).message });
    }
  }
}

export function add(c: Call): Result {
  const blocked = policyBlocker(c.conf) ?? guardBlocker(c.conf);
  if (blocked) throw new CniError(Code.NotAvailable, blocked);
  const ns = openNetns(c.netnsPath);
  const undo: (() => void)[] = [];
  // Runs last: a failed ADD that was the network's only pod takes the guard and NAT rules too
  // (only once it got that far: a rejected ADD touches nothing).
  let sharedState = false;
  undo.push(() => {
    if (sharedState) locked(c, () => networkIdle(c) && removeNetworkState(c.conf));
  });
  try {
    const mtu = ensureBackend(c.conf);
    const ipam = ipamAdd(c);
    undo.push(() => ipamDel(c));
    const name = hostName(c);
    const hostMac = randomMac();
    const podMac = randomMac();
    // Registered before the attempt: attachPod may fail after creating the pair.
    undo.push(() => detachPod(name));
    const addrs = ipam.ips.map((i) => i.cidr.addr);
    let dp: ReturnType<typeof setupDatapath> | undefined;
    attachPod({
      hostName: name, hostMac, podIfName: c.ifName, podMac, mtu, netns: ns,
      alias: hostVethAlias(c.conf.name, c.containerId, c.ifName),
      addrs: ipam.ips, routes: podRoutes(ipam),
      step: (done) => crashPoint(`add:${done}`),
      // The data path (programs, policy) is in place before the host end comes up: no packet
      // crosses the pair unjudged, not even the first.
      beforeUp: (hostIndex) => {
        undo.push(() => locked(c, () => unpinLater(teardownDatapath(c.conf, name, hostIndex, addrs))));
        // What the network sets up once (maps and program, guard, masquerade) is ordered against
        // the DEL that finds the network's last pod gone and takes it down.
        sharedState = true;
        dp = locked(c, () => {
          promoteOthers(c);
          const policy = c.conf.policy ? { pod: c.pod ? readPodStart(c.conf, `${c.pod.namespace}/${c.pod.name}`) : undefined, syncedMap: readAppliedMap(c.conf), gateways: ipam.ips.map((i) => i.gateway) } : undefined;
          const st = setupDatapath(c.conf, { hostName: name, hostIndex, hostMac, podMac, addrs, shaping: shaping(c.conf), ...(policy ? { policy } : {}) });
          if (st.pending) markPending(c.conf, name, { containerId: c.containerId, ifName: c.ifName, hostIndex });
          if (c.pod) {
            writeEndpoint(c.conf, name, { ...c.pod, containerId: c.containerId, ifName: c.ifName, ifindex: hostIndex, addrs: addrs.map(formatAddr), netns: c.netnsPath });
            undo.push(() => removeEndpoint(c.conf, name));
          }
          if (policy && !policy.pod) log.warn('pod unknown to the last policy sync: isolated until the next sync', { pod: c.pod ? `${c.pod.namespace}/${c.pod.name}` : '(no K8S_POD_NAME in CNI_ARGS)' });
          ensureNetworkGuard(c.conf);
          ensureNetworkMasq(c.conf, localAddresses);
          return st;
        });
      },
    });
    if (!dp) throw new Error(`host veth ${name} came up without its data path`);
    const prev = c.conf.prevResult ? parseResult(c.conf.prevResult) : undefined;
    const base = prev?.interfaces.length ?? 0;
    const result: Result = {
      interfaces: [...(prev?.interfaces ?? []), { name, mac: hostMac }, { name: c.ifName, mac: podMac, mtu, sandbox: c.netnsPath }],
      ips: [...(prev?.ips ?? []), ...ipam.ips.map((i) => ({ address: formatCidr(i.cidr), gateway: formatAddr(i.gateway), interface: base + 1 }))],
      routes: [...(prev?.routes ?? []), ...ipam.routes],
    };
    const dns = mergeDns(c.conf.dns, ipam.dns);
    if (dns) result.dns = dns;
    crashPoint('add:done');
    log.info('attached', { host: name, netns: c.netnsPath, ips: result.ips.map((i) => i.address), datapath: dp.mode, ...(dp.pending ? { pending: true } : {}), ...(dp.attach ? { attach: dp.attach } : {}), ...(c.pod ? { pod: `${c.pod.namespace}/${c.pod.name}` } : {}) });
    return result;
  } catch (e) {
    runUndo(undo, e);
    throw e;
  } finally {
    ns.close();
  }
}

const locked = <T>(c: Call, fn: () => T): T => withNetworkLock(c.conf.stateDir, c.conf.name, fn);

/** Settles other pods of the network still waiting for their chain (datapath/promote.ts); never fails the verb. */
function promoteOthers(c: Call): void {
  if (c.conf.datapath === 'routed') return;
  try {
    promotePending(c.conf);
  } catch (e) {
    log.warn('could not settle pending pods', { error: (e as Error).message });
  }
}

/**
 * True when no pod of the network is left on this host (called with the network lock held).
 * The built-in IPAM's store decides: an ADD reserves before it takes the lock, so a pod on
 * its way up is counted even before its veth exists. A delegated IPAM leaves only the veths
 * to count, up or not.
 */
function networkIdle(c: Call, exceptVeth?: string): boolean {
  const held = ipamHeldCount(c);
  if (held !== undefined) return held === 0;
  return hostLinksWithAlias(aliasPrefix(c.conf.name)).every((l) => l.name === exceptVeth);
}

/**
 * The network's last pod on the host is gone: its NAT rules go. The guard table stays for the
 * next pod (re-creating it costs an nft run, ~40 ms, on the ADD after): GC with nothing valid
 * and `twill sync --cleanup` remove it.
 */
function removeNetworkState(conf: NetConf, withGuard = false): true {
  if (withGuard) removeNetworkGuard(conf);
  if (conf.ipMasq) removeNetworkMasq(conf);
  return true;
}

/** Pod addresses named by prevResult (DEL may find the IPAM already released). */
function prevAddrs(c: Call): Addr[] {
  try {
    return c.conf.prevResult ? parseResult(c.conf.prevResult).ips.map((i) => parseCidr(i.address)?.addr).filter((a): a is Addr => a !== undefined) : [];
  } catch {
    return [];
  }
}

/** Best effort to the end: releases the addresses and removes the veth, whatever is already gone. */
export function del(c: Call): void {
  const errors: string[] = [];
  const name = hostName(c);
  let hostIndex: number | undefined;
  try {
    hostIndex = hostLinkIndex(name);
  } catch (e) {
    errors.push(`veth ${name}: ${(e as Error).message}`);
  }
  let released: string[] = [];
  try {
    released = ipamDel(c);
    log.info('released', { ips: released });
  } catch (e) {
    errors.push(`ipam: ${(e as Error).message}`);
  }
  let pins: string[] = [];
  try {
    locked(c, () => {
      try {
        const addrs = [...released.map(parseAddr).filter((a): a is Addr => a !== undefined), ...prevAddrs(c)];
        clearPending(c.conf, name);
        removeEndpoint(c.conf, name);
        pins = teardownDatapath(c.conf, name, hostIndex, addrs);
        crashPoint('del:datapath');
        promoteOthers(c);
      } catch (e) {
        errors.push(`ebpf: ${(e as Error).message}`);
      }
      if (networkIdle(c, name)) removeNetworkState(c.conf);
    });
  } catch (e) {
    errors.push(`network state: ${(e as Error).message}`);
  }
  // As the reference plugins, a DEL leaves no CNI_IFNAME in CNI_NETNS: the pod end goes even
  // when the host end is already renamed or its deletion was never started (a killed DEL).
  try {
    freeIfName(c, name, hostIndex);
  } catch (e) {
    errors.push(`${c.ifName} in ${c.netnsPath}: ${(e as Error).message}`);
  }
  try {
    const removed = detachPod(name, true, pins, (done) => crashPoint(`del:${done}`));
    if (!removed) unpinLater(pins);
    log.info(removed ? 'detached' : 'veth already gone', { host: name });
  } catch (e) {
    errors.push(`veth ${name}: ${(e as Error).message}`);
  }
  if (errors.length > 0) throw new CniError(Code.TryAgainLater, `DEL incomplete: ${errors.join('; ')}`);
}

/**
 * Frees CNI_IFNAME in an existing CNI_NETNS when it is this attachment's pod end (and removes
 * pairs of this attachment that interrupted calls left there): a veth whose host end carries
 * its alias (under its name or a tombstone's) or, unnamed yet (an ADD killed before the alias),
 * its host veth name. Anything else there was not made by this attachment and stays (ptp
 * deletes whatever holds the name; twill deletes only what it made).
 */
function freeIfName(c: Call, name: string, hostIndex: number | undefined): void {
  if (!c.netnsPath) return;
  let ns: Netns;
  try {
    ns = openNetns(c.netnsPath);
  } catch (e) {
    // Gone (the runtime removed it): nothing is left in it. Unusable: nothing of ours can be.
    if (!(e instanceof NetnsGone)) log.warn('DEL cannot look into CNI_NETNS', { netns: c.netnsPath, error: (e as Error).message });
    return;
  }
  try {
    const alias = hostVethAlias(c.conf.name, c.containerId, c.ifName);
    const deleted = freePodIfName(ns, c.ifName, (h) => h.alias === alias || (h.name === name && h.alias === ''), hostIndex);
    if (deleted.length > 0) log.info('removed pairs an interrupted call left', { podEnds: deleted, netns: c.netnsPath });
  } finally {
    ns.close();
  }
}

function hasAddr(side: SideState, cidr: Cidr): boolean {
  return side.addrs.some((a) => sameAddr(a.cidr.addr, cidr.addr) && a.cidr.prefix === cidr.prefix);
}

function hasRoute(side: SideState, dst: Cidr, gw?: Addr): boolean {
  const net = network(dst);
  return side.routes.some((r) => r.dst.prefix === net.prefix && sameAddr(r.dst.addr, net.addr) && (!gw || (r.gw !== undefined && sameAddr(r.gw, gw))));
}

/** CHECK's verdict: a declaration (not an arrow) so the compiler narrows after each call. */
function fail(what: string): never {
  throw new CniError(Code.Internal, `CHECK failed: ${what}`);
}

export function check(c: Call): void {
  if (!c.conf.prevResult) throw new CniError(Code.InvalidConfig, 'CHECK needs prevResult');
  const prev = parseResult(c.conf.prevResult);
  const podIdx = prev.interfaces.findIndex((i) => i.name === c.ifName && i.sandbox);
  if (podIdx < 0) throw new CniError(Code.InvalidConfig, `prevResult has no interface ${c.ifName} with a sandbox`);
  const ips = prev.ips.filter((i) => i.interface === podIdx).map((i) => ({ cidr: parseCidr(i.address), gw: i.gateway ? parseAddr(i.gateway) : undefined }));
  const families = [...new Set(ips.map((i) => i.cidr?.addr.family ?? 4))];
  const ns = openNetns(c.netnsPath);
  let pod: SideState;
  try {
    pod = readPodSide(ns, c.ifName, families);
  } finally {
    ns.close();
  }
  if (!pod.link) fail(`interface ${c.ifName} is missing from ${c.netnsPath}`);
  const want = prev.interfaces[podIdx]!;
  if (want.mac && pod.link.mac !== want.mac.toLowerCase()) fail(`${c.ifName} has MAC ${pod.link.mac}, expected ${want.mac}`);
  const mtu = want.mtu ?? c.conf.mtu ?? readBackendState(c.conf)?.mtu ?? 1500;
  if (pod.link.mtu !== mtu) fail(`${c.ifName} has MTU ${pod.link.mtu}, expected ${mtu}`);
  const name = hostName(c);
  const host = readHostSide(name, families);
  if (!host.link) fail(`host veth ${name} is missing`);
  if (host.link.index !== pod.link.peerIndex) fail(`host veth ${name} is not the peer of ${c.ifName}`);
  for (const ip of ips) {
    if (!ip.cidr) fail('prevResult has an invalid address');
    if (!hasAddr(pod, ip.cidr)) fail(`${c.ifName} lacks address ${formatCidr(ip.cidr)}`);
    const hostRoute = { addr: ip.cidr.addr, prefix: ip.cidr.addr.family === 4 ? 32 : 128 };
    if (!hasRoute(host, hostRoute)) fail(`host route to ${formatAddr(ip.cidr.addr)} via ${name} is missing`);
    if (ip.gw && !hasRoute(pod, { addr: ip.gw, prefix: ip.gw.family === 4 ? 32 : 128 })) fail(`pod route to gateway ${formatAddr(ip.gw)} is missing`);
  }
  for (const r of prev.routes) {
    const dst = parseCidr(r.dst);
    if (dst && families.includes(dst.addr.family) && !hasRoute(pod, dst)) fail(`pod route to ${r.dst} is missing`);
  }
  checkDatapath(c, name, host.link.index, ips.map((i) => i.cidr).filter((x): x is Cidr => x !== undefined).map((x) => x.addr));
  const held = ipamCheck(c);
  if (held) {
    for (const ip of ips) {
      if (ip.cidr && !held.includes(formatAddr(ip.cidr.addr))) fail(`address ${formatAddr(ip.cidr.addr)} is not reserved for ${c.containerId}/${c.ifName}`);
    }
  }
}

function checkDatapath(c: Call, name: string, hostIndex: number, addrs: Addr[]): void {
  if (c.conf.datapath === 'routed' || readDatapathState(c.conf)?.mode !== 'ebpf') return;
  const st = ebpfRead(ebpfNet(c.conf), name, hostIndex, addrs);
  if (!st) fail('eBPF maps of the network are not pinned');
  for (const a of addrs) {
    const e = st.entries.find((x) => sameAddr(x.addr, a));
    if (!e) fail(`endpoint map has no entry for ${formatAddr(a)}`);
    if (e.ep.ifindex !== hostIndex) fail(`endpoint map sends ${formatAddr(a)} to ifindex ${e.ep.ifindex}, not ${name} (${hostIndex})`);
  }
  // A shaped pod has no program by design (see datapath/ebpf.ts), nor one still pending (datapath/promote.ts).
  const waiting = st.entries.some((e) => (e.ep.flags & EP_F_PENDING) !== 0);
  if (!isShaped(c.conf) && !waiting && !st.linkPinned && !st.legacyFilter) fail(`no tc program is attached to ${name}`);
}

export function gc(c: Call): void {
  const valid = c.conf['cni.dev/valid-attachments'] ?? c.conf['cni.dev/attachments'];
  if (valid === undefined) {
    // cnitool sends no list at all: "unknown" must not be read as "nothing is valid".
    log.info('GC without cni.dev/valid-attachments: nothing is known to be stale, nothing removed');
    return;
  }
  const errors: string[] = [];
  try {
    const released = ipamGc(c, valid);
    if (released.length > 0) log.info('GC released addresses', { released });
  } catch (e) {
    errors.push(`ipam: ${(e as Error).message}`);
  }
  const keep = new Set(valid.map((a) => hostVethName(c.conf.hostVethPrefix, a.containerID, a.ifname)));
  try {
    locked(c, () => {
      if (c.conf.datapath !== 'routed') {
        promoteOthers(c);
        const removed = ebpfGc(ebpfNet(c.conf), keep, listHostLinkNames());
        if (removed.length > 0) log.info('GC removed eBPF state', { removed });
      }
      if (valid.length === 0 && networkIdle(c)) removeNetworkState(c.conf, true);
    });
  } catch (e) {
    errors.push(`ebpf: ${(e as Error).message}`);
  }
  for (const link of hostLinksWithAlias(aliasPrefix(c.conf.name))) {
    if (keep.has(link.name)) continue;
    try {
      removeEndpoint(c.conf, link.name);
      detachPod(link.name);
      log.info('GC removed veth', { host: link.name, alias: link.alias });
    } catch (e) {
      errors.push(`veth ${link.name}: ${(e as Error).message}`);
    }
  }
  if (errors.length > 0) throw new CniError(Code.TryAgainLater, `GC incomplete: ${errors.join('; ')}`);
}

export function status(c: Call): void {
  const blocked = policyBlocker(c.conf, true) ?? guardBlocker(c.conf);
  if (blocked) throw new CniError(Code.NotAvailable, blocked);
  if (c.conf.ipam?.type === 'host-local') {
    const dir = `${c.conf.ipam.dataDir}`;
    try {
      accessSync(dir, constants.W_OK);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new CniError(Code.NotAvailable, `IPAM data directory ${dir} is not writable: ${(e as Error).message}`);
    }
  }
  const usage = ipamStatus(c);
  log.debug('status', { pool: usage?.map((u) => ({ rangeSet: u.rangeSet, used: u.used, size: String(u.size) })) });
  const full = usage?.find((u) => BigInt(u.used) >= u.size);
  if (full) throw new CniError(Code.NotAvailable, `IP pool exhausted: range set ${full.rangeSet} (${full.ranges.join(', ')}) has ${full.used} of ${full.size} addresses in use`);
}

