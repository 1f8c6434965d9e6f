// writeAtomic against a genuine short write: a child process whose file-size limit
// (RLIMIT_FSIZE, with SIGXFSZ ignored) lets write(2) write part of the data and then refuse the
// rest with EFBIG — what a filling disk does with ENOSPC. Run under Node (node:fs) and under Bun
// (lib/sys/fs-syscalls.ts, the shipped build's system calls): the file appears whole or not at all.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const root = mkdtempSync(`${tmpdir()}/twill-fsx-`);
after(() => rmSync(root, { recursive: true, force: true }));

const LIMIT = 4096;
const script = `${root}/child.mjs`;
writeFileSync(
  script,
  `import { writeAtomic } from ${JSON.stringify(`${ROOT}/build/lib/fsx.js`)};
const [path, size, exclusive] = process.argv.slice(2);
try {
  const wrote = writeAtomic(path, Buffer.alloc(Number(size), 120), exclusive === '1');
  console.log(JSON.stringify({ wrote, bun: process.versions.bun !== undefined }));
} catch (e) {
  console.log(JSON.stringify({ code: e.code, bun: process.versions.bun !== undefined }));
}
`,
);

const RUNTIMES = { node: process.execPath, bun: `${ROOT}/node_modules/.bin/bun` };

/** writeAtomic in a child limited to LIMIT bytes per file; what it answered. */
function limitedWrite(runtime: string, path: string, size: number, exclusive: boolean): { wrote?: boolean; code?: string; bun: boolean } {
  // An ignored signal stays ignored across exec: the write returns its short count, then EFBIG.
  const r = spawnSync('sh', ['-c', 'trap "" XFSZ; exec prlimit --fsize=$0 "$@"', String(LIMIT), runtime, script, path, String(size), exclusive ? '1' : '0'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { wrote?: boolean; code?: string; bun: boolean };
}

describe('writeAtomic and short writes', () => {
  for (const [name, runtime] of Object.entries(RUNTIMES)) {
    for (const exclusive of [false, true]) {
      test(`${name}, ${exclusive ? 'link (a reservation)' : 'rename (a state file)'}: a write cut short fails and leaves nothing`, () => {
        const dir = mkdtempSync(`${root}/${name}-`);
        const path = `${dir}/state`;
        const r = limitedWrite(runtime, path, LIMIT * 2 + 100, exclusive);
        assert.equal(r.bun, name === 'bun', 'the runtime asked for ran');
        assert.equal(r.code, 'EFBIG', `the failure is reported (got ${JSON.stringify(r)})`);
        assert.equal(existsSync(path), false, 'no truncated file under the real name');
        assert.deepEqual(readdirSync(dir), [], 'no temp file left');
      });
    }

    test(`${name}: a file within the limit is written whole`, () => {
      const dir = mkdtempSync(`${root}/${name}-ok-`);
      const r = limitedWrite(runtime, `${dir}/state`, LIMIT, false);
      assert.equal(r.wrote, true);
      assert.equal(readFileSync(`${dir}/state`).length, LIMIT);
      assert.deepEqual(readdirSync(dir), ['state']);
    });
  }
});
