// make abi: writes lib/bpf/abi.generated.ts from the tc object's BTF (and
// lib/bpf/abi-sock.generated.ts from the socket object's), so the constants and map layouts of
// bpf/twill_maps.h (bpf/twill_sock_abi.h) are defined once, in C.
import { readFileSync, writeFileSync } from 'node:fs';
import { abiSourceOf } from '../../lib/bpf/btf-abi.js';

const [object = 'bpf/twill_tc.o', out = 'lib/bpf/abi.generated.ts', defs] = process.argv.slice(2);
writeFileSync(out, abiSourceOf(readFileSync(object), object, defs));
