// make test-stress: random SIGKILLs, 16-caller storms shared with the reference host-local,
// and ≥ 10,000 hostile inputs; prints a summary table and fails on any leak or duplicate.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import fc from 'fast-check';
import { caseArb, checkCase, edgeCases, fuzzFixtures } from '../testkit/fuzz.js';
import { testNet } from '../testkit/netconf.js';
import { endpointsJson, tempBpffs } from '../testkit/traffic.js';
import { CNI_BIN_DIR, cleanupNetns, hostLinksSettled, makeNetns, netnsPath, removeDir, sh, tempDir, TWILL } from '../testkit/twill.js';
import { forgetStateDir } from '../testkit/netconf.js';

const KILLS = Number(process.env.STRESS_KILLS ?? 200);
const STORM_SECONDS = Number(process.env.STORM_SECONDS ?? 60);
const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 10_000);
const files = (d: string): string[] => {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
};

interface Run {
  code: number | null;
  stdout: string;
  killed: boolean;
}

function run(bin: string, env: Record<string, string>, stdin: string, killAfterMs?: number): Promise<Run> {
  return new Promise((res) => {
    const p = spawn(bin, [], { env: { PATH: process.env.PATH ?? '', CNI_PATH: CNI_BIN_DIR, ...env } });
    let stdout = '';
    let killed = false;
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.resume();
    const t = killAfterMs === undefined ? undefined : setTimeout(() => {
      killed = p.exitCode === null && p.kill('SIGKILL');
    }, killAfterMs);
    p.on('close', (code) => {
      if (t) clearTimeout(t);
      res({ code, stdout, killed });
    });
    p.stdin.end(stdin);
  });
}

function leaks(net: ReturnType<typeof testNet>, bpffsRoot?: string): string[] {
  const out: string[] = [];
  const res = files(`${net.dataDir}/${net.name}`).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip'));
  if (res.length) out.push(`${res.length} reservations (${res.slice(0, 5).join(' ')})`);
  const idx = files(`${net.stateDir}/ipam/${net.name}`).filter((f) => f !== 'boot_id');
  if (idx.length) out.push(`${idx.length} index files`);
  const veths = hostLinksSettled('tws');
  if (veths.length) out.push(`${veths.length} veths`);
  if (bpffsRoot) {
    const eps = endpointsJson(bpffsRoot).filter((e) => e.network === net.name);
    if (eps.length) out.push(`${eps.length} endpoint entries`);
    const links = files(`${bpffsRoot}/twill/${net.name}/links`);
    if (links.length) out.push(`${links.length} link pins`);
  }
  return out;
}

async function randomKills(): Promise<{ kills: number; leaks: string[] }> {
  const net = testNet({ stack: 'dual', prefix: 'tws' });
  const bpffs = tempBpffs();
  const conf = JSON.stringify(net.conf({ datapath: 'ebpf', bpffsRoot: bpffs.root, ebpfAttach: 'tcx' }));
  const pods = Array.from({ length: 8 }, () => makeNetns());
  let kills = 0;
  const ids = new Set<string>();
  for (let i = 0; kills < KILLS && i < KILLS * 4; i++) {
    const k = i % pods.length;
    const id = `kill-${k}`;
    ids.add(id);
    const verb = Math.random() < 0.65 ? 'ADD' : 'DEL';
    const r = await run(TWILL, { CNI_COMMAND: verb, CNI_CONTAINERID: id, CNI_NETNS: netnsPath(pods[k]!), CNI_IFNAME: 'eth0' }, conf, Math.random() * 45);
    if (r.killed) kills++;
  }
  // Recovery as a runtime does it: DEL every attachment it knows, then GC.
  for (const id of ids) await run(TWILL, { CNI_COMMAND: 'DEL', CNI_CONTAINERID: id, CNI_IFNAME: 'eth0' }, conf);
  await run(TWILL, { CNI_COMMAND: 'GC' }, JSON.stringify({ ...JSON.parse(conf), 'cni.dev/valid-attachments': [] }));
  const found = leaks(net, bpffs.root);
  bpffs.release();
  removeDir(net.dataDir);
  removeDir(net.stateDir);
  return { kills, leaks: found };
}

