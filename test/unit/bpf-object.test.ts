import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, it } from 'node:test';
import { linkMaps, parseElf } from '../../lib/bpf/elf.js';
import { LAYOUTS, POL_KEY_BITS, TWILL_CT_STATUS_MARKER } from '../../lib/bpf/abi.generated.js';
import { abiSourceOf, btfSection, parseAbi } from '../../lib/bpf/btf-abi.js';
import {
  COUNTERS_SIZE, CT_STATUS_MARKER, EP_F_NO_FAST, EP_F_PENDING, EP_F_POL_IN, EP_F_POL_OUT, EP_KEY_SIZE, EP_VALUE_SIZE, ID_ANY, ID_HOST, ID_UNKNOWN, ID_WORLD, IPC_F_HOST, IPC_KEY_SIZE, IPC_VALUE_SIZE,
  MAP_NAMES, FRAG_KEY_SIZE, FRAG_VALUE_SIZE, ECHO_KEY_SIZE, ECHO_VALUE_SIZE, OBS_RECORD_TTL, sumCounters, POL_EGRESS, FLOW_KEY_SIZE, FLOW_VALUE_SIZE, FLOW_EVENT_SIZE, FLOW_FORWARDED, FLOW_DROPPED, EV_NEW, EV_DROP, EV_END, OBS_READER, OBS_LOST, OBS_CONF, OBS_CONF_OFF, flowKey, parseFlowKey, parseFlowValue, POL_INGRESS, POL_KEY_SIZE, POL_VALUE_SIZE, epKey, epKeyAddr, epValue, ipcKey, ipcValue, parseIpcValue, IPC_F_POD, CLASS_CLUSTER_POD, parseEpValue, parseIpcKey, parsePolKey, polKey, polValue,
} from '../../lib/bpf/layout.js';
import { linkKfuncs, patchFieldOffset } from '../../lib/bpf/elf.js';
import { MapType } from '../../lib/bpf/sys.js';
import { addrBytes, formatAddr, parseAddr } from '../../lib/net/ip.js';
import { ROOT } from '../helpers/twill.js';
import { LAYOUTS as SOCK_LAYOUTS } from '../../lib/bpf/abi-sock.generated.js';
import { NODEPORT_OBJECT, SOCK_OBJECT } from '../../lib/bpf/manifest.js';
import { parseSrcKey, srcKey } from '../../lib/datapath/services-src.js';
import { LB_SRC_MAX } from '../../lib/bpf/abi-sock.generated.js';
import { beValue, feKey, feValue, parseBeValue, parseFeKey } from '../../lib/datapath/services-encode.js';

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

  it('matches its source (rebuilt with clang as `make bpf` builds it)', (t) => {
    const clang = spawnSync('clang', ['--version']);
    if (clang.status !== 0) {
      t.skip('clang is not installed: cannot rebuild bpf/twill_tc.o to compare');
      return;
    }
    const dir = mkdtempSync(`${tmpdir()}/twill-bpf-`);
    try {
      const arch = spawnSync('uname', ['-m'], { encoding: 'utf8' }).stdout.trim();
      const root = realpathSync(ROOT);
      const r = spawnSync('clang', ['-O2', '-g', `-fdebug-prefix-map=${root}=.`, '-target', 'bpf', '-Wall', '-Werror', `-I/usr/include/${arch}-linux-gnu`, '-c', 'bpf/twill_tc.c', '-o', `${dir}/t.o`], { encoding: 'utf8', cwd: root });
      assert.equal(r.status, 0, r.stderr);
      assert.ok(readFileSync(`${dir}/t.o`).equals(object), 'bpf/twill_tc.o is stale: run `make bpf` and commit it');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('carries BTF the loader skips, and no path of the machine that built it', () => {
    assert.ok(btfSection(object), 'built with -g: it has a .BTF section');
    assert.equal(object.indexOf(realpathSync(ROOT)), -1);
  });
});

describe('the ABI generated from the object (lib/bpf/abi.generated.ts)', () => {
  it('is the generator\'s output on the committed object (else: make abi)', () => {
    assert.equal(readFileSync(`${ROOT}/lib/bpf/abi.generated.ts`, 'utf8'), abiSourceOf(object, 'bpf/twill_tc.o'));
  });

  it('holds every enum and struct of struct twill_abi, with C\'s values', () => {
    const abi = parseAbi(btfSection(object)!);
    const value = (n: string): number | undefined => abi.enums.flatMap((e) => e.values).find((v) => v.name === n)?.value;
    // Hubble's DropReason and TraceObservationPoint numbers.
    assert.deepEqual([value('REASON_INVALID_SOURCE_IP'), value('REASON_POLICY_DENIED'), value('REASON_FRAG_NOT_FOUND'), value('POINT_TO_STACK'), value('POINT_TO_ENDPOINT')], [132, 133, 165, 3, 101]);
    assert.equal(value('TWILL_CT_STATUS_MARKER'), 0x7ee8);
    assert.deepEqual(abi.structs.map((x) => x.name).sort(), ['echo_key', 'ep_counters', 'ep_key', 'ep_value', 'flow_event', 'flow_key', 'flow_value', 'frag_key', 'frag_value', 'ipc_key', 'ipc_value', 'pol_key', 'pol_value']);
  });

  it('refuses an object without BTF', () => {
    const noBtf = Buffer.from(object);
    // Section names share their tails (.rel.BTF holds .BTF's): rename every one that ends so.
    for (let at = noBtf.indexOf('.BTF\0'); at >= 0; at = noBtf.indexOf('.BTF\0', at + 1)) noBtf.write('X', at + 1, 'latin1');
    assert.equal(btfSection(noBtf), undefined);
    assert.throws(() => abiSourceOf(noBtf, 'x.o'), /no \.BTF section: build it with -g/);
  });
});

describe('map key and value layouts', () => {
  it('agree with the generated layouts: the encoders write each field at its C offset', () => {
    const L = LAYOUTS;
    assert.deepEqual([EP_KEY_SIZE, EP_VALUE_SIZE, COUNTERS_SIZE, IPC_KEY_SIZE, IPC_VALUE_SIZE, POL_KEY_SIZE, POL_VALUE_SIZE, FLOW_KEY_SIZE, FLOW_VALUE_SIZE, FLOW_EVENT_SIZE, FRAG_KEY_SIZE, FRAG_VALUE_SIZE, ECHO_KEY_SIZE],
      [L.ep_key.size, L.ep_value.size, L.ep_counters.size, L.ipc_key.size, L.ipc_value.size, L.pol_key.size, L.pol_value.size, L.flow_key.size, L.flow_value.size, L.flow_event.size, L.frag_key.size, L.frag_value.size, L.echo_key.size]);
    assert.equal(CT_STATUS_MARKER, TWILL_CT_STATUS_MARKER);
    // The endpoint key and value, found by value where epKey/epValue wrote them.
    const ek = epKey(parseAddr('fd00::1:2')!);
    assert.equal(ek.readUInt32LE(L.ep_key.offsets.family), 6);
    assert.equal(ek.indexOf(addrBytes(parseAddr('fd00::1:2')!)), L.ep_key.offsets.addr);
    const v = epValue({ ifindex: 0x0a0b0c0d, flags: 0x01020304, podMac: '02:00:00:00:00:01', hostMac: '02:00:00:00:00:02', policySlot: 0x05060708 });
    assert.deepEqual([v.indexOf(Buffer.from([0x0d, 0x0c, 0x0b, 0x0a])), v.indexOf(Buffer.from([4, 3, 2, 1])), v.indexOf(Buffer.from([2, 0, 0, 0, 0, 1])), v.indexOf(Buffer.from([2, 0, 0, 0, 0, 2])), v.indexOf(Buffer.from([8, 7, 6, 5]))],
      [L.ep_value.offsets.ifindex, L.ep_value.offsets.flags, L.ep_value.offsets.pod_mac, L.ep_value.offsets.host_mac, L.ep_value.offsets.policy_slot]);
    // The counters sumCounters reads, in C's order; budget_tat (the budget's state) is not summed.
    const names = ['redirectPackets', 'redirectBytes', 'passPackets', 'passBytes', 'spoofedPackets', 'spoofedBytes', 'policyInPackets', 'policyInBytes', 'policyOutPackets', 'policyOutBytes', 'recordsSuppressed'] as const;
    const cOrder = ['redirect_packets', 'redirect_bytes', 'pass_packets', 'pass_bytes', 'spoofed_packets', 'spoofed_bytes', 'policy_in_packets', 'policy_in_bytes', 'policy_out_packets', 'policy_out_bytes', 'records_suppressed'] as const;
    const cv = Buffer.alloc(COUNTERS_SIZE * 2);
    cOrder.forEach((f, i) => {
      cv.writeBigUInt64LE(BigInt(i + 1), L.ep_counters.offsets[f]);
      cv.writeBigUInt64LE(BigInt(100 * (i + 1)), COUNTERS_SIZE + L.ep_counters.offsets[f]);
    });
    cv.writeBigUInt64LE(99n, L.ep_counters.offsets.budget_tat);
    const sum = sumCounters(cv, 2);
    assert.deepEqual(names.map((n) => sum[n]), names.map((_, i) => BigInt(101 * (i + 1))));
    assert.equal(Object.keys(sum).length, names.length);
    // ipcache key and value.
    const ik = ipcKey(parseAddr('10.1.0.0')!, 16);
    assert.deepEqual([ik.readUInt32LE(L.ipc_key.offsets.prefixlen), ik.readUInt32LE(L.ipc_key.offsets.family), ik.indexOf(Buffer.from([10, 1, 0, 0]))], [48, 4, L.ipc_key.offsets.addr]);
    const iv = ipcValue({ identity: 0x0a0b0c0d, flags: 0x01020304, ns: 0x05060708 });
    assert.deepEqual([iv.indexOf(Buffer.from([0x0d, 0x0c, 0x0b, 0x0a])), iv.indexOf(Buffer.from([4, 3, 2, 1])), iv.indexOf(Buffer.from([8, 7, 6, 5]))], [L.ipc_value.offsets.identity, L.ipc_value.offsets.flags, L.ipc_value.offsets.ns]);
    assert.deepEqual(parseIpcValue(iv), { identity: 0x0a0b0c0d, flags: 0x01020304, ns: 0x05060708 });
    // The policy key: slot 0x0a0b0c0d, identity 0x01020304, dir 7, proto 0x2f, port 0x1234; a whole key's prefix is POL_KEY_BITS.
    const k = polKey({ slot: 0x0a0b0c0d, identity: 0x01020304, dir: 7, proto: 0x2f, protoBits: 8, port: 0x1234, portBits: 16 });
    assert.deepEqual([k.readUInt32LE(L.pol_key.offsets.prefixlen), k.indexOf(Buffer.from([0x0d, 0x0c, 0x0b, 0x0a])), k.indexOf(Buffer.from([4, 3, 2, 1])), k.indexOf(7), k.indexOf(0x2f), k.indexOf(Buffer.from([0x12, 0x34]))],
      [POL_KEY_BITS, L.pol_key.offsets.slot, L.pol_key.offsets.identity, L.pol_key.offsets.dir, L.pol_key.offsets.proto, L.pol_key.offsets.port]);
    assert.equal(polValue(0x01020304).indexOf(Buffer.from([4, 3, 2, 1])), L.pol_value.offsets.policy);
    // The flow layouts, checked by what the parsers read back from bytes put at C's offsets.
    const fo = L.flow_key.offsets;
    const kb = Buffer.alloc(FLOW_KEY_SIZE);
    kb.writeUInt32LE(6, fo.family);
    kb[fo.proto] = 17;
    kb.writeUInt16BE(1234, fo.sport);
    kb.writeUInt16BE(80, fo.dport);
    addrBytes(parseAddr('fd00::1')!).copy(kb, fo.saddr);
    addrBytes(parseAddr('fd00::2')!).copy(kb, fo.daddr);
    const pk = parseFlowKey(kb);
    assert.deepEqual([formatAddr(pk.src), formatAddr(pk.dst), pk.proto, pk.sport, pk.dport], ['fd00::1', 'fd00::2', 17, 1234, 80]);
    assert.ok(flowKey(pk).equals(kb));
    const vo = L.flow_value.offsets;
    const vb = Buffer.alloc(FLOW_VALUE_SIZE);
    vb.writeBigUInt64LE(3n, vo.first_ns);
    vb.writeBigUInt64LE(5n, vo.last_ns);
    vb.writeBigUInt64LE(7n, vo.packets);
    vb.writeBigUInt64LE(9n, vo.bytes);
    vb.writeUInt32LE(3, vo.allowed_out);
    vb.writeUInt32LE(4, vo.allowed_in);
    vb.writeUInt32LE(11, vo.slot);
    vb[vo.verdict] = 2; vb[vo.reason] = 133; vb[vo.point] = 101; vb[vo.tcp_flags] = 0x12; vb[vo.reply] = 2; vb[vo.dir] = 1;
    vb.writeUInt32LE(42, vo.ifindex);
    assert.deepEqual(parseFlowValue(vb), { firstNs: 3n, lastNs: 5n, packets: 7n, bytes: 9n, allowedOut: 2, allowedIn: 3, slot: 11, verdict: 2, reason: 133, point: 101, tcpFlags: 0x12, reply: true, dir: 1, ifindex: 42 });
    // An event is its time, kind, key and value: parseFlowKey/parseFlowValue read it at these offsets.
    assert.deepEqual([L.flow_event.offsets.key, L.flow_event.offsets.value, L.flow_event.offsets.kind], [12, FLOW_EVENT_SIZE - FLOW_VALUE_SIZE, 8]);
    assert.deepEqual([L.frag_key.offsets.ifindex, L.echo_key.offsets.ifindex], [FRAG_KEY_SIZE - 4, ECHO_KEY_SIZE - 4]);
    // The values themselves are pinned: maps pinned by the previous version hold them.
    assert.deepEqual([FLOW_FORWARDED, FLOW_DROPPED, EV_NEW, EV_DROP, EV_END, OBS_READER, OBS_LOST, OBS_CONF, OBS_CONF_OFF, OBS_RECORD_TTL], [1, 2, 1, 2, 3, 0, 1, 2, 1, 3]);
    assert.deepEqual([EP_F_NO_FAST, EP_F_PENDING, EP_F_POL_IN, EP_F_POL_OUT, ID_ANY, ID_HOST, ID_WORLD, ID_UNKNOWN, CLASS_CLUSTER_POD, IPC_F_HOST, IPC_F_POD, POL_INGRESS, POL_EGRESS], [1, 2, 4, 8, 0, 1, 2, 3, 4, 1, 2, 1, 2]);
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

describe('the committed socket object and its ABI (lib/bpf/abi-sock.generated.ts)', () => {
  const sock = readFileSync(`${ROOT}/bpf/twill_sock.o`);

  it('is the generator\'s output on the committed object (else: make abi)', () => {
    assert.equal(readFileSync(`${ROOT}/lib/bpf/abi-sock.generated.ts`, 'utf8'), abiSourceOf(sock, 'bpf/twill_sock.o', 'bpf/twill_sock_abi.h'));
  });

  it('holds every enum and struct of its struct twill_abi, and declares the maps the manifest lists with them', () => {
    const abi = parseAbi(btfSection(sock)!);
    assert.deepEqual(abi.structs.map((x) => x.name).sort(), ['lb_aff_key', 'lb_aff_val', 'lb_be', 'lb_fe_key', 'lb_fe_val', 'lb_rev_key', 'lb_rev_val', 'lb_src_key']);
    const value = (n: string): number | undefined => abi.enums.flatMap((e) => e.values).find((v) => v.name === n)?.value;
    assert.equal(value('LB_ERR_CONNREFUSED'), 111);
    const L = SOCK_LAYOUTS;
    const byName = new Map(parseElf(sock).maps.map((m) => [m.name, m]));
    assert.deepEqual(byName.get('lb_fe'), { name: 'lb_fe', type: MapType.Hash, keySize: L.lb_fe_key.size, valueSize: L.lb_fe_val.size, maxEntries: 65536, flags: 1 });
    assert.deepEqual(byName.get('lb_slots'), { name: 'lb_slots', type: MapType.Array, keySize: 4, valueSize: 4, maxEntries: 262144, flags: 0 });
    assert.deepEqual(byName.get('lb_be'), { name: 'lb_be', type: MapType.Array, keySize: 4, valueSize: L.lb_be.size, maxEntries: 131072, flags: 0 });
    assert.deepEqual(byName.get('lb_aff'), { name: 'lb_aff', type: MapType.LruHash, keySize: L.lb_aff_key.size, valueSize: L.lb_aff_val.size, maxEntries: 16384, flags: 0 });
    assert.deepEqual(byName.get('lb_rev'), { name: 'lb_rev', type: MapType.LruHash, keySize: L.lb_rev_key.size, valueSize: L.lb_rev_val.size, maxEntries: 32768, flags: 0 });
    assert.deepEqual([...byName.keys()].filter((n) => !n.startsWith('.')).sort(), Object.keys(SOCK_OBJECT.maps).sort());
    assert.deepEqual(parseElf(sock).programs.map((p) => p.section).sort(), SOCK_OBJECT.programs.map((p) => p.section).sort());
  });

  it('the encoders write each field at its C offset', () => {
    const L = SOCK_LAYOUTS;
    const k = feKey({ family: 6, address: 'fd00::a:b', port: 0x1f90, protocol: 'SCTP', scope: 'internal' });
    assert.equal(k.length, L.lb_fe_key.size);
    assert.equal(k.readUInt32LE(L.lb_fe_key.offsets.family), 6);
    assert.equal(k.indexOf(addrBytes(parseAddr('fd00::a:b')!)), L.lb_fe_key.offsets.addr);
    assert.equal(k.readUInt16BE(L.lb_fe_key.offsets.port), 0x1f90);
    assert.deepEqual([k[L.lb_fe_key.offsets.proto], k[L.lb_fe_key.offsets.scope]], [132, 1]);
    assert.deepEqual(parseFeKey(k), { family: 6, address: 'fd00::a:b', port: 0x1f90, protocol: 'SCTP', scope: 'internal' });
    const v = feValue({ svcId: 0x01020304, base: 0x05060708, count: 0x0a0b, term: 0x0c0d, flags: 0x0e0f, cap: 0x1011, affinityTimeout: 0x12131415 });
    assert.deepEqual(
      [v.readUInt32LE(L.lb_fe_val.offsets.svc_id), v.readUInt32LE(L.lb_fe_val.offsets.base), v.readUInt16LE(L.lb_fe_val.offsets.count), v.readUInt16LE(L.lb_fe_val.offsets.term), v.readUInt16LE(L.lb_fe_val.offsets.flags), v.readUInt16LE(L.lb_fe_val.offsets.cap), v.readUInt32LE(L.lb_fe_val.offsets.affinity_timeout)],
      [0x01020304, 0x05060708, 0x0a0b, 0x0c0d, 0x0e0f, 0x1011, 0x12131415]);
    const b = beValue({ family: 4, address: '10.1.2.3', port: 8080, protocol: 'UDP', flags: 3, svcId: 0x0a0b0c0d });
    assert.deepEqual([b.length, b.readUInt32LE(L.lb_be.offsets.family), b.indexOf(Buffer.from([10, 1, 2, 3])), b.readUInt16BE(L.lb_be.offsets.port), b[L.lb_be.offsets.proto], b[L.lb_be.offsets.flags], b.readUInt32LE(L.lb_be.offsets.svc_id)],
      [L.lb_be.size, 4, L.lb_be.offsets.addr, 8080, 17, 3, 0x0a0b0c0d]);
    assert.deepEqual(parseBeValue(b), { family: 4, address: '10.1.2.3', port: 8080, protocol: 'UDP', flags: 3, svcId: 0x0a0b0c0d });
  });
});

describe('the committed nodeport object (bpf/twill_nodeport.o)', () => {
  const np = readFileSync(`${ROOT}/bpf/twill_nodeport.o`);

  it('declares the maps the manifest lists; lb_src is the LPM trie of struct lb_src_key', () => {
    const byName = new Map(parseElf(np).maps.map((m) => [m.name, m]));
    assert.deepEqual([...byName.keys()].filter((n) => !n.startsWith('.')).sort(), Object.keys(NODEPORT_OBJECT.maps).sort());
    assert.deepEqual(byName.get('lb_src'), { name: 'lb_src', type: MapType.LpmTrie, keySize: SOCK_LAYOUTS.lb_src_key.size, valueSize: 1, maxEntries: LB_SRC_MAX, flags: 1 });
  });

  it('source range keys: prefixlen counts svc_id and family whole, then the range; fields at their C offsets', () => {
    const L = SOCK_LAYOUTS.lb_src_key;
    const k = srcKey({ svcId: 0x01020304, cidr: { addr: parseAddr('203.0.113.77')!, prefix: 24 } });
    assert.deepEqual([k.length, k.readUInt32LE(L.offsets.prefixlen), k.readUInt32LE(L.offsets.svc_id), k.readUInt32LE(L.offsets.family), k.indexOf(Buffer.from([203, 0, 113, 0])), k[L.offsets.addr + 3]],
      [L.size, 88, 0x01020304, 4, L.offsets.addr, 0]);
    const p = parseSrcKey(k);
    assert.deepEqual([p.svcId, formatAddr(p.cidr.addr), p.cidr.prefix], [0x01020304, '203.0.113.0', 24]);
    const k6 = srcKey({ svcId: 7, cidr: { addr: parseAddr('2001:db8::1')!, prefix: 0 } });
    assert.deepEqual([k6.readUInt32LE(L.offsets.prefixlen), k6.readUInt32LE(L.offsets.family), k6.subarray(L.offsets.addr).every((x) => x === 0)], [64, 6, true]);
  });
});
