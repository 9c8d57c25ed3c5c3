/** Bench helpers: medians, percentiles, and the result table. */

export interface Row {
  row: string;
  value: number;
  unit: string;
  bar: string;
  pass: boolean;
  detail?: string;
}

export function median(xs: number[]): number {
  return percentile(xs, 50);
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function renderRows(rows: Row[]): string {
  const cells = rows.map((r) => [r.row, `${r.value} ${r.unit}`, r.bar, r.pass ? "pass" : "FAIL", r.detail ?? ""]);
  const head = ["what", "median", "bar", "", "detail"];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => "| " + c.map((v, i) => v.padEnd(widths[i]!)).join(" | ") + " |";
  return [line(head), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...cells.map(line)].join("\n");
}
