// The speed gatehouse is held to (issue 5), as ratios to HAProxy in work per gateway CPU-second,
// checked against every run: the report opens with which are met and by how much the others miss.
import { H2_MODE_TEXT } from './probes.js';
import type { ScenarioResult } from './runner.js';
import { ratioOf } from './stats.js';

export interface Target {
  readonly scenario: number;
  /** The row's label in the scenario's table. */
  readonly row: string;
  readonly what: string;
  /** gatehouse ÷ HAProxy must reach this. */
  readonly atLeast: number;
  /** Where to look when it is missed. */
  readonly explained?: string;
}

export const TARGETS: readonly Target[] = [
  { scenario: 1, row: 'keep-alive: requests per gateway CPU-second', what: 'keep-alive, proxied mTLS → mTLS', atLeast: 0.6, explained: 'the CPU µs per request rows of scenario 1' },
  { scenario: 2, row: 'new connection per request: requests per gateway CPU-second', what: 'a new client connection per request', atLeast: 1.0 },
  { scenario: 3, row: 'resumed connection per request: requests per gateway CPU-second', what: 'resumed client connections', atLeast: 0.95 },
  { scenario: 4, row: 'relay, 10 MB bodies: MB per gateway CPU-second', what: 'passthrough, bulk throughput', atLeast: 0.8 },
  { scenario: 4, row: 'relay, new connections: connections per gateway CPU-second', what: 'passthrough, connections per second', atLeast: 0.8, explained: 'the CPU µs per connection rows of scenario 4' },
  // Issue 17's goal for HTTP/2 and gRPC.
  { scenario: 9, row: `${H2_MODE_TEXT.get}: requests per gateway CPU-second`, what: 'HTTP/2 keep-alive, proxied mTLS → mTLS', atLeast: 0.5, explained: 'the CPU µs per request rows of scenario 9' },
  { scenario: 10, row: `${H2_MODE_TEXT.grpc}: requests per gateway CPU-second`, what: 'gRPC unary, mTLS → mTLS', atLeast: 0.5, explained: 'the CPU µs per call rows of scenario 10' },
];

export interface TargetVerdict {
  readonly target: Target;
  /** gatehouse ÷ HAProxy, medians; undefined when the scenario did not run or a cell is empty. */
  readonly ratio: number | undefined;
  readonly met: boolean;
  /** The scenario has the CPU profile rows `target.explained` points at (not in quick runs). */
  readonly profiled: boolean;
}

export function verdicts(results: readonly ScenarioResult[]): TargetVerdict[] {
  return TARGETS.flatMap((target) => {
    const result = results.find((r) => r.scenario.id === target.scenario);
    if (result === undefined) return [];
    const row = result.rows.find((r) => r.label === target.row);
    const ratio = row === undefined ? undefined : ratioOf(row, 'gatehouse', 'haproxy');
    const profiled = result.rows.some((r) => r.metric.unit === 'µs');
    return [{ target, ratio, met: ratio !== undefined && ratio >= target.atLeast, profiled }];
  });
}

/** The report's "Targets" section, or nothing when no targeted scenario ran. */
export function targetsSection(results: readonly ScenarioResult[], quick = false): string[] {
  const rows = verdicts(results);
  if (rows.length === 0) return [];
  const lines = [
    '## Targets',
    '',
    'gatehouse ÷ HAProxy in work per gateway CPU-second (medians of this run), against what gatehouse is held to.' +
      (quick ? ' **A quick run measures each cell once, briefly, with little warm-up: these verdicts are a smoke check, not a measurement.**' : ''),
    '',
    '| scenario | target | this run | verdict |',
    '| --- | ---: | ---: | --- |',
  ];
  for (const { target, ratio, met, profiled } of rows) {
    let verdict: string;
    if (ratio === undefined) verdict = 'not measured (a cell is empty: see the scenario)';
    else if (met) verdict = '**met**';
    else {
      const more = (target.atLeast / ratio - 1) * 100;
      verdict = `**missed** by ${(target.atLeast - ratio).toFixed(2)}×: gatehouse needs ${more.toFixed(0)}% more per CPU-second${target.explained && profiled ? `; see ${target.explained}` : ''}`;
    }
    lines.push(`| ${target.scenario}. ${target.what} | ≥ ${target.atLeast.toFixed(2)}× | ${ratio === undefined ? '—' : `${ratio.toFixed(2)}×`} | ${verdict} |`);
  }
  lines.push('');
  return lines;
}
