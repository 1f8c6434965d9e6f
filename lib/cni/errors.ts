// CNI error codes (SPEC.md §5) and the one error type every verb throws.

export const Code = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnv: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  NotAvailable: 50,
  LimitedConnectivity: 51,
  Internal: 999,
} as const;

export class CniError extends Error {
  constructor(
    readonly code: number,
    msg: string,
    readonly details = '',
  ) {
    super(msg);
  }
}

export interface ErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

const IO_CODES = new Set(['ENOSPC', 'EDQUOT', 'EFBIG', 'EIO', 'EROFS']);

export function toErrorJson(err: unknown, cniVersion: string): ErrorJson {
  if (err instanceof CniError) {
    return { cniVersion, code: err.code, msg: err.message, ...(err.details ? { details: err.details } : {}) };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  // A disk that is full or failing is the spec's I/O failure, not a bug of the plugin.
  const io = IO_CODES.has((e as NodeJS.ErrnoException).code ?? '');
  return { cniVersion, code: io ? Code.IoFailure : Code.Internal, msg: e.message };
}
