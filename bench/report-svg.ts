// A bar chart of the run, hand-written SVG: for every charted row of every scenario, each
// column's median divided by the reference column's (HAProxy; the bare listener for scenario
// 5), with a 1.0× line, so that a person sees at a glance where gatehouse stands.
import type { ReportInput } from './report-markdown.js';
import { ratioOf } from './stats.js';
import type { ScenarioResult } from './runner.js';

const WIDTH = 1000;
const LABEL_RIGHT = 540; // labels end here, bars start after
const BAR_LEFT = 552;
const BAR_RIGHT = 930;
const BAR_H = 11;
const LEGEND_LEFT = 790;
const ROW_GAP = 6;
const COLORS: Record<string, string> = { gatehouse: '#2b6cb0', nginx: '#9aa5b1', front: '#2b6cb0' };

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

interface Bar {
  readonly label: string;
  readonly color: string;
  readonly value: number | undefined;
}

interface ChartRow {
  readonly label: string;
  readonly bars: readonly Bar[];
}

interface Group {
  readonly title: string;
  readonly rows: readonly ChartRow[];
}

/** Every column divided by the scenario's reference: HAProxy, or the first ratio's denominator. */
function groupOf(r: ScenarioResult): Group | undefined {
  const reference = r.columns.some((c) => c.key === 'haproxy') ? 'haproxy' : r.scenario.ratios[0]?.denominator;
  const refColumn = r.columns.find((c) => c.key === reference);
  if (!refColumn) return undefined;
  const others = r.columns.filter((c) => c.key !== reference);
  const rows = r.rows
    .filter((row) => row.metric.chart !== false)
    .map((row) => ({
      label: row.label,
      bars: others.map((c) => ({ label: c.label, color: COLORS[c.key] ?? '#718096', value: ratioOf(row, c.key, refColumn.key) })),
    }));
  return rows.length ? { title: `${r.scenario.id}. ${r.scenario.title} — ÷ ${refColumn.label}`, rows } : undefined;
}

export function svgChart(input: ReportInput): string {
  const groups = input.results.map(groupOf).filter((g): g is Group => g !== undefined);
  const values = groups.flatMap((g) => g.rows.flatMap((r) => r.bars.map((b) => b.value ?? 0)));
  // Scale: at least 0..1.5×, at most 0..4× (longer bars are cut and marked).
  const maxScale = Math.min(4, Math.max(1.5, Math.ceil(Math.max(0, ...values) * 4) / 4));
  const x = (v: number): number => BAR_LEFT + (Math.min(v, maxScale) / maxScale) * (BAR_RIGHT - BAR_LEFT);
  const out: string[] = [];
  let y = 70;
  for (const g of groups) {
    out.push(`<text x="12" y="${y + 12}" class="group">${esc(g.title)}</text>`);
    y += 22;
    for (const row of g.rows) {
      const h = row.bars.length * (BAR_H + 2);
      out.push(`<text x="${LABEL_RIGHT}" y="${y + h / 2 + 4}" class="label" text-anchor="end">${esc(row.label)}</text>`);
      row.bars.forEach((b, i) => {
        const by = y + i * (BAR_H + 2);
        if (b.value === undefined) {
          out.push(`<text x="${BAR_LEFT + 4}" y="${by + BAR_H - 1}" class="na">${esc(b.label)}: n/a</text>`);
          return;
        }
        const cut = b.value > maxScale ? ' ▸' : '';
        out.push(
          `<rect x="${BAR_LEFT}" y="${by}" width="${(x(b.value) - BAR_LEFT).toFixed(1)}" height="${BAR_H}" fill="${b.color}"><title>${esc(`${b.label}: ${b.value.toFixed(2)}×`)}</title></rect>`,
          `<text x="${(x(b.value) + 4).toFixed(1)}" y="${by + BAR_H - 1}" class="value">${b.value.toFixed(2)}×${cut}</text>`,
        );
      });
      y += h + ROW_GAP;
    }
    y += 8;
  }
  const height = y + 30;
  const grid: string[] = [];
  for (let v = 0; v <= maxScale + 1e-9; v += 0.5) {
    const gx = x(v).toFixed(1);
    const one = Math.abs(v - 1) < 1e-9;
    grid.push(`<line x1="${gx}" y1="58" x2="${gx}" y2="${height - 24}" class="${one ? 'one' : 'grid'}"/>`, `<text x="${gx}" y="${height - 10}" class="axis" text-anchor="middle">${v.toFixed(1)}×</text>`);
  }
  const mode = input.options.quick ? 'quick run (indicative)' : `${input.options.runs} runs per cell, medians`;
  const legend = [
    ['gatehouse', COLORS.gatehouse!],
    ['NGINX', COLORS.nginx!],
  ]
    .map(([name, color], i) => `<rect x="${LEGEND_LEFT + i * 100}" y="14" width="12" height="12" fill="${color}"/><text x="${LEGEND_LEFT + 16 + i * 100}" y="24" class="label">${name}</text>`)
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif">
<style>
  .title { font-size: 16px; font-weight: 600; fill: #1a202c; }
  .sub { font-size: 12px; fill: #4a5568; }
  .group { font-size: 13px; font-weight: 600; fill: #1a202c; }
  .label { font-size: 11px; fill: #2d3748; }
  .value { font-size: 10px; fill: #2d3748; }
  .na { font-size: 10px; fill: #a0aec0; font-style: italic; }
  .axis { font-size: 10px; fill: #4a5568; }
  .grid { stroke: #e2e8f0; stroke-width: 1; }
  .one { stroke: #c53030; stroke-width: 1.5; stroke-dasharray: 4 3; }
</style>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="12" y="24" class="title">gatehouse benchmark: ratio to HAProxy (dashed line = 1.0×, HAProxy)</text>
<text x="12" y="44" class="sub">${esc(`${input.started.toISOString().slice(0, 10)}, ${mode}. Longer is better, except memory rows. Scenario 5 is ÷ bare listener.`)}</text>
${legend}
${grid.join('\n')}
${out.join('\n')}
</svg>
`;
}
