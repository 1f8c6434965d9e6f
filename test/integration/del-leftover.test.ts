// Whatever an interrupted ADD or DEL left, the runtime's next complete DEL leaves no CNI_IFNAME
// in CNI_NETNS (as the reference ptp and bridge plugins), and the next ADD in that namespace
// succeeds: podman and cnitool reuse a namespace. Only what twill made for this attachment is
// removed: a veth whose host end carries its alias (its own name, or a tombstone's).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ADD_STEPS } from '../../lib/crash.js';
import { hostVethAlias, hostVethName } from '../../lib/naming.js';
import { testNet } from '../helpers/netconf.js';
import { endpointsJson, tempBpffs } from '../helpers/traffic.js';
import { cleanupNetns, deleteNetns, inNs, makeNetns, netnsPath, pingOk, removeDir, runPlugin, sh, TWILL, twill, type Env } from '../helpers/twill.js';

after(cleanupNetns);

const envFor = (verb: string, id: string, ns: string): Env => ({ CNI_COMMAND: verb, CNI_CONTAINERID: id, CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0' });
const podLinks = (ns: string): string => inNs(ns, ['ip', '-br', 'link']);
const PREFIX = 'twdl';

describe('DEL leaves no CNI_IFNAME behind, whatever an interrupted call left', () => {
  const net = testNet({ stack: 'dual', prefix: PREFIX });
  const bpffs = tempBpffs();
  const conf = net.conf({ datapath: 'ebpf', bpffsRoot: bpffs.root, ebpfAttach: 'tcx' });
  const crash = (step: string, env: Env) => runPlugin(TWILL, { ...env, TWILL_CRASH_AT: step } as Env, conf);
  after(() => {
    bpffs.release();
    removeDir(net.dataDir);
    removeDir(net.stateDir);
  });

  /** DEL succeeds, the namespace keeps no eth0, and an ADD in it at once makes a whole, working pod. */
  const recovers = (id: string, ns: string, leftBehind = false, withDel = true): void => {
    if (withDel) {
      const del = twill(envFor('DEL', id, ns), conf);
      assert.equal(del.code, 0, del.stdout);
      assert.doesNotMatch(podLinks(ns), /^eth0/m, 'DEL leaves no eth0 in the namespace');
    }
    // A pair no deletion is under way for is deleted now (a normal DEL's pod end may still wait for its reaper).
    if (leftBehind && withDel) assert.doesNotMatch(podLinks(ns), /^twdel/m, 'nor the pair the interrupted call left');
    const add = twill(envFor('ADD', id, ns), conf);
    assert.equal(add.code, 0, `the next ADD in the namespace: ${add.stdout}`);
    assert.equal(twill(envFor('CHECK', id, ns), { ...conf, prevResult: add.json }).code, 0);
    assert.ok(pingOk(ns, add.json.ips[0].gateway));
    assert.equal(twill(envFor('DEL', id, ns), conf).code, 0);
    assert.doesNotMatch(podLinks(ns), /^eth0/m);
    assert.deepEqual(endpointsJson(bpffs.root).filter((e) => e.network === net.name), []);
    deleteNetns(ns);
  };

  for (const step of ADD_STEPS) {
    it(`ADD killed at ${step}: DEL, then ADD in the same namespace`, () => {
      const ns = makeNetns();
      const id = `left-${step.replace(':', '-')}`;
      assert.equal(crash(step, envFor('ADD', id, ns)).code, -1);
      recovers(id, ns);
    });
  }

  it('DEL killed once the host end is a tombstone (renamed, not yet deleted): DEL, then ADD', () => {
    const ns = makeNetns();
    const id = 'left-tombstone';
    assert.equal(twill(envFor('ADD', id, ns), conf).code, 0);
    assert.equal(crash('del:renamed', envFor('DEL', id, ns)).code, -1);
    assert.match(podLinks(ns), /^(eth0|twdel)/m, 'the killed DEL left the pair');
    recovers(id, ns, true);
  });

  it('a tombstone pair with eth0 (a DEL killed after renaming the host end only), and no DEL after: the next ADD reclaims eth0', () => {
    const ns = makeNetns();
    const id = 'left-tomb-readd';
    const tomb = `twdel8${process.pid % 100000}`;
    sh('ip', ['link', 'add', tomb, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    sh('ip', ['link', 'set', tomb, 'alias', hostVethAlias(net.name, id, 'eth0')]);
    recovers(id, ns, true, false);
  });

  it('a pair made by hand as twill names it (host end, pod end eth0): DEL, then ADD', () => {
    const ns = makeNetns();
    const id = 'left-byhand';
    const host = hostVethName(PREFIX, id, 'eth0');
    sh('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    sh('ip', ['link', 'set', host, 'alias', hostVethAlias(net.name, id, 'eth0')]);
    recovers(id, ns);
  });

  it('a tombstone pair made by hand (host end renamed, down, pod end eth0): DEL, then ADD', () => {
    const ns = makeNetns();
    const id = 'left-tomb-byhand';
    const tomb = `twdel9${process.pid % 100000}`;
    sh('ip', ['link', 'add', tomb, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    sh('ip', ['link', 'set', tomb, 'alias', hostVethAlias(net.name, id, 'eth0')]);
    recovers(id, ns, true);
    assert.equal(sh('ip', ['-br', 'link', 'show', 'dev', tomb], { allowFail: true }), '', 'the tombstone went with its pod end');
  });

  it('an eth0 twill did not make is not twill\'s to delete: a bridge, and a veth of another attachment', () => {
    const ns = makeNetns();
    const other = `twdlx${process.pid % 100000}`;
    try {
      inNs(ns, ['ip', 'link', 'add', 'eth0', 'type', 'bridge']);
      assert.equal(twill(envFor('DEL', 'foreign-bridge', ns), conf).code, 0);
      assert.match(podLinks(ns), /^eth0/m, 'the bridge stays');
      inNs(ns, ['ip', 'link', 'del', 'eth0']);
      sh('ip', ['link', 'add', other, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      sh('ip', ['link', 'set', other, 'alias', hostVethAlias(net.name, 'someone-else', 'eth0')]);
      assert.equal(twill(envFor('DEL', 'foreign-veth', ns), conf).code, 0);
      assert.match(podLinks(ns), /^eth0/m, 'another attachment\'s veth stays');
      // And an ADD there still refuses, as the spec wants of an interface that is not its own.
      const add = twill(envFor('ADD', 'foreign-veth', ns), conf);
      assert.notEqual(add.code, 0);
      assert.match(add.json.msg, /eth0 already exists/);
    } finally {
      sh('ip', ['link', 'del', other], { allowFail: true });
      deleteNetns(ns);
    }
  });
});
