// `make image`: an OCI image of twill built offline — the executable, the shared libraries it
// and its FFI addon link (it is a glibc program), the default conflist — packed as an OCI
// image layout tarball: dist/twill-image.tar, named twill:<version>. The DaemonSet in deploy/
// runs it: `twill install` as an init container, `twill sync --in-cluster --watch` after.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname } from 'node:path';
import { ociImage } from './oci-image.js';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
const name = `twill:${pkg.version}`;
const work = mkdtempSync(`${tmpdir()}/twill-image-`);
try {
  const root = `${work}/rootfs`;
  const put = (src: string, dst = src): void => {
    mkdirSync(`${root}${dirname(dst)}`, { recursive: true });
    copyFileSync(src, `${root}${dst}`);
  };
  put('dist/twill', '/usr/local/bin/twill');
  chmodSync(`${root}/usr/local/bin/twill`, 0o755);
  // Every library the loader resolves for the executable (koffi's addon needs no others).
  const ldd = execFileSync('ldd', ['dist/twill'], { encoding: 'utf8' });
  for (const m of ldd.matchAll(/(\/\S+\.so[.\d]*)/g)) put(m[1]!);
  put('conf/twill.conflist', '/etc/twill/10-twill.conflist');
  for (const d of ['/tmp', '/run', '/host']) mkdirSync(`${root}${d}`, { recursive: true });
  chmodSync(`${root}/tmp`, 0o1777);
  ociImage(root, work, name, ['/usr/local/bin/twill'], `${process.cwd()}/dist/twill-image.tar`);
  process.stdout.write(`built dist/twill-image.tar (${name})\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
