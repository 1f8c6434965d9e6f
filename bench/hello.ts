// A bare single-executable hello-world, built exactly like dist/twill: the start-up floor.
import { execFileSync } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

export function buildHello(dir: string, nodeBin: string): string {
  writeFileSync(`${dir}/hello.js`, 'process.stdout.write("{}\\n");\n');
  writeFileSync(`${dir}/hello-sea.json`, JSON.stringify({ main: `${dir}/hello.js`, output: `${dir}/hello.blob`, disableExperimentalSEAWarning: true, useCodeCache: true }));
  execFileSync(nodeBin, ['--experimental-sea-config', `${dir}/hello-sea.json`], { stdio: 'ignore' });
  const bin = `${dir}/hello`;
  copyFileSync(nodeBin, bin);
  const postject = createRequire(import.meta.url).resolve('postject/dist/cli.js');
  execFileSync(process.execPath, [postject, bin, 'NODE_SEA_BLOB', `${dir}/hello.blob`, '--sentinel-fuse', 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'], { stdio: 'ignore' });
  return bin;
}
