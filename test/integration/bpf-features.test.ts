// What the loader links, run in the kernel: a bpf-to-bpf call returns its value, a .rodata
// constant is read, a tail call happens, and a cgroup connect4 program attached to a cgroup
// this test makes sees (and refuses) a connect from inside it only — then is detached.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { loadObject, type LoadedObject } from '../../lib/bpf/loader.js';
import { attachCgroup, cgroup2Mount, cgroupLinkPin, detachCgroup } from '../../lib/bpf/attach/cgroup.js';
import { closeFd, mapLookup, mapUpdate, objGet, objInfo, progTestRun } from '../../lib/bpf/sys.js';
import { compileBpf, featuresSpec, hasClang } from '../helpers/bpf-objects.js';
import { tempBpffs } from '../helpers/traffic.js';

const PACKET = Buffer.alloc(64); // BPF_PROG_TEST_RUN needs an Ethernet header's worth at least

/** The errno name a TCP connect to 127.0.0.1:port ends with, run in cgroup (or not). */
function connectFrom(cgroup: string | undefined, port: number): string {
  const py = `import socket,errno\ns=socket.socket()\ntry:\n s.connect(('127.0.0.1',${port}))\n print('OK')\nexcept OSError as e:\n print(errno.errorcode[e.errno])`;
  const script = cgroup ? `echo $$ > ${cgroup}/cgroup.procs && exec python3 -c "$0"` : 'exec python3 -c "$0"';
  return spawnSync('sh', ['-c', script, py], { encoding: 'utf8' }).stdout.trim();
}

describe('BPF features the loader links', { skip: !hasClang() && 'clang is not installed' }, () => {
  const bpffs = tempBpffs();
  let l: LoadedObject<'results' | 'jumps'>;
  before(() => {
    l = loadObject(featuresSpec(), compileBpf('test/bpf/features.c'), { root: bpffs.root, network: 'bpffeat', sizes: { endpoints: 1 } });
  });
  after(() => {
    l?.close();
    bpffs.release();
  });

  it('a program calls a global and a static subprogram (bpf-to-bpf) and adds a .data variable: 20+20+2', () => {
    assert.equal(progTestRun(l.programs.get('sub_call')!, PACKET).retval, 42);
  });

  it('a program reads a .rodata constant', () => {
    assert.equal(progTestRun(l.programs.get('rodata')!, PACKET).retval, 0x5eed);
  });

  it('a tail call through the prog array reaches its target (the manifest filled the slot)', () => {
    assert.equal(progTestRun(l.programs.get('tail_entry')!, PACKET).retval, 77);
  });

  it('an error names the map and the stage', () => {
    assert.throws(() => mapUpdate(l.maps.get('results')!, Buffer.from([9, 0, 0, 0]), Buffer.alloc(8)), /^Error: map results update: /);
  });

  it('pins the node-scoped map and program under twill-node/, the others under the network', () => {
    assert.ok(existsSync(`${bpffs.root}/twill-node/results`));
    assert.ok([...spawnSync('ls', [`${bpffs.root}/twill-node`], { encoding: 'utf8' }).stdout.split('\n')].some((f) => f.startsWith('connect4_')));
    assert.ok(existsSync(`${bpffs.root}/twill/bpffeat/jumps`));
    assert.equal(existsSync(`${bpffs.root}/twill/bpffeat/results`), false);
  });

  it('a connect4 program attached to a cgroup sees connects from inside it, refuses the .rodata port, and is gone once detached', (t) => {
    const mount = cgroup2Mount();
    if (!mount) {
      t.skip('no cgroup v2 mount');
      return;
    }
    const cg = `${mount}/twill-bpf-features-${process.pid}`;
    mkdirSync(cg);
    const pin = cgroupLinkPin(`${bpffs.root}/twill-node/links`, 'connect4', `bpffeat${process.pid}`);
    try {
      attachCgroup(l.programs.get('connect4')!, cg, 'connect4', pin);
      const count = (): bigint => {
        const v = Buffer.alloc(8);
        assert.ok(mapLookup(l.maps.get('results')!, Buffer.alloc(4), v));
        return v.readBigUInt64LE();
      };
      const before = count();
      assert.equal(connectFrom(cg, 9), 'EPERM', 'the program refuses deny_port from inside the cgroup');
      assert.equal(connectFrom(cg, 1), 'ECONNREFUSED', 'other ports pass the program');
      assert.equal(count() - before, 2n);
      assert.equal(connectFrom(undefined, 9), 'ECONNREFUSED', 'outside the cgroup the program does not run');
      assert.equal(count() - before, 2n);
      // A new version of the object: the pinned link follows the program loaded anew.
      const next = loadObject(featuresSpec(), { ...compileBpf('test/bpf/features.c'), sha256: 'f'.repeat(64) }, { root: bpffs.root, network: 'bpffeat', sizes: { endpoints: 1 } });
      try {
        const link = objGet(pin)!;
        const progId = objInfo(link).readUInt32LE(8); // bpf_link_info.prog_id
        closeFd(link);
        assert.equal(progId, objInfo(next.programs.get('connect4')!).readUInt32LE(4));
        assert.notEqual(progId, objInfo(l.programs.get('connect4')!).readUInt32LE(4));
      } finally {
        next.close();
      }
      assert.equal(connectFrom(cg, 9), 'EPERM', 'the new program refuses too');
      assert.equal(detachCgroup(pin), true);
      assert.equal(existsSync(pin), false);
      assert.equal(connectFrom(cg, 9), 'ECONNREFUSED', 'detached: nothing refuses');
    } finally {
      detachCgroup(pin);
      rmdirSync(cg);
    }
  });
});
