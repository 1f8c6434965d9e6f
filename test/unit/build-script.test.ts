// The executables' builds: a failure must fail make and leave no older executable to test.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { ROOT, tempDir } from '../helpers/twill.js';

describe('tools/build/build-exe.sh', () => {
  const dir = tempDir('build');
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exits non-zero when the build fails, and removes the stale executable', () => {
    mkdirSync(`${dir}/tools/build`, { recursive: true });
    mkdirSync(`${dir}/dist`);
    for (const f of ['build-exe.sh', 'fetch-node.sh']) copyFileSync(`${ROOT}/tools/build/${f}`, `${dir}/tools/build/${f}`);
    chmodSync(`${dir}/tools/build/build-exe.sh`, 0o755);
    chmodSync(`${dir}/tools/build/fetch-node.sh`, 0o755);
    const pkg = JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { config: { seaNodeVersion: string } };
    writeFileSync(`${dir}/package.json`, JSON.stringify({ config: pkg.config }));
    // The pinned Node is "already fetched" (nothing is downloaded); the build step itself fails.
    const nodeDir = `${dir}/.cache/node-${pkg.config.seaNodeVersion}-${process.arch}/bin`;
    mkdirSync(nodeDir, { recursive: true });
    writeFileSync(`${nodeDir}/node`, '#!/bin/sh\nexit 0\n');
    chmodSync(`${nodeDir}/node`, 0o755);
    writeFileSync(`${dir}/tools/build/build.mjs`, 'console.error("build exploded"); process.exit(3);\n');
    writeFileSync(`${dir}/dist/twill-node`, '#!/bin/sh\necho stale\n');
    chmodSync(`${dir}/dist/twill-node`, 0o755);
    const r = spawnSync(`${dir}/tools/build/build-exe.sh`, { encoding: 'utf8', env: { ...process.env, NODE: process.execPath } });
    assert.notEqual(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /build exploded/);
    assert.equal(existsSync(`${dir}/dist/twill-node`), false);
  });
});

describe('tools/build/build-bun.sh', () => {
  const dir = tempDir('build-bun');
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exits non-zero when Bun\'s compile fails, and removes the stale dist/twill', () => {
    for (const d of ['tools/build', 'dist', 'node_modules/.bin']) mkdirSync(`${dir}/${d}`, { recursive: true });
    copyFileSync(`${ROOT}/tools/build/build-bun.sh`, `${dir}/tools/build/build-bun.sh`);
    chmodSync(`${dir}/tools/build/build-bun.sh`, 0o755);
    writeFileSync(`${dir}/dist/twill.cjs`, '');
    writeFileSync(`${dir}/node_modules/.bin/bun`, '#!/bin/sh\necho "compile exploded" >&2\nexit 4\n');
    chmodSync(`${dir}/node_modules/.bin/bun`, 0o755);
    writeFileSync(`${dir}/dist/twill`, '#!/bin/sh\necho stale\n');
    chmodSync(`${dir}/dist/twill`, 0o755);
    const r = spawnSync(`${dir}/tools/build/build-bun.sh`, { encoding: 'utf8' });
    assert.notEqual(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /compile exploded/);
    assert.equal(existsSync(`${dir}/dist/twill`), false);
  });

  it('hands Bun the committed bytecode profiles, unpacked, in their order', () => {
    const work = tempDir('build-bun-order');
    try {
      for (const d of ['tools/build/bytecode-order', 'dist', 'node_modules/.bin', 'bpf']) mkdirSync(`${work}/${d}`, { recursive: true });
      copyFileSync(`${ROOT}/tools/build/build-bun.sh`, `${work}/tools/build/build-bun.sh`);
      chmodSync(`${work}/tools/build/build-bun.sh`, 0o755);
      const profiles = ['add', 'add-ebpf', 'del'].map((p) => `${ROOT}/tools/build/bytecode-order/${p}.txt.gz`);
      for (const p of profiles) copyFileSync(p, `${work}/tools/build/bytecode-order/${p.split('/').pop()}`);
      writeFileSync(`${work}/dist/twill.cjs`, '');
      writeFileSync(`${work}/bpf/twill_tc.o`, '');
      // A stand-in Bun that keeps what each --bytecode-order names and writes an executable.
      writeFileSync(`${work}/node_modules/.bin/bun`, [
        '#!/bin/sh',
        'for a in "$@"; do case "$a" in --bytecode-order=*) cat "${a#--bytecode-order=}" >> dist/seen ;; esac; done',
        ': > dist/twill && chmod +x dist/twill',
        '',
      ].join('\n'));
      chmodSync(`${work}/node_modules/.bin/bun`, 0o755);
      const r = spawnSync(`${work}/tools/build/build-bun.sh`, { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      const unpacked = profiles.map((p) => gunzipSync(readFileSync(p)).toString('utf8'));
      for (const u of unpacked) assert.match(u, /^v2\nF [0-9a-f]{16}\n/, 'a profile Bun reads (format v2, function hashes)');
      assert.equal(readFileSync(`${work}/dist/seen`, 'utf8'), unpacked.join(''));
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
