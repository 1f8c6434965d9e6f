// make abi: writes lib/bpf/abi.generated.ts from the tc object's BTF, so the constants and map
// layouts of bpf/twill_maps.h are defined once, in C.
import { readFileSync, writeFileSync } from 'node:fs';
import { abiSourceOf } from '../../lib/bpf/btf-abi.js';

const [object = 'bpf/twill_tc.o', out = 'lib/bpf/abi.generated.ts'] = process.argv.slice(2);
writeFileSync(out, abiSourceOf(readFileSync(object), object));
