import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, it } from 'node:test';
import { linkMaps, parseElf } from '../../lib/bpf/elf.js';
import {
  COUNTERS_SIZE, CT_STATUS_MARKER, EP_F_NO_FAST, EP_F_PENDING, EP_F_POL_IN, EP_F_POL_OUT, EP_KEY_SIZE, EP_VALUE_SIZE, ID_ANY, ID_HOST, ID_UNKNOWN, ID_WORLD, IPC_F_HOST, IPC_KEY_SIZE, IPC_VALUE_SIZE,
  MAP_NAMES, FRAG_KEY_SIZE, FRAG_VALUE_SIZE, ECHO_KEY_SIZE, ECHO_VALUE_SIZE, OBS_RECORD_TTL, sumCounters, POL_EGRESS, FLOW_KEY_SIZE, FLOW_VALUE_SIZE, FLOW_EVENT_SIZE, FLOW_FORWARDED, FLOW_DROPPED, EV_NEW, EV_DROP, EV_END, OBS_READER, OBS_LOST, OBS_CONF, OBS_CONF_OFF, flowKey, parseFlowKey, parseFlowValue, POL_INGRESS, POL_KEY_SIZE, POL_VALUE_SIZE, epKey, epKeyAddr, epValue, ipcKey, ipcValue, parseIpcValue, IPC_F_POD, CLASS_CLUSTER_POD, parseEpValue, parseIpcKey, parsePolKey, polKey,
} from '../../lib/bpf/layout.js';
import { linkKfuncs, patchFieldOffset } from '../../lib/bpf/elf.js';
import { MapType } from '../../lib/bpf/sys.js';
import { addrBytes, formatAddr, parseAddr } from '../../lib/net/ip.js';
import { ROOT } from '../helpers/twill.js';

const object = readFileSync(`${ROOT}/bpf/twill_tc.o`);

