// The operator CLI runs only what it fully understood: an unknown option, a missing value or
// a bad type exits 2 with the usage error and changes nothing; JSON output keeps its fields.
// And a runtime's environment without CNI_COMMAND gets a CNI error, not the CLI.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { hostSnapshot, removeDir, tempDir, TWILL } from '../helpers/twill.js';

const cli = (args: string[], env: Record<string, string> = {}) => spawnSync(TWILL, args, { encoding: 'utf8', env: { PATH: process.env.PATH, ...env }, timeout: 20_000 });

describe('twill CLI: usage errors run nothing', () => {
  const dir = tempDir('cli');
  after(() => removeDir(dir));
  const bin = `${dir}/bin`;
  const conf = `${dir}/net.d`;
  // Each command with an unknown option, a missing value and a wrong type.
  const bad: [string, string[]][] = [
    ['version: unknown option', ['version', '--jsn']],
    ['version: missing value', ['version', '-o']],
    ['version: wrong type', ['version', '-o', 'yaml']],
    ['endpoints: unknown option', ['endpoints', '--bpffs-rot', dir]],
    ['endpoints: missing value', ['endpoints', '--network']],
    ['endpoints: wrong type', ['endpoints', '-o', 'xml']],
    ['status: unknown option', ['status', '--conf-dir', conf, '--jsn']],
    ['status: missing value', ['status', '--conf-dir']],
    ['status: wrong type', ['status', '--conf-dir', conf, '-o', '5']],
    ['install: unknown option', ['install', '--bin-dir', bin, '--conf-dir', conf, '--forse']],
    ['install: missing value', ['install', '--conf-dir', conf, '--bin-dir']],
    ['install: wrong type', ['install', '--bin-dir', bin, '--conf-dir', conf, '--force=maybe']],
    ['sync: unknown option', ['sync', '--conf-dir', conf, '--kubeconfg', `${dir}/kc`]],
    ['sync: missing value', ['sync', '--conf-dir', conf, '--kubeconfig']],
    ['sync: wrong type', ['sync', '--conf-dir', conf, '--watch', 'abc']],
    ['sync: conflicting sources', ['sync', '--conf-dir', conf, '--in-cluster', '--nodes-file', `${dir}/n.json`]],
    ['unknown command', ['syncc']],
    ['no command', []],
  ];
  for (const [what, args] of bad) {
    it(`${what} → exit 2, usage on stderr, nothing changed`, () => {
      const before = hostSnapshot([dir, '/etc/cni']);
      const r = cli(args);
      assert.equal(r.status, 2, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, /Run "twill --help" for usage/);
      assert.equal(r.stdout, '');
      assert.equal(hostSnapshot([dir, '/etc/cni']), before);
      assert.equal(existsSync(`${bin}/twill`), false);
    });
  }

  it('--help of every command shows its options and an example, and the exit codes', () => {
    for (const c of ['version', 'endpoints', 'status', 'install', 'sync']) {
      const r = cli([c, '--help']);
      assert.equal(r.status, 0);
      assert.match(r.stdout, /Options:/);
      assert.match(r.stdout, /Examples:/);
      assert.match(r.stdout, /Exit codes: 0 ok, 1 not ready or problems found, 2 usage error/);
    }
  });

  it('completion prints a shell completion script', () => {
    const r = cli(['completion']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /twill/);
    assert.match(r.stdout, /complete/);
  });
});

describe('twill CLI: JSON output', () => {
  const dir = tempDir('cli-json');
  after(() => removeDir(dir));

  it('version -o json: build, CNI versions, runtime and host features', () => {
    const j = JSON.parse(cli(['version', '-o', 'json']).stdout);
    assert.deepEqual(Object.keys(j).sort(), ['cniVersions', 'host', 'runtime', 'version']);
    assert.deepEqual(j.cniVersions, ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
    assert.deepEqual(Object.keys(j.host).sort(), ['btf', 'conntrackKfuncs', 'kernel', 'ringbuf', 'tcx']);
    assert.equal(j.host.conntrackKfuncs, true, 'this kernel has them (the eBPF tests depend on it)');
    assert.deepEqual(JSON.parse(cli(['version', '--json']).stdout), j, '--json is -o json');
  });

  it('endpoints, status and sync -o json parse and keep their fields', () => {
    assert.deepEqual(JSON.parse(cli(['endpoints', '--bpffs-root', `${dir}/none`, '-o', 'json']).stdout), []);
    const st = cli(['status', '--conf-dir', dir, '-o', 'json']);
    assert.ok(Array.isArray(JSON.parse(st.stdout)) || typeof JSON.parse(st.stdout) === 'object');
    const sy = JSON.parse(cli(['sync', '--conf-dir', dir, '-o', 'json']).stdout);
    assert.deepEqual(Object.keys(sy).sort(), ['networks', 'source']);
  });
});

describe('a runtime\'s environment without CNI_COMMAND', () => {
  it('gets a CNI error (code 4) naming CNI_COMMAND, not the CLI', () => {
    const r = spawnSync(TWILL, [], { input: '{}', encoding: 'utf8', env: { PATH: process.env.PATH, CNI_CONTAINERID: 'x', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' } });
    assert.notEqual(r.status, 0);
    const e = JSON.parse(r.stdout);
    assert.equal(e.code, 4);
    assert.match(e.msg, /CNI_COMMAND/);
  });

  it('with no CNI_ variable at all the CLI answers; and with a command line, even if CNI_PATH is exported', () => {
    const r = cli(['version']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^twill /);
    const withPath = cli(['version'], { CNI_PATH: '/opt/cni/bin' });
    assert.equal(withPath.status, 0, withPath.stdout);
    assert.match(withPath.stdout, /^twill /);
  });
});
