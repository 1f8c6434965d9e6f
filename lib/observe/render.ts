// Flow lines for a terminal: aligned columns (measured over a batch; fixed widths when
// streaming), verdicts in colour only when stdout is a terminal.
import type { FlowLine } from './flow.js';

export interface Style {
  color: boolean;
  /** Terminal width (0: not a terminal). */
  width: number;
}

const HEAD = ['TIME', 'SOURCE', '', 'DESTINATION', 'PROTO', 'VERDICT', 'TYPE/REASON', 'SUMMARY'];
const STREAM_WIDTHS = [19, 28, 2, 28, 6, 9, 30, 0];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** hubble observe's stamp: "Dec  1 14:48:52.123", local time. */
function stamp(d: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2)} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

const cells = (l: FlowLine): string[] => [stamp(l.time), l.source, '->', l.destination, l.protocol, l.verdict, l.why, l.summary];

function paint(cell: string, i: number, s: Style): string {
  if (!s.color || i !== 5) return cell;
  return `${cell.startsWith('DROPPED') ? '\x1b[31m' : '\x1b[32m'}${cell}\x1b[0m`;
}

function row(c: string[], widths: number[], s: Style): string {
  return `${c.map((x, i) => paint(i === c.length - 1 ? x : x.padEnd(widths[i]!), i, s)).join('  ').trimEnd()}\n`;
}

export function renderTable(lines: FlowLine[], s: Style): string {
  if (lines.length === 0) return s.width ? 'no flows recorded (or none match)\n' : '';
  const body = lines.map(cells);
  const widths = HEAD.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  return [HEAD, ...body].map((r) => row(r, widths, s)).join('');
}

/** One streamed line; the header when line is undefined. */
export const renderLine = (l: FlowLine | undefined, s: Style): string => row(l ? cells(l) : HEAD, STREAM_WIDTHS, s);
