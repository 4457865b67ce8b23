// The Markdown report: the machine and versions, then one table per scenario (median of the
// runs with their min–max, and the ratios), the problems seen, and the exact commands.
import path from 'node:path';
import { REPO_ROOT } from './layout.js';
import type { BenchOptions } from './options.js';
import type { CellResult, ScenarioResult } from './runner.js';
import { ratioOf, summarize } from './stats.js';
import { targetsSection } from './targets.js';
import type { MachineInfo } from './tools.js';

export interface ReportInput {
  readonly started: Date;
  readonly seconds: number;
  readonly options: BenchOptions;
  readonly machine: MachineInfo;
  /** Load averages before and after the run (the harness's own load included). */
  readonly load: { readonly before: string; readonly after: string };
  readonly results: readonly ScenarioResult[];
  /** Peer configurations with default settings, for the appendix, by peer label. */
  readonly configs: ReadonlyArray<{ readonly label: string; readonly language: string; readonly text: string }>;
  readonly setupCommands: readonly string[];
  /** File name of the SVG chart next to the report. */
  readonly chartFile: string;
}

export function formatNumber(n: number, digits?: number): string {
  if (!Number.isFinite(n)) return '—';
  const d = digits ?? (Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2);
  return n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

function cellText(cell: CellResult | undefined, digits?: number): string {
  const s = cell ? summarize(cell.samples) : undefined;
  if (!s) return cell?.problems.length ? 'failed ⚠' : '—';
  const range = s.n > 1 ? ` (${formatNumber(s.min, digits)}–${formatNumber(s.max, digits)})` : '';
  return `${formatNumber(s.median, digits)}${range}${cell!.problems.length ? ' ⚠' : ''}`;
}

const esc = (s: string): string => s.replace(/\|/g, '\\|');
const rel = (s: string): string => s.split(REPO_ROOT + path.sep).join('');

function scenarioSection(r: ScenarioResult): string {
  const ratios = r.scenario.ratios.filter((q) => r.columns.some((c) => c.key === q.numerator) && r.columns.some((c) => c.key === q.denominator));
  const head = ['', ...r.columns.map((c) => c.label), ...ratios.map((q) => q.label)];
  const lines = [`## ${r.scenario.id}. ${r.scenario.title}`, '', r.scenario.about, '', `| ${head.map(esc).join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const row of r.rows) {
    const cells = r.columns.map((c) => cellText(row.cells[c.key], row.metric.digits));
    const ratioCells = ratios.map((q) => {
      const x = ratioOf(row, q.numerator, q.denominator);
      return x === undefined ? '—' : `**${x.toFixed(2)}×**`;
    });
    lines.push(`| ${esc(row.label)} | ${[...cells, ...ratioCells].join(' | ')} |`);
  }
  const problems = new Set<string>();
  for (const row of r.rows) for (const c of r.columns) for (const p of row.cells[c.key]?.problems ?? []) problems.add(`${c.label}: ${rel(p)}`);
  if (problems.size > 0) lines.push('', '⚠ Problems:', ...[...problems].slice(0, 20).map((p) => `- ${esc(p)}`));
  lines.push('', `<details><summary>Load commands (${r.seconds.toFixed(0)} s for this scenario)</summary>`, '', '```sh', ...r.commands.map(rel), '```', '</details>', '');
  return lines.join('\n');
}

export function markdownReport(input: ReportInput): string {
  const { options: o, machine: m } = input;
  const mode = o.quick ? 'quick (a smoke check: one short run per cell; numbers are indicative only)' : 'full';
  const out = [
    `# gatehouse benchmark — ${input.started.toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `Mode: **${mode}**. ${o.runs} run(s) per cell of ${o.seconds} s after ${o.warmupSeconds} s of warm-up; cells show the median and, over several runs, (min–max). ` +
      `Total ${Math.round(input.seconds)} s. Ratios divide medians; above 1.0× gatehouse does better, except for rows marked "lower is better".`,
    '',
    `![ratios to HAProxy](${input.chartFile})`,
    '',
    ...targetsSection(input.results, o.quick),
    '## Machine and method',
    '',
    `- ${m.cpus} CPUs: ${m.cpuModel}; ${m.kernel}`,
    `- Load average (1, 5, 15 min) before the run: ${input.load.before}; after: ${input.load.after}. Anything else running on the machine competes with the peer or the load generator: rates drop, per-CPU-second figures much less.`,
    ...Object.entries(m.versions).map(([k, v]) => `- ${k}: ${v}`),
    '- Pinning (taskset): the peer under test on core 0 alone; the load generator **and the origin share core 1** (the origin is a uWebSockets.js `SSLApp`, one process, 1 KB answers: light, but it competes with the load generator; for the HTTP/2 scenarios 9-10 it is an NGINX with one worker). Scenario 7\'s two workers run on cores 0–1.',
    '- Each peer runs alone, in turn, on the same ports, with the same worker count (1 unless stated), started fresh for every run and warmed up with keep-alive load; before each h1load or h2load measurement the same load runs unmeasured for the warm-up time, so that the paths it measures are compiled.',
    '- Requests per gateway CPU-second: requests ÷ (utime+stime of every process of the peer, from /proc/PID/stat, after − before). It stays meaningful when the load core, not the peer, is the bottleneck — with one core each, HAProxy and NGINX often saturate the load core first.',
    '- HTTP load: `h1load` (bench/load/h1load.c, built by the harness): ab sends HTTP/1.0, which HAProxy forwards as is and uWebSockets.js refuses (505); h1load sends HTTP/1.1 and otherwise works like ab (one thread, epoll, OpenSSL, no server verification). `ab -k` stays in scenario 1 as a cross-check.',
    '- HTTP/2 load (scenarios 9-10): `h2load` (bench/load/h2load.c: the same design with libnghttp2; not nghttp2\'s tool of that name, which cannot present a client certificate), C connections × S streams in flight; its row "own CPU" is its user+system time over the run\'s wall time.',
    '- TLS 1.3, ECDSA P-256 certificates from certs/dev-ca.ts (minted per run into bench/.work/). Every proxy verifies the client certificate and presents its own client certificate to the origin, which verifies it; proxies verify the origin against the same CA.',
    '- HAProxy and NGINX do not add an identity header; gatehouse adds `x-forwarded-client-cert` (its default `sanitize_set`).',
    '',
    '```sh',
    ...input.setupCommands.map(rel),
    '```',
    '',
    ...input.results.map(scenarioSection),
    '## Peer configurations (default settings, with the relay listener of scenario 4; HTTP/2 ones when scenarios 9-10 ran)',
    '',
    ...input.configs.flatMap((c) => [`<details><summary>${c.label}</summary>`, '', '```' + c.language, rel(c.text).trimEnd(), '```', '</details>', '']),
  ];
  return out.join('\n') + '\n';
}
