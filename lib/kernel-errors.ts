// The one place where the kernel layer's typed errors become CNI error codes.
import { Code, CniError } from './cni/errors.js';
import { DumpInterrupted, InterfaceExists, NetnsGone, NetnsUnusable, Vanished } from './sys/errors.js';
import { SysError } from './sys/libc.js';

export function toCni(e: unknown): unknown {
  if (e instanceof CniError) return e;
  if (e instanceof NetnsGone) return new CniError(Code.InvalidEnv, `CNI_NETNS ${e.message}`);
  if (e instanceof NetnsUnusable) return new CniError(Code.InvalidEnv, `CNI_NETNS ${e.message}`);
  if (e instanceof InterfaceExists) return new CniError(Code.InvalidConfig, e.message);
  if (e instanceof Vanished || e instanceof DumpInterrupted) return new CniError(Code.TryAgainLater, e.message);
  if (e instanceof SysError) return new CniError(Code.Internal, e.message);
  return e;
}
