// JSON-line logs: stderr (warnings and errors, or everything at debug) and the optional
// logFile (at logLevel). stdout is reserved for the one result or error document.
import { closeSync, constants, fstatSync, openSync } from './sys/fs.js';
import { writeAll } from './fsx.js';
import type { LogLevel } from './config/types.js';
import { writeErr } from './stdio.js';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, unknown>;

export class Logger {
  private fileLevel: LogLevel = 'info';
  private stderrLevel: LogLevel = 'warn';
  private file: string | undefined;
  private base: Fields = {};

  configure(opts: { logFile?: string | undefined; logLevel?: LogLevel | undefined }, base: Fields): void {
    this.file = opts.logFile;
    this.fileLevel = opts.logLevel ?? 'info';
    this.stderrLevel = this.fileLevel === 'debug' ? 'debug' : 'warn';
    this.base = base;
  }

  private write(level: LogLevel, msg: string, fields: Fields): void {
    const toStderr = RANK[level] >= RANK[this.stderrLevel];
    const toFile = this.file !== undefined && RANK[level] >= RANK[this.fileLevel];
    if (!toStderr && !toFile) return;
    const line = `${JSON.stringify({ time: new Date().toISOString(), level, msg, ...this.base, ...fields })}\n`;
    if (toStderr) writeErr(line);
    if (toFile) appendNoFollow(this.file!, line);
  }

  debug(msg: string, f: Fields = {}): void { this.write('debug', msg, f); }
  info(msg: string, f: Fields = {}): void { this.write('info', msg, f); }
  warn(msg: string, f: Fields = {}): void { this.write('warn', msg, f); }
  error(msg: string, f: Fields = {}): void { this.write('error', msg, f); }
}

/**
 * Appends without following a symlink planted at the log path and without blocking on a
 * FIFO or device put there (O_NONBLOCK, then only a regular file is written); a failure
 * never fails the verb.
 */
function appendNoFollow(path: string, line: string): void {
  try {
    const fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
    try {
      if (!fstatSync(fd).isFile()) throw new Error('not a regular file');
      writeAll(fd, Buffer.from(line)); // a short write would leave half a JSON line
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    writeErr(`${JSON.stringify({ level: 'warn', msg: `cannot write log file ${path}: ${(e as Error).message}` })}\n`);
  }
}

export const log = new Logger();
