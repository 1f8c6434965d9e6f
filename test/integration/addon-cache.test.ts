// The FFI addon's extraction cache for runs that are not root ($TMPDIR/twill-<uid>): another
// local user must not be able to plant code there that runs as whoever runs twill. The Node
// build carries the koffi addon; the Bun build carries none (bun:ffi) and extracts nothing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { removeDir, runtimeOf, tempDir, TWILL } from '../helpers/twill.js';

const NOBODY = 65534;
const asNobody = (tmp: string) => spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', 'env', `TMPDIR=${tmp}`, TWILL, 'endpoints', '--bpffs-root', `${tmp}/none`], { encoding: 'utf8', timeout: 20_000 });

const bun = runtimeOf().startsWith('bun ');

describe('the Bun build runs unprivileged without extracting anything', { skip: !bun && 'the executable under test carries an addon' }, () => {
  const tmp = tempDir('addon');
  chmodSync(tmp, 0o1777);
  after(() => removeDir(tmp));

  it('writes no cache', () => {
    const r = asNobody(tmp);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(existsSync(`${tmp}/twill-${NOBODY}`), false);
  });
});

describe('the addon cache of unprivileged runs', { skip: bun && 'the executable under test uses bun:ffi: no addon' }, () => {
  const tmp = tempDir('addon');
  chmodSync(tmp, 0o1777);
  const cache = `${tmp}/twill-${NOBODY}`;
  after(() => removeDir(tmp));

  it('is created private and used', () => {
    const r = asNobody(tmp);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readdirSync(cache).filter((f) => f.endsWith('.node')).length, 1);
  });

  it('a cached addon that was tampered with is checked again, replaced and not run', () => {
    const f = `${cache}/${readdirSync(cache).find((x) => x.endsWith('.node'))}`;
    const good = readFileSync(f);
    writeFileSync(f, 'not the addon');
    chownSync(f, NOBODY, NOBODY);
    const r = asNobody(tmp);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(readFileSync(f).equals(good));
  });

  it('an extraction cut short (a full disk: here a file-size limit) leaves no addon under its name, and the next run extracts it whole', () => {
    removeDir(cache);
    // SIGXFSZ ignored (inherited across exec): write(2) writes up to the limit, then EFBIG.
    const cut = spawnSync('sh', ['-c', 'trap "" XFSZ; exec prlimit --fsize=65536 setpriv --reuid=$0 --regid=$0 --clear-groups env TMPDIR=$1 "$2" endpoints --bpffs-root "$1/none"', String(NOBODY), tmp, TWILL], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(cut.status, 1, `a clean failure, not a crash (signal ${cut.signal}): ${cut.stderr}`);
    assert.match(cut.stderr, /EFBIG/);
    assert.deepEqual(readdirSync(cache), [], 'neither a truncated addon nor its temp');
    const r = asNobody(tmp);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readdirSync(cache).filter((f) => f.endsWith('.node')).length, 1);
  });

  it('a directory planted by another user, or writable by others, is refused', () => {
    removeDir(cache);
    mkdirSync(cache, { mode: 0o777 });
    chmodSync(cache, 0o777); // root's, open to all: as another local user would leave it
    writeFileSync(`${cache}/planted`, 'x');
    const r = asNobody(tmp);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /refusing the addon cache/);
    chownSync(cache, NOBODY, NOBODY); // ours now, but still group/other-writable
    assert.match(asNobody(tmp).stderr, /refusing the addon cache/);
    assert.deepEqual(readdirSync(cache), ['planted'], 'nothing was extracted into it');
  });
});
