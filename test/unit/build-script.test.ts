// The executables' builds: a failure must fail make and leave no older executable to test.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { ROOT, tempDir } from '../helpers/twill.js';

describe('scripts/build-exe.sh', () => {
  const dir = tempDir('build');
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exits non-zero when the build fails, and removes the stale executable', () => {
    mkdirSync(`${dir}/scripts`, { recursive: true });
    mkdirSync(`${dir}/dist`);
    for (const f of ['build-exe.sh', 'fetch-node.sh']) copyFileSync(`${ROOT}/scripts/${f}`, `${dir}/scripts/${f}`);
    chmodSync(`${dir}/scripts/build-exe.sh`, 0o755);
    chmodSync(`${dir}/scripts/fetch-node.sh`, 0o755);
    const pkg = JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { config: { seaNodeVersion: string } };
    writeFileSync(`${dir}/package.json`, JSON.stringify({ config: pkg.config }));
    // The pinned Node is "already fetched" (nothing is downloaded); the build step itself fails.
    const nodeDir = `${dir}/.cache/node-${pkg.config.seaNodeVersion}-${process.arch}/bin`;
    mkdirSync(nodeDir, { recursive: true });
    writeFileSync(`${nodeDir}/node`, '#!/bin/sh\nexit 0\n');
    chmodSync(`${nodeDir}/node`, 0o755);
    writeFileSync(`${dir}/scripts/build.mjs`, 'console.error("build exploded"); process.exit(3);\n');
    writeFileSync(`${dir}/dist/twill-node`, '#!/bin/sh\necho stale\n');
    chmodSync(`${dir}/dist/twill-node`, 0o755);
    const r = spawnSync(`${dir}/scripts/build-exe.sh`, { encoding: 'utf8', env: { ...process.env, NODE: process.execPath } });
    assert.notEqual(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /build exploded/);
    assert.equal(existsSync(`${dir}/dist/twill-node`), false);
  });
});

describe('scripts/build-bun.sh', () => {
  const dir = tempDir('build-bun');
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exits non-zero when Bun\'s compile fails, and removes the stale dist/twill', () => {
    for (const d of ['scripts', 'dist', 'node_modules/.bin']) mkdirSync(`${dir}/${d}`, { recursive: true });
    copyFileSync(`${ROOT}/scripts/build-bun.sh`, `${dir}/scripts/build-bun.sh`);
    chmodSync(`${dir}/scripts/build-bun.sh`, 0o755);
    writeFileSync(`${dir}/dist/twill.cjs`, '');
    writeFileSync(`${dir}/node_modules/.bin/bun`, '#!/bin/sh\necho "compile exploded" >&2\nexit 4\n');
    chmodSync(`${dir}/node_modules/.bin/bun`, 0o755);
    writeFileSync(`${dir}/dist/twill`, '#!/bin/sh\necho stale\n');
    chmodSync(`${dir}/dist/twill`, 0o755);
    const r = spawnSync(`${dir}/scripts/build-bun.sh`, { encoding: 'utf8' });
    assert.notEqual(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /compile exploded/);
    assert.equal(existsSync(`${dir}/dist/twill`), false);
  });
});