async function storm(): Promise<{ ops: number; adds: number; dels: number; tryAgain: number; errors: string[]; duplicates: string[]; leaks: string[] }> {
  const net = testNet({ stack: 'dual', prefix: 'tws', cniVersion: '1.0.0' });
  const conf = net.conf();
  conf.ipam.ranges = [[{ subnet: conf.ipam.ranges[0][0].subnet.replace(/\/24$/, '/26') }], conf.ipam.ranges[1]];
  const stdin = JSON.stringify(conf);
  const live = new Map<string, string>(); // address → owner
  const duplicates: string[] = [];
  const errors: string[] = [];
  let ops = 0;
  let adds = 0;
  let dels = 0;
  let tryAgain = 0;
  const until = Date.now() + STORM_SECONDS * 1000;
  const dummyNs = tempDir('storm');
  await Promise.all(Array.from({ length: 16 }, async (_, caller) => {
    const ns = makeNetns();
    for (let i = 0; Date.now() < until; i++) {
      const id = `storm-${caller}-${i}`;
      const hostLocal = caller % 4 === 3; // a quarter of the callers are the reference host-local
      const env = { CNI_CONTAINERID: id, CNI_NETNS: hostLocal ? `${dummyNs}/x` : netnsPath(ns), CNI_IFNAME: 'eth0' };
      const bin = hostLocal ? `${CNI_BIN_DIR}/host-local` : TWILL;
      const add = await run(bin, { ...env, CNI_COMMAND: 'ADD' }, stdin);
      ops++;
      if (add.code !== 0) {
        const code = (JSON.parse(add.stdout || '{}') as { code?: number }).code;
        if (code === 11) tryAgain++;
        else errors.push(`${hostLocal ? 'host-local' : 'twill'} ADD: ${add.stdout.slice(0, 200)}`);
        await run(bin, { ...env, CNI_COMMAND: 'DEL' }, stdin);
        continue;
      }
      adds++;
      const ips = (JSON.parse(add.stdout) as { ips: { address: string }[] }).ips.map((x) => x.address.split('/')[0]!);
      for (const ip of ips) {
        if (live.has(ip)) duplicates.push(`${ip}: ${live.get(ip)} and ${id}`);
        live.set(ip, id);
      }
      if (!hostLocal) {
        const chk = await run(TWILL, { ...env, CNI_COMMAND: 'CHECK' }, JSON.stringify({ ...conf, prevResult: JSON.parse(add.stdout) }));
        ops++;
        if (chk.code !== 0) errors.push(`CHECK: ${chk.stdout.slice(0, 200)}`);
      }
      for (const ip of ips) live.delete(ip); // being released from here on
      // Release with the other plugin half of the time: both must read each other's files.
      const delBin = hostLocal || i % 2 === 0 ? bin : `${CNI_BIN_DIR}/host-local`;
      const del = await run(delBin, { ...env, CNI_COMMAND: 'DEL' }, stdin);
      if (!hostLocal && delBin !== TWILL) await run(TWILL, { ...env, CNI_COMMAND: 'DEL' }, stdin);
      ops++;
      dels++;
      if (del.code !== 0) errors.push(`DEL: ${del.stdout.slice(0, 200)}`);
    }
  }));
  removeDir(dummyNs);
  const found = leaks(net);
  removeDir(net.dataDir);
  removeDir(net.stateDir);
  return { ops, adds, dels, tryAgain, errors, duplicates, leaks: found };
}

function fuzz(): { cases: number; failures: string[] } {
  const sandbox = tempDir('stress-fuzz');
  const { ns, notNs } = fuzzFixtures(sandbox);
  const failures: string[] = [];
  let cases = 0;
  for (const c of edgeCases(sandbox, ns)) {
    cases++;
    const o = checkCase(c, sandbox);
    if (!o.ok) failures.push(o.why ?? '');
  }
  fc.assert(
    fc.property(caseArb(sandbox, ns, notNs), (c) => {
      cases++;
      const o = checkCase(c, sandbox);
      if (!o.ok) failures.push(`${o.why} — ${JSON.stringify(c).slice(0, 500)}`);
    }),
    { numRuns: FUZZ_RUNS, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31) },
  );
  sh('umount', [`${sandbox}/bpffs`], { allowFail: true });
  forgetStateDir(`${sandbox}/state`);
  removeDir(sandbox);
  return { cases, failures };
}

async function main(): Promise<void> {
  spawnSync('test', ['-x', TWILL]);
  const kills = await randomKills();
  process.stdout.write(`random kills done: ${kills.kills}\n`);
  const st = await storm();
  process.stdout.write(`storm done: ${st.ops} operations\n`);
  const fz = fuzz();
  cleanupNetns();
  const rows = [
    ['random SIGKILLs during ADD/DEL', String(kills.kills), kills.leaks.length === 0 ? '0' : kills.leaks.join('; ')],
    [`16-caller storm, ${STORM_SECONDS} s, twill + host-local on one pool`, `${st.ops} ops (${st.adds} ADDs, ${st.dels} DELs, ${st.tryAgain} code 11)`, [...st.duplicates.map((d) => `duplicate ${d}`), ...st.errors, ...st.leaks].join('; ') || '0'],
    ['hostile inputs (fast-check)', String(fz.cases), fz.failures.length === 0 ? '0' : `${fz.failures.length}: ${fz.failures[0]}`],
  ];
  process.stdout.write(`\n| stress | count | leaks / failures found |\n| --- | --- | --- |\n${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}\n`);
  const bad = kills.leaks.length + st.duplicates.length + st.errors.length + st.leaks.length + fz.failures.length;
  process.stdout.write(`\n${bad === 0 ? 3 : 0} passed, ${bad === 0 ? 0 : 1} failed\n`);
  process.exitCode = bad === 0 ? 0 : 1;
}

await main();