describe('the committed tc object', () => {
  const elf = parseElf(object);

  it('declares the maps with the layouts the loader writes', () => {
    const byName = new Map(elf.maps.map((m) => [m.name, m]));
    const NO_PREALLOC = 1;
    assert.deepEqual(byName.get('endpoints'), { name: 'endpoints', type: MapType.Hash, keySize: EP_KEY_SIZE, valueSize: EP_VALUE_SIZE, maxEntries: 1024, flags: NO_PREALLOC });
    assert.deepEqual(byName.get('counters'), { name: 'counters', type: MapType.PercpuHash, keySize: 4, valueSize: COUNTERS_SIZE, maxEntries: 1024, flags: NO_PREALLOC });
    const LPM_TRIE = 11;
    assert.deepEqual(byName.get('ipcache'), { name: 'ipcache', type: LPM_TRIE, keySize: IPC_KEY_SIZE, valueSize: IPC_VALUE_SIZE, maxEntries: 65536, flags: NO_PREALLOC });
    assert.deepEqual(byName.get('policy'), { name: 'policy', type: LPM_TRIE, keySize: POL_KEY_SIZE, valueSize: POL_VALUE_SIZE, maxEntries: 65536, flags: NO_PREALLOC });
    assert.deepEqual(byName.get('flows'), { name: 'flows', type: MapType.LruHash, keySize: FLOW_KEY_SIZE, valueSize: FLOW_VALUE_SIZE, maxEntries: 8192, flags: 0 });
    const RINGBUF = 27;
    assert.deepEqual(byName.get('events'), { name: 'events', type: RINGBUF, keySize: 0, valueSize: 0, maxEntries: 256 * 1024, flags: 0 });
    assert.deepEqual(byName.get('observer'), { name: 'observer', type: MapType.Array, keySize: 4, valueSize: 8, maxEntries: 4, flags: 0 });
    assert.deepEqual(byName.get('frags'), { name: 'frags', type: MapType.LruHash, keySize: FRAG_KEY_SIZE, valueSize: FRAG_VALUE_SIZE, maxEntries: 4096, flags: 0 });
    assert.deepEqual(byName.get('echoes'), { name: 'echoes', type: MapType.LruHash, keySize: ECHO_KEY_SIZE, valueSize: ECHO_VALUE_SIZE, maxEntries: 4096, flags: 0 });
    assert.deepEqual(elf.maps.map((m) => m.name).sort(), [...MAP_NAMES].sort());
    assert.equal(elf.license, 'GPL');
  });

  for (const name of ['twill_from_pod', 'twill_to_pod']) it(`${name} calls only the conntrack kfuncs, and reads nf_conn.status at the marker the loader patches`, () => {
    const prog = elf.programs.find((p) => p.name === name)!;
    assert.deepEqual([...new Set(prog.kfuncRefs.map((r) => r.name))].sort(), ['bpf_ct_release', 'bpf_skb_ct_lookup']);
    const insns = Buffer.from(prog.insns);
    linkKfuncs(insns, prog, { funcId: (n) => (n === 'bpf_skb_ct_lookup' ? 1001 : 1002) });
    for (const r of prog.kfuncRefs) {
      assert.equal(insns[r.offset + 1]! >> 4, 2, 'src_reg = BPF_PSEUDO_KFUNC_CALL');
      assert.equal(insns.readInt32LE(r.offset + 4), r.name === 'bpf_skb_ct_lookup' ? 1001 : 1002);
    }
    assert.throws(() => linkKfuncs(Buffer.from(prog.insns), prog, { funcId: () => undefined }), /no kfunc bpf_/);
    assert.ok(patchFieldOffset(insns, CT_STATUS_MARKER, 128) >= 1);
    assert.equal(patchFieldOffset(insns, CT_STATUS_MARKER, 128), 0, 'every marker was patched');
  });

  for (const name of ['twill_from_pod', 'twill_to_pod']) it(`has ${name}, and every map reference relocates to an ld_imm64 with a map fd`, () => {
    const prog = elf.programs.find((p) => p.name === name);
    assert.ok(prog);
    assert.ok(prog.mapRefs.length > 0);
    const fds = new Map(elf.maps.map((m, i) => [m.name, 100 + i]));
    const linked = linkMaps(prog, fds);
    for (const ref of prog.mapRefs) {
      assert.equal(linked[ref.offset], 0x18);
      assert.equal(linked[ref.offset + 1]! >> 4, 1, 'src_reg = BPF_PSEUDO_MAP_FD');
      assert.equal(linked.readInt32LE(ref.offset + 4), fds.get(ref.map));
    }
  });

  it('rejects what it cannot load', () => {
    assert.throws(() => parseElf(Buffer.from('not an elf at all, not at all')), /ELF/);
    const wrongMachine = Buffer.from(object);
    wrongMachine.writeUInt16LE(62, 18);
    assert.throws(() => parseElf(wrongMachine), /e_machine/);
  });

  it('matches its source (rebuilt with clang)', (t) => {
    const clang = spawnSync('clang', ['--version']);
    if (clang.status !== 0) {
      t.skip('clang is not installed: cannot rebuild bpf/twill_tc.o to compare');
      return;
    }
    const dir = mkdtempSync(`${tmpdir()}/twill-bpf-`);
    try {
      const arch = spawnSync('uname', ['-m'], { encoding: 'utf8' }).stdout.trim();
      const r = spawnSync('clang', ['-O2', '-g0', '-target', 'bpf', '-Wall', '-Werror', `-I/usr/include/${arch}-linux-gnu`, '-c', `${ROOT}/bpf/twill_tc.c`, '-o', `${dir}/t.o`], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.ok(readFileSync(`${dir}/t.o`).equals(object), 'bpf/twill_tc.o is stale: run `make bpf` and commit it');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('map key and value layouts', () => {
  it('agree with bpf/twill_maps.h (compiled, sizes and offsets printed by the C compiler)', (t) => {
    const cc = spawnSync('cc', ['--version']);
    if (cc.status !== 0) {
      t.skip('no C compiler');
      return;
    }
    const dir = mkdtempSync(`${tmpdir()}/twill-layout-`);
    try {
      writeFileSync(`${dir}/l.c`, `#include <stdio.h>
#include <stddef.h>
#include "twill_maps.h"
int main(void) {
  printf("%zu %zu %zu %zu %zu %zu %zu %d %d %d\\n", sizeof(struct ep_key), sizeof(struct ep_value), sizeof(struct ep_counters),
    offsetof(struct ep_value, flags), offsetof(struct ep_value, pod_mac), offsetof(struct ep_value, host_mac),
    offsetof(struct ep_counters, spoofed_packets), EP_F_NO_FAST, EP_F_PENDING, TWILL_CT_STATUS_MARKER);
  printf("%zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %d %d %d %d %d %d %d %d %d %d %zu\\n", sizeof(struct ipc_key), sizeof(struct ipc_value), sizeof(struct pol_key), sizeof(struct pol_value),
    offsetof(struct ipc_key, family), offsetof(struct ipc_key, addr), offsetof(struct pol_key, slot), offsetof(struct pol_key, identity), offsetof(struct pol_key, dir), offsetof(struct pol_key, port),
    EP_F_POL_IN, EP_F_POL_OUT, ID_ANY, ID_HOST, ID_WORLD, ID_UNKNOWN, IPC_F_HOST, POL_INGRESS, POL_EGRESS, POL_KEY_BITS, offsetof(struct ep_counters, policy_out_bytes));
  printf("%zu\\n", offsetof(struct ep_value, policy_slot));
  printf("%zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu\\n", sizeof(struct flow_key), sizeof(struct flow_value), sizeof(struct flow_event),
    offsetof(struct flow_key, proto), offsetof(struct flow_key, sport), offsetof(struct flow_key, dport), offsetof(struct flow_key, saddr), offsetof(struct flow_key, daddr),
    offsetof(struct flow_value, packets), offsetof(struct flow_value, bytes), offsetof(struct flow_value, allowed_out), offsetof(struct flow_value, allowed_in), offsetof(struct flow_value, slot),
    offsetof(struct flow_value, verdict), offsetof(struct flow_value, reason), offsetof(struct flow_value, point), offsetof(struct flow_value, tcp_flags), offsetof(struct flow_value, reply),
    offsetof(struct flow_value, dir), offsetof(struct flow_value, ifindex), offsetof(struct flow_event, value));
  printf("%d %d %d %d %d %d %d %d %d %d %d\\n", FLOW_FORWARDED, FLOW_DROPPED, EV_NEW, EV_DROP, EV_END, OBS_READER, OBS_LOST, OBS_CONF, OBS_CONF_OFF, (int)offsetof(struct flow_event, kind), (int)offsetof(struct flow_event, key));
  printf("%zu %zu %zu %zu %zu %zu %zu %d\\n", sizeof(struct frag_key), sizeof(struct frag_value), sizeof(struct echo_key),
    offsetof(struct ep_counters, records_suppressed), offsetof(struct ep_counters, budget_tat), offsetof(struct frag_key, ifindex), offsetof(struct echo_key, ifindex), OBS_RECORD_TTL);
  printf("%zu %zu %d %d\\n", offsetof(struct ipc_value, flags), offsetof(struct ipc_value, ns), IPC_F_POD, CLASS_CLUSTER_POD);
  return 0;
}
`);
      const r = spawnSync('cc', [`-I${ROOT}/bpf`, '-o', `${dir}/l`, `${dir}/l.c`], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const [line1, line2, line3, line4, line5, line6, line7] = spawnSync(`${dir}/l`, { encoding: 'utf8' }).stdout.trim().split('\n').map((l) => l.split(' ').map(Number));
      assert.deepEqual(line6, [FRAG_KEY_SIZE, FRAG_VALUE_SIZE, ECHO_KEY_SIZE, 80, 88, FRAG_KEY_SIZE - 4, ECHO_KEY_SIZE - 4, OBS_RECORD_TTL]);
      // records_suppressed is the last field sumCounters reads; budget_tat (the budget's state) is not summed.
      const cv = Buffer.alloc(COUNTERS_SIZE * 2);
      cv.writeBigUInt64LE(3n, 80);
      cv.writeBigUInt64LE(4n, COUNTERS_SIZE + 80);
      cv.writeBigUInt64LE(99n, 88);
      assert.equal(sumCounters(cv, 2).recordsSuppressed, 7n);
      assert.equal(Object.keys(sumCounters(cv, 2)).length, 11);
      assert.deepEqual(line3, [epValue({ ifindex: 0, flags: 0, podMac: '02:00:00:00:00:01', hostMac: '02:00:00:00:00:02', policySlot: 0x01020304 }).indexOf(Buffer.from([4, 3, 2, 1]))]);
      const v = epValue({ ifindex: 1, flags: 0x01020304, podMac: '02:00:00:00:00:01', hostMac: '02:00:00:00:00:02' });
      assert.deepEqual(line1, [EP_KEY_SIZE, EP_VALUE_SIZE, COUNTERS_SIZE, v.indexOf(Buffer.from([4, 3, 2, 1])), v.indexOf(Buffer.from([2, 0, 0, 0, 0, 1])), v.indexOf(Buffer.from([2, 0, 0, 0, 0, 2])), 32, EP_F_NO_FAST, EP_F_PENDING, CT_STATUS_MARKER]);
      // The byte positions polKey writes, found by value: slot 0x0a0b0c0d, identity 0x01020304, dir 7, port 0x1234.
      const k = polKey({ slot: 0x0a0b0c0d, identity: 0x01020304, dir: 7, proto: 6, protoBits: 8, port: 0x1234, portBits: 16 });
      assert.deepEqual(line2, [IPC_KEY_SIZE, IPC_VALUE_SIZE, POL_KEY_SIZE, POL_VALUE_SIZE, 4, 8, k.indexOf(Buffer.from([0x0d, 0x0c, 0x0b, 0x0a])), k.indexOf(Buffer.from([4, 3, 2, 1])), k.indexOf(7), k.indexOf(Buffer.from([0x12, 0x34])),
        EP_F_POL_IN, EP_F_POL_OUT, ID_ANY, ID_HOST, ID_WORLD, ID_UNKNOWN, IPC_F_HOST, POL_INGRESS, POL_EGRESS, k.readUInt32LE(0), 72]);
      // The flow layouts, checked by what the parsers read back from bytes put where the C compiler puts each field.
      const [fk, fv, fe, proto, sport, dport, saddr, daddr, packets, bytes, aOut, aIn, slot, verdict, reason, point, flags, reply, fdir, ifindex, evValue] = line4!;
      assert.deepEqual([fk, fv, fe, evValue], [FLOW_KEY_SIZE, FLOW_VALUE_SIZE, FLOW_EVENT_SIZE, FLOW_EVENT_SIZE - FLOW_VALUE_SIZE]);
      const kb = Buffer.alloc(FLOW_KEY_SIZE);
      kb.writeUInt32LE(6, 0);
      kb[proto!] = 17;
      kb.writeUInt16BE(1234, sport!);
      kb.writeUInt16BE(80, dport!);
      addrBytes(parseAddr('fd00::1')!).copy(kb, saddr!);
      addrBytes(parseAddr('fd00::2')!).copy(kb, daddr!);
      const pk = parseFlowKey(kb);
      assert.deepEqual([formatAddr(pk.src), formatAddr(pk.dst), pk.proto, pk.sport, pk.dport], ['fd00::1', 'fd00::2', 17, 1234, 80]);
      assert.ok(flowKey(pk).equals(kb));
      const vb = Buffer.alloc(FLOW_VALUE_SIZE);
      vb.writeBigUInt64LE(5n, 8);
      vb.writeBigUInt64LE(7n, packets!);
      vb.writeBigUInt64LE(9n, bytes!);
      vb.writeUInt32LE(3, aOut!);
      vb.writeUInt32LE(4, aIn!);
      vb.writeUInt32LE(11, slot!);
      vb[verdict!] = 2; vb[reason!] = 133; vb[point!] = 101; vb[flags!] = 0x12; vb[reply!] = 2; vb[fdir!] = 1;
      vb.writeUInt32LE(42, ifindex!);
      assert.deepEqual(parseFlowValue(vb), { firstNs: 0n, lastNs: 5n, packets: 7n, bytes: 9n, allowedOut: 2, allowedIn: 3, slot: 11, verdict: 2, reason: 133, point: 101, tcpFlags: 0x12, reply: true, dir: 1, ifindex: 42 });
      assert.deepEqual(line5, [FLOW_FORWARDED, FLOW_DROPPED, EV_NEW, EV_DROP, EV_END, OBS_READER, OBS_LOST, OBS_CONF, OBS_CONF_OFF, 8, 12]);
      // The ipcache value: flags and the namespace class where ipcValue writes them.
      const iv = ipcValue({ identity: 1, flags: 0x01020304, ns: 0x05060708 });
      assert.deepEqual(line7, [iv.indexOf(Buffer.from([4, 3, 2, 1])), iv.indexOf(Buffer.from([8, 7, 6, 5])), IPC_F_POD, CLASS_CLUSTER_POD]);
      assert.deepEqual(parseIpcValue(iv), { identity: 1, flags: 0x01020304, ns: 0x05060708 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('round-trip endpoint keys and values', () => {
    for (const s of ['10.1.2.3', 'fd00::1:2']) assert.equal(formatAddr(epKeyAddr(epKey(parseAddr(s)!))), s);
    const v = { ifindex: 77, flags: 1, podMac: '02:aa:bb:cc:dd:ee', hostMac: '06:11:22:33:44:55' };
    assert.deepEqual(parseEpValue(epValue(v)), v);
    assert.deepEqual(parseEpValue(epValue({ ...v, policySlot: 0x01020304 })), { ...v, policySlot: 0x01020304 });
    assert.equal(epKey(parseAddr('10.1.2.3')!).length, EP_KEY_SIZE);
  });

  it('round-trip ipcache and policy keys; prefix lengths count the whole identity, then protocol and port bits', () => {
    const k = ipcKey(parseAddr('10.1.0.0')!, 16);
    assert.equal(k.readUInt32LE(0), 48);
    assert.deepEqual({ ...parseIpcKey(k), addr: formatAddr(parseIpcKey(k).addr) }, { addr: '10.1.0.0', prefix: 16 });
    const any = { slot: 9, identity: 300, dir: POL_INGRESS, proto: 0, protoBits: 0 as const, port: 0, portBits: 0 };
    assert.equal(polKey(any).readUInt32LE(0), 72);
    assert.deepEqual(parsePolKey(polKey(any)), any);
    const block = { slot: 9, identity: 300, dir: POL_EGRESS, proto: 17, protoBits: 8 as const, port: 1024, portBits: 6 };
    assert.equal(polKey(block).readUInt32LE(0), 86);
    assert.deepEqual(parsePolKey(polKey(block)), block);
  });
});
