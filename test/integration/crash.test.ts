// SIGKILL at every step of ADD and DEL: the runtime's usual retries (DEL; or ADD again, then
// DEL) and GC must leave nothing behind. Also a reboot: state on disk, namespaces gone.
import assert from 'node:assert/strict';
import { readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { ADD_STEPS, DEL_STEPS } from '../../lib/crash.js';
import { testNet } from '../helpers/netconf.js';
import { endpointsJson, tempBpffs } from '../helpers/traffic.js';
import { CNI_BIN_DIR, cleanupNetns, deleteNetns, pingOk, hostLinksSettled, inNs, makeNetns, netnsPath, removeDir, runPlugin, sh, TWILL, twill, type Env } from '../helpers/twill.js';

after(cleanupNetns);

const envFor = (verb: string, id: string, ns: string): Env => ({ CNI_COMMAND: verb, CNI_CONTAINERID: id, CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0' });
const files = (dir: string): string[] => {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
};

function leftovers(net: ReturnType<typeof testNet>, root: string): Record<string, unknown> {
  return {
    reservations: files(`${net.dataDir}/${net.name}`).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip')),
    index: files(`${net.stateDir}/ipam/${net.name}`).filter((f) => f !== 'boot_id'),
    veths: hostLinksSettled('twt'),
    endpoints: endpointsJson(root).filter((e) => e.network === net.name).map((e) => e.addr),
    links: files(`${root}/twill/${net.name}/links`),
  };
}
const clean = { reservations: [], index: [], veths: [], endpoints: [], links: [] };

describe('crash safety: SIGKILL at every step', () => {
  const net = testNet({ stack: 'dual' });
  const bpffs = tempBpffs();
  const conf = net.conf({ datapath: 'ebpf', bpffsRoot: bpffs.root, ebpfAttach: 'tcx' });
  const crash = (step: string, env: Env, c: object = conf) => runPlugin(TWILL, { ...env, TWILL_CRASH_AT: step } as Env, c);
  after(() => {
    bpffs.release();
    removeDir(net.dataDir);
    removeDir(net.stateDir);
  });

  for (const step of ADD_STEPS) {
    it(`ADD killed at ${step}: DEL recovers; ADD again then DEL recovers`, () => {
      const ns = makeNetns();
      const id = `crash-${step.replace(':', '-')}`;
      const r = crash(step, envFor('ADD', id, ns));
      assert.equal(r.code, -1, `killed (${r.stdout})`);
      assert.equal(twill(envFor('DEL', id, ns), conf).code, 0);
      assert.deepEqual(leftovers(net, bpffs.root), clean);
      // The other retry: ADD again (after another crash), then DEL.
      crash(step, envFor('ADD', id, ns));
      const again = twill(envFor('ADD', id, ns), conf);
      if (ADD_STEPS.indexOf(step) < ADD_STEPS.indexOf('add:indexed')) {
        // Nothing was recorded for the attachment yet: the retried ADD makes a whole pod.
        assert.equal(again.code, 0, `the retried ADD succeeds: ${again.stdout}`);
        assert.equal(twill(envFor('CHECK', id, ns), { ...conf, prevResult: again.json }).code, 0, 'and its pod is whole');
        assert.ok(pingOk(ns, again.json.ips[0].gateway));
      } else {
        // As the reference host-local: a second ADD without a DEL is refused, changing nothing.
        assert.equal(again.json.code, 7, again.stdout);
        assert.match(again.json.msg, /duplicate allocation is not allowed/);
      }
      assert.equal(twill(envFor('DEL', id, ns), conf).code, 0);
      assert.deepEqual(leftovers(net, bpffs.root), clean);
      deleteNetns(ns);
    });
  }

  for (const step of DEL_STEPS) {
    it(`DEL killed at ${step}: the retried DEL completes`, () => {
      const ns = makeNetns();
      const id = `crashdel-${step.replace(':', '-')}`;
      assert.equal(twill(envFor('ADD', id, ns), conf).code, 0);
      assert.equal(crash(step, envFor('DEL', id, ns)).code, -1);
      assert.equal(twill(envFor('DEL', id, ns), conf).code, 0);
      assert.deepEqual(leftovers(net, bpffs.root), clean);
    });
  }

  it('GC finds the veth of an ADD killed right after creating it, its namespace still alive', () => {
    const ns = makeNetns();
    assert.equal(crash('add:veth', envFor('ADD', 'gc-live-ns', ns)).code, -1);
    assert.equal(twill({ CNI_COMMAND: 'GC' }, { ...conf, 'cni.dev/valid-attachments': [] }).code, 0);
    assert.deepEqual(leftovers(net, bpffs.root), clean);
    assert.doesNotMatch(inNs(ns, ['ip', '-br', 'link']), /eth0/);
  });

  it('GC after crashes with no retry at all removes every stale thing', () => {
    const pods = ADD_STEPS.map(() => makeNetns());
    ADD_STEPS.forEach((step, i) => crash(step, envFor('ADD', `gcrash-${i}`, pods[i]!)));
    // A runtime that lost track: the namespaces go, nobody calls DEL; GC with an empty valid list.
    pods.forEach(deleteNetns);
    const gc = twill({ CNI_COMMAND: 'GC' }, { ...conf, 'cni.dev/valid-attachments': [] });
    assert.equal(gc.code, 0, gc.stdout);
    assert.deepEqual(leftovers(net, bpffs.root), clean);
    assert.deepEqual(files(`${net.dataDir}/${net.name}`).filter((f) => f.startsWith('.twill-tmp')), []);
  });
});

describe('reboot: /var/lib kept, namespaces and /run gone', () => {
  const net = testNet({ stack: 'v4' });
  const bpffs = tempBpffs();
  const conf = net.conf({ datapath: 'ebpf', bpffsRoot: bpffs.root });
  after(() => {
    bpffs.release();
    removeDir(net.dataDir);
    removeDir(net.stateDir);
  });

  it('the first ADD of a new boot releases the earlier boot\'s reservations, not this boot\'s; pins are recreated lazily', () => {
    const pods = [makeNetns(), makeNetns(), makeNetns()];
    pods.forEach((p, i) => assert.equal(twill(envFor('ADD', `old-${i}`, p), conf).code, 0));
    // "Reboot": every namespace and veth disappears, bpffs is empty, the stores stay, and
    // what was written then predates the boot.
    pods.forEach(deleteNetns);
    hostLinksSettled('twt');
    sh('umount', [bpffs.root]);
    writeFileSync(`${net.stateDir}/ipam/${net.name}/boot_id`, 'an-earlier-boot\n');
    const store = `${net.dataDir}/${net.name}`;
    const earlier = new Date('2001-01-01T00:00:00Z');
    for (const f of files(store).filter((f) => /^\d/.test(f))) utimesSync(`${store}/${f}`, earlier, earlier);
    assert.equal(files(store).filter((f) => /^\d/.test(f)).length, 3);
    // In the new boot the reference host-local reserves first (a pod of another runtime).
    const hl = runPlugin(`${CNI_BIN_DIR}/host-local`, { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'host-local-pod', CNI_NETNS: '/dev/null', CNI_IFNAME: 'eth0', CNI_PATH: CNI_BIN_DIR }, { cniVersion: '1.0.0', name: net.name, ipam: conf.ipam });
    assert.equal(hl.code, 0, hl.stdout + hl.stderr);
    const hlAddr = hl.json.ips[0].address.split('/')[0];
    const ns = makeNetns();
    const r = twill(envFor('ADD', 'new-0', ns), conf);
    assert.equal(r.code, 0, r.stdout);
    const held = files(store).filter((f) => /^\d/.test(f)).sort();
    assert.deepEqual(held, [r.json.ips[0].address.split('/')[0], hlAddr].sort(), 'host-local\'s reservation of this boot stays');
    assert.equal(endpointsJson(bpffs.root).length, 1);
    assert.equal(twill(envFor('DEL', 'new-0', ns), conf).code, 0);
  });
});

describe('file modes', () => {
  const net = testNet({ stack: 'v4' });
  const bpffs = tempBpffs();
  const logFile = `${net.stateDir}/twill.log`;
  const conf = net.conf({ datapath: 'ebpf', bpffsRoot: bpffs.root, ebpfAttach: 'tcx', logFile });
  after(() => {
    bpffs.release();
    removeDir(net.dataDir);
    removeDir(net.stateDir);
  });

  it('state is 0700/0600; pins are root-only', () => {
    const ns = makeNetns();
    const r = twill(envFor('ADD', 'modes', ns), conf);
    assert.equal(r.code, 0, r.stdout);
    const mode = (p: string): string => (statSync(p).mode & 0o777).toString(8);
    const store = `${net.dataDir}/${net.name}`;
    assert.equal(mode(store), '700');
    for (const f of readdirSync(store)) assert.equal(mode(`${store}/${f}`), '600', f);
    assert.equal(mode(`${net.stateDir}/ipam/${net.name}`), '700');
    for (const f of readdirSync(`${net.stateDir}/ipam/${net.name}`)) assert.equal(mode(`${net.stateDir}/ipam/${net.name}/${f}`), '600', f);
    assert.equal(mode(logFile), '600');
    const pins = `${bpffs.root}/twill/${net.name}`;
    assert.equal(mode(pins), '700');
    for (const f of readdirSync(pins)) assert.match(mode(`${pins}/${f}`), /^[67]00$/, f);
    for (const f of readdirSync(`${pins}/links`)) assert.equal(mode(`${pins}/links/${f}`), '600', f);
    assert.equal(twill(envFor('DEL', 'modes', ns), conf).code, 0);
  });
});
