import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCniArgs } from '../../lib/cni/args.js';
import { readEnv } from '../../lib/cni/env.js';
import { CniError } from '../../lib/cni/errors.js';
import { formatResult, parseResult } from '../../lib/cni/result.js';

const env = (o: Record<string, string>): ReturnType<typeof readEnv> => readEnv(o);
const code = (fn: () => unknown): number => {
  try {
    fn();
  } catch (e) {
    return e instanceof CniError ? e.code : -1;
  }
  return 0;
};

describe('environment', () => {
  const ok = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0' };
  it('accepts a complete ADD', () => assert.equal(env(ok).ifName, 'eth0'));
  it('rejects missing or invalid variables with code 4', () => {
    assert.equal(code(() => env({ ...ok, CNI_COMMAND: 'FROB' })), 4);
    assert.equal(code(() => env({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0' })), 4);
    assert.equal(code(() => env({ ...ok, CNI_IFNAME: 'a'.repeat(16) })), 4);
    assert.equal(code(() => env({ ...ok, CNI_IFNAME: 'a/b' })), 4);
    assert.equal(code(() => env({ ...ok, CNI_IFNAME: '..' })), 4);
    assert.equal(code(() => env({ ...ok, CNI_IFNAME: 'eth 0' })), 4);
    assert.equal(code(() => env({ ...ok, CNI_CONTAINERID: '../etc' })), 4);
    assert.equal(code(() => env({ ...ok, CNI_NETNS: 'relative' })), 4);
  });
  it('lets DEL go without CNI_NETNS', () => assert.equal(env({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0' }).netns, ''));
});

describe('CNI_ARGS', () => {
  it('parses pairs and honours IgnoreUnknown', () => {
    assert.equal(parseCniArgs('IP=10.0.0.5;K8S_POD_NAME=p').get('IP'), '10.0.0.5');
    assert.equal(parseCniArgs('IgnoreUnknown=1;FOO=bar').get('FOO'), 'bar');
    assert.throws(() => parseCniArgs('FOO=bar'), CniError);
    assert.throws(() => parseCniArgs('novalue'), CniError);
  });
});

describe('results', () => {
  const r = parseResult({
    cniVersion: '0.3.1',
    interfaces: [{ name: 'h' }, { name: 'eth0', sandbox: '/x', mac: '02:00:00:00:00:01' }],
    ips: [{ version: '4', address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 1 }, { version: '6', address: 'fd00::2/64', interface: 1 }],
    routes: [{ dst: '0.0.0.0/0' }],
  });
  it('emits ips[].version only below 1.0.0', () => {
    for (const v of ['0.3.0', '0.3.1', '0.4.0']) {
      const out = formatResult(r, v) as { ips: { version?: string }[] };
      assert.deepEqual(out.ips.map((i) => i.version), ['4', '6'], v);
    }
    for (const v of ['1.0.0', '1.1.0']) {
      const out = formatResult(r, v) as { ips: { version?: string }[]; cniVersion: string };
      assert.ok(out.ips.every((i) => i.version === undefined), v);
      assert.equal(out.cniVersion, v);
    }
  });
  it('emits interface mtu only for 1.1.0', () => {
    const withMtu = { ...r, interfaces: [{ name: 'eth0', mtu: 1400 }] };
    assert.equal((formatResult(withMtu, '1.1.0') as { interfaces: { mtu?: number }[] }).interfaces[0]!.mtu, 1400);
    assert.equal((formatResult(withMtu, '1.0.0') as { interfaces: { mtu?: number }[] }).interfaces[0]!.mtu, undefined);
  });
  it('refuses malformed prevResults with code 6', () => {
    assert.equal(code(() => parseResult({ ips: 'x' })), 6);
    assert.equal(code(() => parseResult({ ip4: {} })), 6);
    assert.equal(code(() => parseResult({ interfaces: [{}] })), 6);
  });
});

describe('derived names', async () => {
  const { fnv1a64, hostVethName, aliasPrefix } = await import('../../lib/naming.js');
  it('uses 64-bit FNV-1a (published test vectors) and fits IFNAMSIZ', () => {
    assert.equal(fnv1a64(''), 0xcbf29ce484222325n);
    assert.equal(fnv1a64('a'), 0xaf63dc4c8601ec8cn);
    assert.equal(fnv1a64('foobar'), 0x85944171f73967e8n);
    const n = hostVethName('tw', 'c'.repeat(64), 'eth0');
    assert.match(n, /^tw[0-9a-f]{13}$/);
    assert.notEqual(hostVethName('tw', 'a', 'eth0'), hostVethName('tw', 'a', 'eth1'));
    assert.equal(hostVethName('tw', 'a', 'eth0'), hostVethName('tw', 'a', 'eth0'));
    assert.match(aliasPrefix('net'), /^twill:[0-9a-f]{12}:$/);
  });
});

describe('environment per verb', () => {
  it('VERSION, STATUS and GC ignore attachment variables (libcni sends CNI_NETNS=dummy with VERSION)', () => {
    for (const v of ['VERSION', 'STATUS', 'GC']) {
      assert.equal(readEnv({ CNI_COMMAND: v, CNI_NETNS: 'dummy', CNI_IFNAME: 'dummy', CNI_CONTAINERID: '../x', CNI_ARGS: 'junk' }).verb, v);
    }
  });
});
