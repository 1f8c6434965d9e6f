// Percentiles, ratios and markdown tables for the benchmarks.

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

export const median = (xs: number[]): number => percentile(xs, 50);
export const fmt = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
export const ratio = (a: number, b: number): string => `${fmt(a / b, 2)}x`;

export function table(head: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

export interface Target {
  name: string;
  value: number;
  limit: number;
  met: boolean;
  text: string;
}

/** A target line: the figure, the mark, and the shortfall when missed (atLeast: value ≥ limit). */
export function target(name: string, value: number, limit: number, unit = 'x', atLeast = false): Target {
  const met = atLeast ? value >= limit : value <= limit;
  const short = Math.abs(value - limit);
  return { name, value, limit, met, text: `${met ? 'MET' : 'MISSED'} ${name}: ${fmt(value, 2)}${unit} (target ${atLeast ? '≥' : '≤'} ${fmt(limit, 2)}${unit}${met ? '' : `, short by ${fmt(short, 2)}${unit}`})` };
}
