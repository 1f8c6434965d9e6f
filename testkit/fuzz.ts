// Property-based hostile input for the executable: arbitrary environments, configs,
// CNI_ARGS and prevResults. Every run must end with exactly one valid CNI JSON document on
// stdout, no stack trace, in bounded time, and — when the input is rejected — a host left
// exactly as it was. Paths a config may name are confined to a sandbox directory.
import fc from 'fast-check';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { TOMBSTONE_PREFIX } from '../lib/sys/podlink.js';
import { hostLinksSettled, hostSnapshot, makeNetns, netnsPath, TWILL } from './twill.js';

export interface FuzzCase {
  env: Record<string, string>;
  stdin: string;
}

const weird = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom('', '.', '..', '../../etc', 'a/b', 'eth0\n', 'x'.repeat(300), '-rf', 'eth 0', 'é', '\u0000x', '%s%n'),
);

export function caseArb(sandbox: string, ns: string, notNs: string): fc.Arbitrary<FuzzCase> {
  const name = fc.oneof(fc.constantFrom('fuzznet', 'fuzz.net-1'), weird);
  const path = fc.oneof(fc.constant(`${sandbox}/data`), weird.map((s) => `${sandbox}/${s}`), weird);
  const ip = fc.oneof(fc.ipV4(), fc.ipV6(), weird);
  const cidr = fc.oneof(fc.constantFrom('10.251.0.0/24', 'fd00:251::/120', '10.251.1.0/31', '0.0.0.0/0'), fc.tuple(ip, fc.integer({ min: -1, max: 200 })).map(([a, p]) => `${a}/${p}`), weird);
  const range = fc.record({ subnet: cidr, rangeStart: ip, rangeEnd: ip, gateway: ip }, { requiredKeys: ['subnet'] });
  const ipam = fc.record(
    {
      type: fc.oneof(fc.constant('host-local'), weird),
      ranges: fc.oneof(fc.constant([[{ subnet: '10.251.0.0/24' }]]), fc.array(fc.array(range, { maxLength: 3 }), { maxLength: 3 }), fc.anything()),
      routes: fc.array(fc.record({ dst: cidr, gw: ip }, { requiredKeys: ['dst'] }), { maxLength: 3 }),
      dataDir: path,
      resolvConf: path,
    },
    { requiredKeys: ['type'] },
  );
  const conf = fc.record(
    {
      cniVersion: fc.oneof(fc.constantFrom('0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0', '0.2.0', '2.0.0', ''), weird),
      name,
      type: fc.constant('twill'),
      mtu: fc.oneof(fc.integer({ min: -10, max: 70000 }), fc.anything()),
      datapath: fc.constantFrom('routed', 'ebpf', 'auto'),
      bpffsRoot: fc.oneof(fc.constant(`${sandbox}/bpffs`), path),
      hostVethPrefix: fc.oneof(fc.constant('twz'), weird),
      logFile: path,
      logLevel: fc.oneof(fc.constantFrom('debug', 'info'), weird),
      stateDir: fc.oneof(fc.constant(`${sandbox}/state`), path),
      ipam,
      prevResult: fc.oneof(fc.anything(), fc.record({ interfaces: fc.anything(), ips: fc.anything(), routes: fc.anything() })),
      runtimeConfig: fc.oneof(fc.record({ ips: fc.array(weird, { maxLength: 2 }) }), fc.anything()),
      'cni.dev/valid-attachments': fc.anything(),
    },
    { requiredKeys: ['cniVersion', 'name', 'type', 'datapath'] },
  );
  const stdin = fc.oneof(
    { weight: 8, arbitrary: conf.map((c) => JSON.stringify({ ...c, ipam: { dataDir: `${sandbox}/data`, ...(c.ipam as object) }, stateDir: c.stateDir ?? `${sandbox}/state`, bpffsRoot: c.bpffsRoot ?? `${sandbox}/bpffs` })) },
    { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
    { weight: 1, arbitrary: fc.json({ maxDepth: 4 }) },
  );
  const env = fc.record(
    {
      CNI_COMMAND: fc.oneof(fc.constantFrom('ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'), weird),
      CNI_CONTAINERID: fc.oneof(fc.constantFrom('fuzz-ctr'), weird),
      CNI_NETNS: fc.oneof(fc.constantFrom(netnsPath(ns), notNs, '/nonexistent/netns', 'relative/ns', '/proc/self/ns/net'), weird),
      CNI_IFNAME: fc.oneof(fc.constantFrom('eth0', 'net1'), weird),
      CNI_ARGS: fc.oneof(fc.constantFrom('IgnoreUnknown=1', 'IP=10.251.0.9', 'K8S_POD_NAME=a;K8S_POD_NAMESPACE=b'), weird),
      CNI_PATH: fc.constantFrom('/usr/lib/cni', ''),
    },
    { requiredKeys: ['CNI_COMMAND'] },
  );
  // execve(2) cannot pass a NUL inside a variable: strip it (NUL in stdin stays).
  return fc.record({ env: env.map((e) => Object.fromEntries(Object.entries(e).map(([k, v]) => [k, v.replaceAll('\0', '')]))), stdin });
}

export interface Outcome {
  ok: boolean;
  why?: string;
}

/** Runs one case and checks every property; cleans up what an accepted ADD created. */
export function checkCase(c: FuzzCase, sandbox: string): Outcome {
  // An earlier case's DEL left its veth to a detached `ip link del` (a tombstone that goes
  // ~25 ms later): that must not count as this case changing the host.
  hostLinksSettled(TOMBSTONE_PREFIX);
  const before = hostSnapshot(['/var/lib/cni', sandbox]);
  const r = spawnSync(TWILL, [], { input: c.stdin, env: { PATH: process.env.PATH, ...c.env }, encoding: 'utf8', timeout: 15_000, maxBuffer: 64 << 20 });
  if (r.status === null) return { ok: false, why: `no exit within 15 s (signal ${r.signal})` };
  if (/\n\s+at .+[:(]/.test(r.stdout + r.stderr)) return { ok: false, why: `stack trace: ${(r.stdout + r.stderr).slice(0, 300)}` };
  const docs = r.stdout.split('\n').filter((l) => l.trim() !== '');
  const verb = c.env.CNI_COMMAND;
  const silent = r.status === 0 && ['DEL', 'CHECK', 'GC', 'STATUS'].includes(verb ?? '');
  if (silent ? docs.length !== 0 : docs.length !== 1) return { ok: false, why: `${docs.length} documents on stdout: ${r.stdout.slice(0, 200)}` };
  let doc: Record<string, unknown> = {};
  try {
    if (docs[0]) doc = JSON.parse(docs[0]) as Record<string, unknown>;
  } catch {
    return { ok: false, why: `stdout is not JSON: ${r.stdout.slice(0, 200)}` };
  }
  if (r.status !== 0) {
    if (typeof doc.code !== 'number' || typeof doc.msg !== 'string' || typeof doc.cniVersion !== 'string') return { ok: false, why: `bad error document ${docs[0]}` };
    const after = hostSnapshot(['/var/lib/cni', sandbox]);
    if (after !== before) return { ok: false, why: `rejected input (code ${doc.code}: ${doc.msg}) changed the host` };
    return { ok: true };
  }
  if (verb === 'ADD') {
    if (!Array.isArray(doc.interfaces) || !Array.isArray(doc.ips)) return { ok: false, why: `ADD result without interfaces/ips: ${docs[0]}` };
    spawnSync(TWILL, [], { input: c.stdin, env: { PATH: process.env.PATH, ...c.env, CNI_COMMAND: 'DEL' }, encoding: 'utf8', timeout: 15_000 });
  }
  return { ok: true };
}

export function fuzzFixtures(sandbox: string): { ns: string; notNs: string } {
  const notNs = `${sandbox}/regular-file`;
  writeFileSync(notNs, '');
  // The eBPF cases pin under a bpffs of the sandbox's own, mounted once up front (the mount
  // is not part of what a rejected call may not change).
  mkdirSync(`${sandbox}/bpffs/twill`, { recursive: true });
  spawnSync('mount', ['-t', 'bpf', 'bpffs', `${sandbox}/bpffs`]);
  mkdirSync(`${sandbox}/bpffs/twill`, { recursive: true });
  return { ns: makeNetns(), notNs };
}

/** Inputs no generator is likely to hit: 10 MB of stdin, very deep nesting. */
export function edgeCases(sandbox: string, ns: string): FuzzCase[] {
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'edge', CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0' };
  const base = { cniVersion: '1.0.0', name: 'fuzznet', type: 'twill', stateDir: `${sandbox}/state`, ipam: { type: 'host-local', dataDir: `${sandbox}/data`, ranges: [[{ subnet: '10.251.0.0/24' }]] } };
  return [
    { env, stdin: JSON.stringify({ ...base, pad: 'x'.repeat(10 << 20) }) },
    { env, stdin: `${'['.repeat(100_000)}${']'.repeat(100_000)}` },
    { env, stdin: `${JSON.stringify(base).slice(0, -1)},"prevResult":${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}}` },
    { env: { ...env, CNI_COMMAND: 'VERSION' }, stdin: 'x'.repeat(11 << 20) },
    { env, stdin: JSON.stringify({ ...base, name: 'n\u202eet' }) },
    { env, stdin: JSON.stringify({ ...base, name: 'a\u0000b' }) },
  ];
}
