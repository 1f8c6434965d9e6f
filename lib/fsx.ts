// The file-system helpers of lib/sys/fsx.ts over lib/sys/fs.ts: what every layer above the FFI uses.
import * as fs from './sys/fs.js';
import { fsHelpers } from './sys/fsx.js';

export { TMP_PREFIX } from './sys/fsx.js';
export const { mkdirs, writeAll, writeAtomic } = fsHelpers(fs);
