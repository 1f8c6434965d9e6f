// lib/sys/fs-syscalls.ts (the Bun build's file-system calls) against node:fs itself: the same answers, and the same errors (code, errno,
// syscall, path, message), for every call twill makes.
import assert from 'node:assert/strict';
import * as node from 'node:fs';
import { tmpdir } from 'node:os';
import { after, describe, test } from 'node:test';
import * as fs from '../../lib/sys/fs-syscalls.js';

const root = node.mkdtempSync(`${tmpdir()}/twill-fs-`);
after(() => node.rmSync(root, { recursive: true, force: true }));

/** The error one throws, as the fields callers read. */
function failure(run: () => unknown): Record<string, unknown> {
  try {
    run();
  } catch (e) {
    const x = e as NodeJS.ErrnoException;
    return { code: x.code, errno: x.errno, syscall: x.syscall, path: x.path, message: x.message };
  }
  return assert.fail('expected a failure');
}

const sameFailure = (ours: () => unknown, theirs: () => unknown): void => assert.deepEqual(failure(ours), failure(theirs));

describe('file-system calls as system calls (lib/sys/fs-syscalls.ts)', () => {
  test('reads what node:fs reads: small, larger than one read, and /proc files that say size 0', () => {
    const big = Buffer.alloc(100_000).map((_, i) => (i * 7) & 0xff);
    node.writeFileSync(`${root}/big`, big);
    node.writeFileSync(`${root}/small`, 'héllo\n');
    node.writeFileSync(`${root}/empty`, '');
    assert.deepEqual(fs.readFileSync(`${root}/big`), big);
    assert.equal(fs.readFileSync(`${root}/small`, 'utf8'), 'héllo\n');
    assert.equal(fs.readFileSync(`${root}/empty`, 'utf8'), '');
    assert.ok(fs.statSync('/proc/self/mounts').size === 0 && fs.readFileSync('/proc/self/mounts', 'utf8').includes(' / '));
    assert.equal(fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8'), node.readFileSync('/proc/sys/kernel/osrelease', 'utf8'));
  });

  test('writes: whole files with their mode, from an offset, at a position', () => {
    fs.writeFileSync(`${root}/w`, 'abc', { mode: 0o640 });
    assert.equal(node.readFileSync(`${root}/w`, 'utf8'), 'abc');
    assert.equal(node.statSync(`${root}/w`).mode & 0o777, 0o640 & ~process.umask());
    const fd = fs.openSync(`${root}/w`, 'a+');
    assert.equal(fs.writeSync(fd, Buffer.from('xxdef'), 2), 3);
    assert.equal(fs.writeSync(fd, 'gh'), 2);
    const buf = Buffer.alloc(4);
    assert.equal(fs.readSync(fd, buf, 1, 3, 2), 3);
    assert.equal(buf.toString('latin1', 1), 'cde');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    assert.equal(node.readFileSync(`${root}/w`, 'utf8'), 'abcdefgh');
  });

  test('lists, stats and tests paths as node:fs does', () => {
    node.mkdirSync(`${root}/dir`);
    const names = Array.from({ length: 300 }, (_, i) => `n-${(i * 7919) % 1000}-${'x'.repeat(i % 40)}`);
    for (const n of names) node.writeFileSync(`${root}/dir/${n}`, n);
    node.symlinkSync('nowhere', `${root}/dir/link`);
    assert.deepEqual(fs.readdirSync(`${root}/dir`), node.readdirSync(`${root}/dir`).sort());
    for (const p of [`${root}/dir`, `${root}/dir/${names[3]}`, '/dev/null']) {
      const ours = fs.statSync(p), theirs = node.statSync(p);
      assert.deepEqual([ours.mode, ours.uid, ours.gid, ours.nlink, Number(ours.ino), ours.size, ours.isFile(), ours.isDirectory(), ours.isCharacterDevice()],
        [theirs.mode, theirs.uid, theirs.gid, theirs.nlink, theirs.ino, theirs.size, theirs.isFile(), theirs.isDirectory(), theirs.isCharacterDevice()], p);
      assert.ok(Math.abs(ours.mtimeMs - theirs.mtimeMs) < 1, p);
    }
    assert.equal(fs.lstatSync(`${root}/dir/link`).isSymbolicLink(), true);
    assert.equal(fs.lstatSync(`${root}/dir/none`, { throwIfNoEntry: false }), undefined);
    assert.equal(fs.statSync(`${root}/dir/link`, { throwIfNoEntry: false }), undefined, 'a dangling link has no target');
    assert.equal(fs.existsSync(`${root}/dir/link`), false);
    assert.equal(fs.existsSync(`${root}/dir`), true);
    const fd = fs.openSync('/proc/self/ns/net', 'r');
    const a = fs.fstatSync(fd), b = fs.statSync('/proc/self/ns/net');
    fs.closeSync(fd);
    assert.deepEqual([a.dev, a.ino], [b.dev, b.ino], 'a descriptor and its path name one file');
    assert.notDeepEqual([a.dev, a.ino], [fs.statSync(root).dev, fs.statSync(root).ino]);
    fs.accessSync('/bin/sh', fs.constants.X_OK);
  });

  test('makes, renames, links and removes', () => {
    fs.mkdirSync(`${root}/m/a/b`, { recursive: true, mode: 0o700 });
    fs.mkdirSync(`${root}/m/a/b`, { recursive: true });
    assert.equal(node.statSync(`${root}/m/a/b`).isDirectory(), true);
    fs.writeFileSync(`${root}/m/f`, 'f');
    fs.linkSync(`${root}/m/f`, `${root}/m/g`);
    fs.renameSync(`${root}/m/g`, `${root}/m/a/h`);
    assert.equal(node.readFileSync(`${root}/m/a/h`, 'utf8'), 'f');
    fs.chmodSync(`${root}/m/f`, 0o751);
    fs.copyFileSync(`${root}/m/f`, `${root}/m/c`);
    assert.equal(node.statSync(`${root}/m/c`).mode & 0o777, 0o751);
    fs.rmSync(`${root}/m/none`, { force: true });
    sameFailure(() => fs.rmSync(`${root}/m/none`), () => node.rmSync(`${root}/m/none`));
    assert.throws(() => fs.rmSync(`${root}/m`), { code: 'EISDIR' });
    fs.unlinkSync(`${root}/m/c`);
    fs.rmSync(`${root}/m`, { recursive: true });
    assert.equal(node.existsSync(`${root}/m`), false);
    fs.mkdirSync(`${root}/e`);
    fs.rmdirSync(`${root}/e`);
    assert.equal(node.existsSync(`${root}/e`), false);
  });

  test('fails as node:fs fails, message and all', () => {
    const none = `${root}/none`;
    sameFailure(() => fs.readFileSync(none), () => node.readFileSync(none));
    sameFailure(() => fs.unlinkSync(none), () => node.unlinkSync(none));
    sameFailure(() => fs.renameSync(none, `${root}/x`), () => node.renameSync(none, `${root}/x`));
    sameFailure(() => fs.accessSync(none), () => node.accessSync(none));
    sameFailure(() => fs.statSync(none), () => node.statSync(none));
    sameFailure(() => fs.lstatSync(none), () => node.lstatSync(none));
    sameFailure(() => fs.readdirSync(none), () => node.readdirSync(none));
    sameFailure(() => fs.openSync(`${none}/deeper`, 'r'), () => node.openSync(`${none}/deeper`, 'r'));
    node.writeFileSync(`${root}/taken`, '');
    sameFailure(() => fs.openSync(`${root}/taken`, 'wx'), () => node.openSync(`${root}/taken`, 'wx'));
    sameFailure(() => fs.linkSync(`${root}/taken`, `${root}/taken`), () => node.linkSync(`${root}/taken`, `${root}/taken`));
    sameFailure(() => fs.mkdirSync(root), () => node.mkdirSync(root));
    sameFailure(() => fs.readdirSync(`${root}/taken`), () => node.readdirSync(`${root}/taken`));
    node.mkdirSync(`${root}/full`);
    node.writeFileSync(`${root}/full/f`, '');
    sameFailure(() => fs.rmdirSync(`${root}/full`), () => node.rmdirSync(`${root}/full`));
    assert.throws(() => fs.closeSync(1 << 20), { code: 'EBADF' });
    assert.throws(() => fs.openSync(`${root}/taken`, 'rw+'), TypeError);
    // A NUL would have the kernel act on a shorter path than the one checked.
    for (const run of [() => fs.rmSync(`${root}/taken\0x`, { force: true }), () => fs.readFileSync(`${root}/small\0`), () => fs.unlinkSync(`${root}/taken\0x`)]) {
      assert.throws(run, TypeError);
    }
    assert.equal(fs.existsSync(`${root}/taken\0/x`), node.existsSync(`${root}/taken\0/x`));
    assert.ok(node.existsSync(`${root}/taken`));
  });

  test('opens close-on-exec, so no spawned helper inherits a lock or a state file', () => {
    const fd = fs.openSync(`${root}/small`, 'r');
    try {
      assert.match(node.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'), /^flags:\s+0?2[0-7]{6}$/m);
    } finally {
      fs.closeSync(fd);
    }
  });
});
