// The address store's costs and failure paths: a taken address is probed without writing,
// a reservation whose hint cannot be written is taken back, names fit one path component.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { indexName } from '../../lib/ipam/index-file.js';
import { Store } from '../../lib/ipam/store.js';
import { fileName, runMarker } from '../../lib/naming.js';
import { loadNetConf } from '../../lib/config/load.js';
import { hostLocalAdd } from '../../lib/ipam/hostlocal.js';
import { tempDir } from '../helpers/twill.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function store(): Store {
  const d = tempDir('unit-store');
  dirs.push(d);
  const s = new Store(d, 'net');
  s.ensureDir();
  return s;
}

describe('address store', () => {
  it('probes a taken address without creating a file', () => {
    const s = store();
    assert.equal(s.reserve('10.9.0.2', 'a', 'eth0', 0), true);
    const before = statSync(s.dir).mtimeMs;
    const names = readdirSync(s.dir).sort();
    for (let i = 0; i < 20; i++) assert.equal(s.reserve('10.9.0.2', `b${i}`, 'eth0', 0), false);
    assert.deepEqual(readdirSync(s.dir).sort(), names);
    assert.equal(statSync(s.dir).mtimeMs, before, 'no temp file was created and removed');
    assert.deepEqual(s.owner('10.9.0.2'), { id: 'a', ifname: 'eth0' });
  });

  it('counts reservations without reading them', () => {
    const s = store();
    assert.equal(s.count(), 0);
    s.reserve('10.9.0.5', 'a', 'eth0', 0);
    s.reserve('10.9.0.6', 'b', 'eth0', 0);
    assert.equal(s.count(), 2);
    s.release('10.9.0.5');
    assert.equal(s.count(), 1);
  });

  it('takes a reservation back when its hint cannot be written (nothing leaks)', () => {
    const s = store();
    mkdirSync(`${s.dir}/last_reserved_ip.0`); // rename over a directory fails, as ENOSPC would
    assert.throws(() => s.reserve('10.9.0.3', 'a', 'eth0', 0));
    assert.equal(s.owner('10.9.0.3'), undefined);
    assert.deepEqual(readdirSync(s.dir).filter((f) => !f.startsWith('last_')), []);
  });

  it('keeps every file name of a 253-byte container ID or network name under 255 bytes', () => {
    const long = 'x'.repeat(253);
    assert.ok(Buffer.byteLength(indexName(long, 'eth0')) <= 240);
    assert.notEqual(indexName(long, 'eth0'), indexName(long, 'eth1'));
    assert.ok(Buffer.byteLength(runMarker('/var/lib/twill', 'masq', long).split('/').pop()!) <= 255);
    assert.ok(Buffer.byteLength(`${fileName(long)}.json`) <= 255);
    assert.equal(fileName('short'), 'short');
  });

  it('allocates for a 253-byte container ID and network name', () => {
    const dataDir = tempDir('unit-data');
    const stateDir = tempDir('unit-state');
    dirs.push(dataDir, stateDir);
    const name = `n${'e'.repeat(252)}`;
    const conf = loadNetConf(JSON.stringify({ cniVersion: '1.1.0', name, type: 'twill', stateDir, ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.9.1.0/24' }]] } }));
    const out = hostLocalAdd(conf, 'c'.repeat(253), 'eth0', undefined);
    assert.equal(out.ips.length, 1);
  });
});
