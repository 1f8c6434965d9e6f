// Builds the bundle (dist/twill.cjs: the program in one CommonJS file, for both builds) and,
// unless --bundle-only, dist/twill-node: a Node single-executable application holding it,
// its V8 code cache and the FFI addon as an asset. The shipped dist/twill is the Bun build of
// the same bundle (tools/build/build-bun.sh).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { build } from 'esbuild';

const require = createRequire(import.meta.url);
const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
const nodeBin = process.env.TWILL_NODE ?? process.execPath;
const koffiPath = require.resolve(`@koromix/koffi-linux-${process.arch}/linux_${process.arch}/koffi.node`);
const koffiSha = createHash('sha256').update(readFileSync(koffiPath)).digest('hex');
const bpfPath = 'bpf/twill_tc.o';
const bpfSha = createHash('sha256').update(readFileSync(bpfPath)).digest('hex');
let rev = 'unknown';
try {
  rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
} catch {
  // not a git checkout
}

mkdirSync('dist', { recursive: true });
await build({
  entryPoints: ['cmd/twill.ts'],
  outfile: 'dist/twill.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
  // Bundled ESM packages (yargs) ask for import.meta.url; point it at the executable (a file
  // URL made by hand: node:url is a module of its own to load, and a CNI call needs none).
  banner: { js: 'var __twill_import_meta_url="file://"+encodeURI(process.execPath).replace(/[?#]/g,encodeURIComponent);' },
  define: { 'import.meta.url': '__twill_import_meta_url', TWILL_KOFFI_SHA256: JSON.stringify(koffiSha), TWILL_BPF_SHA256: JSON.stringify(bpfSha), TWILL_VERSION: JSON.stringify(`${pkg.version}+${rev}`) },
});

if (process.argv.includes('--bundle-only')) process.exit(0);

// The program runs as a function (see tools/build/sea-main.cjs) so that its code cache can be
// made after a warm-up run, with the functions a CNI call needs already compiled.
writeFileSync('dist/twill.js', `(function (require, module, exports, __filename, __dirname) {${readFileSync('dist/twill.cjs', 'utf8')}\n})`);
execFileSync(nodeBin, ['tools/build/warm-cache.cjs', 'dist/twill.js', 'dist/twill.cache'], { stdio: 'inherit' });
writeFileSync(
  'dist/sea-config.json',
  JSON.stringify({
    main: 'tools/build/sea-main.cjs',
    output: 'dist/twill.blob',
    disableExperimentalSEAWarning: true,
    useCodeCache: true,
    assets: { 'twill.js': 'dist/twill.js', 'twill.cache': 'dist/twill.cache', 'koffi.node': koffiPath, 'twill_tc.o': bpfPath, 'twill_sock.o': 'bpf/twill_sock.o', 'twill_nodeport.o': 'bpf/twill_nodeport.o' },
  }),
);
execFileSync(nodeBin, ['--experimental-sea-config', 'dist/sea-config.json'], { stdio: 'inherit' });
rmSync('dist/twill-node', { force: true });
copyFileSync(nodeBin, 'dist/twill-node');
chmodSync('dist/twill-node', 0o755);
execFileSync(process.execPath, [
  require.resolve('postject/dist/cli.js'), 'dist/twill-node', 'NODE_SEA_BLOB', 'dist/twill.blob',
  '--sentinel-fuse', 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
], { stdio: ['ignore', 'ignore', 'inherit'] });
process.stdout.write(`built dist/twill-node (${nodeBin}, node ${execFileSync(nodeBin, ['-v'], { encoding: 'utf8' }).trim()})\n`);
