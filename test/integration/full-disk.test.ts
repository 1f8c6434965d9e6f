// A full disk under the IPAM store or the state directory: an ADD either completes or fails with a
// CNI error (code 5, I/O failure), non-zero exit, and leaves nothing — no veth, no reservation,
// no index entry, no temp file, nothing in the pod's namespace. Real tmpfs mounts filled to the
// page, one free page more on each try, so every write of the ADD in turn is the one that fails.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { testNet } from '../helpers/netconf.js';
import { cleanupNetns, hostLinksSettled, inNs, makeNetns, netnsPath, removeDir, sh, tempDir, twill, type Env } from '../helpers/twill.js';

after(cleanupNetns);

const PAGE = 4096;
const PREFIX = 'twfd';
const envFor = (verb: string, id: string, ns: string): Env => ({ CNI_COMMAND: verb, CNI_CONTAINERID: id, CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0' });

/** A tmpfs of `pages` pages at a new temp dir; unmounted and removed after the suite. */
function smallTmpfs(tag: string, pages: number): string {
  const dir = tempDir(tag);
  sh('mount', ['-t', 'tmpfs', '-o', `size=${pages * PAGE},mode=0700`, `twill-${tag}`, dir]);
  after(() => {
    spawnSync('umount', [dir]);
    removeDir(dir);
  });
  return dir;
}

/** Fills the tmpfs to the last page, then gives back `free` pages. */
function fill(dir: string, free: number): void {
  const path = `${dir}/filler`;
  rmSync(path, { force: true });
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(PAGE);
  let size = 0;
  try {
    for (;;) size += writeSync(fd, chunk);
  } catch (e) {
    assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
  }
  ftruncateSync(fd, Math.max(0, size - free * PAGE));
  closeSync(fd);
}

/** Every file under dir but the filler, as paths relative to it. */
const filesUnder = (dir: string): string[] =>
  sh('find', [dir, '-type', 'f', '-not', '-name', 'filler'], { allowFail: true }).split('\n').filter(Boolean).map((f) => f.slice(dir.length + 1)).sort();

describe('ADD on a full disk', () => {
  // 'both': the store and the index on one disk, as /var/lib holds both (the reservation's pages
  // can leave none for the index written after it).
  for (const where of ['dataDir', 'stateDir', 'both'] as const) {
    it(`IPAM ${where} on a full tmpfs: each ADD completes whole or fails cleanly with code 5`, () => {
      const disk = smallTmpfs(`fd-${where}`, 64);
      const net = testNet({ stack: 'v4', prefix: PREFIX });
      after(() => {
        removeDir(net.dataDir);
        removeDir(net.stateDir);
      });
      const ipam = where === 'stateDir' ? {} : { ipam: { ...net.conf().ipam, dataDir: `${disk}/ipam` } };
      const conf = net.conf({ ...ipam, ...(where === 'dataDir' ? {} : { stateDir: `${disk}/state` }) });
      const store = where === 'stateDir' ? `${net.dataDir}/${net.name}` : `${disk}/ipam/${net.name}`;
      const ns = makeNetns();
      let failed = 0;
      let succeeded = false;
      for (let free = 0; free <= 16 && !succeeded; free++) {
        const before = filesUnder(disk);
        fill(disk, free);
        const id = `fulldisk-${where}-${free}`;
        const r = twill(envFor('ADD', id, ns), conf);
        if (r.code === 0) {
          succeeded = true;
          assert.equal(twill(envFor('DEL', id, ns), conf).code, 0, 'the ADD that fit is undone by DEL');
          continue;
        }
        failed++;
        assert.equal(r.json.code, 5, `${free} free pages: an I/O failure, not a crash: ${r.stdout}`);
        assert.match(r.json.msg, /ENOSPC|no space/, r.stdout);
        assert.deepEqual(hostLinksSettled(PREFIX), [], `${free} free pages: no host veth left`);
        assert.doesNotMatch(inNs(ns, ['ip', '-o', 'link', 'show']), /eth0/, `${free} free pages: nothing in the pod's namespace`);
        const reserved = (() => {
          try {
            return readdirSync(store).filter((f) => /^\d/.test(f));
          } catch {
            return [];
          }
        })();
        assert.deepEqual(reserved, [], `${free} free pages: no reservation left`);
        const after = filesUnder(disk);
        assert.deepEqual(after.filter((f) => f.includes('.twill-tmp-')), [], `${free} free pages: no temp file left`);
        assert.deepEqual(after.filter((f) => f.includes(id)), [], `${free} free pages: no index entry left`);
        // A failed ADD may leave the network's own files (the store's lock, the index's boot mark, the
        // round-robin hint of where to look next), never a pod's.
        assert.deepEqual(after.filter((f) => !before.includes(f) && !/\/(lock|boot_id|last_reserved_ip\.\d+)$/.test(f)), [], `${free} free pages: nothing new on the disk`);
      }
      process.stdout.write(`# ${where}: ${failed} ADDs failed cleanly before one fit\n`);
      assert.ok(failed > 0, 'the full disk failed at least one ADD');
      assert.ok(succeeded, 'with room enough the ADD completes');
    });
  }
});
