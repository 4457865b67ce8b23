// Runs one scenario: for each measured run, each variant and each column in turn, starts the
// peer alone on the shared ports, warms it up, runs the probes and stops it. Runs are the outer
// loop so that slow drift of the machine spreads over every peer instead of favouring one.
import path from 'node:path';
import type { BenchPki } from './certificates.js';
import { CORES, WORK_DIR, type Ports } from './layout.js';
import { runH1load } from './load/h1load.js';
import type { BenchOptions } from './options.js';
import { gatehouse } from './peers/gatehouse.js';
import { haproxy } from './peers/haproxy.js';
import { nginx } from './peers/nginx.js';
import { DEFAULT_SETTINGS, startPeer, type PeerDriver, type PeerName } from './peers/peer.js';
import type { Metric, ProbeTarget } from './probe.js';
import { stop } from './processes.js';
import type { Column, Scenario } from './scenarios.js';

export const DRIVERS: Readonly<Record<PeerName, PeerDriver>> = { gatehouse, haproxy, nginx };

export interface CellResult {
  readonly samples: number[];
  readonly problems: string[];
}

export interface RowResult {
  readonly metric: Metric;
  readonly label: string;
  /** By column key. */
  readonly cells: Record<string, CellResult>;
}

export interface ScenarioResult {
  readonly scenario: Scenario;
  /** The columns that were selected (--peers). */
  readonly columns: readonly Column[];
  readonly rows: readonly RowResult[];
  readonly commands: readonly string[];
  readonly seconds: number;
}

export interface RunContext {
  readonly pki: BenchPki;
  readonly ports: Ports;
  readonly options: BenchOptions;
  readonly log: (line: string) => void;
  /** Restarts the origin if it died; throws when it cannot. */
  readonly ensureOrigin: () => Promise<void>;
  /** Starts the HTTP/2 origin (or again, if it died) for peers with `http2`; resolves with why it cannot run. */
  readonly ensureH2Origin: () => Promise<string | undefined>;
}

function fmt(n: number | undefined): string {
  return n === undefined || !Number.isFinite(n) ? '—' : n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2);
}

export async function runScenario(scenario: Scenario, ctx: RunContext): Promise<ScenarioResult> {
  const started = Date.now();
  const { options, log } = ctx;
  const columns = scenario.columns.filter((c) => options.peers.size === 0 || options.peers.has(c.peer));
  const rows: RowResult[][] = scenario.variants.map((variant) =>
    variant.probes.flatMap((probe) =>
      probe.metrics.map((metric) => ({
        metric,
        label: variant.label ? `${metric.label} — ${variant.label}` : metric.label,
        cells: Object.fromEntries(columns.map((c) => [c.key, { samples: [], problems: [] }])),
      })),
    ),
  );
  const commands = new Set<string>();
  /** Columns that failed to start under a variant are not tried again in later runs. */
  const failed = new Set<string>();

  for (let run = 1; run <= options.runs; run++) {
    for (const [vi, variant] of scenario.variants.entries()) {
      for (const column of columns) {
        if (failed.has(`${vi}/${column.key}`)) continue;
        const tag = `[${scenario.id}] ${column.label}${variant.label ? `, ${variant.label}` : ''}, run ${run}/${options.runs}`;
        const notStarted = (reason: string): void => {
          failed.add(`${vi}/${column.key}`);
          log(`${tag}: did not start: ${reason}`);
          for (const row of rows[vi]!) row.cells[column.key]!.problems.push(`did not start: ${reason}`);
        };
        await ctx.ensureOrigin();
        const settings = { ...DEFAULT_SETTINGS, ...column.settings, ...variant.settings };
        const noOrigin = settings.http2 ? await ctx.ensureH2Origin() : undefined;
        if (noOrigin) {
          notStarted(noOrigin);
          continue;
        }
        const dir = path.join(WORK_DIR, column.peer);
        const start = await startPeer(DRIVERS[column.peer], { pki: ctx.pki, ports: ctx.ports, dir }, settings, variant.cpus ?? CORES.proxy);
        if (!start.ok) {
          notStarted(start.reason);
          continue;
        }
        const target: ProbeTarget = { pid: start.proc.pid, ports: ctx.ports, pki: ctx.pki, options };
        try {
          // Warm-up: JIT, upstream pools and session caches, with the scenario's peer settings.
          await runH1load({ port: ctx.ports.terminate, sni: 'localhost', cert: ctx.pki.loadClient.cert, key: ctx.pki.loadClient.key, mode: 'keepalive', connections: options.concurrency, seconds: options.warmupSeconds }).catch(() => undefined);
          let offset = 0;
          for (const probe of variant.probes) {
            const probeRows = rows[vi]!.slice(offset, offset + probe.metrics.length);
            offset += probe.metrics.length;
            commands.add(probe.command(target));
            if (!start.proc.isRunning()) {
              for (const row of probeRows) row.cells[column.key]!.problems.push(`exited during the run: ${start.proc.output().trim().slice(-200)}`);
              continue;
            }
            let values: Readonly<Record<string, number>> = {};
            let problem: string | undefined;
            try {
              ({ values, problem } = await probe.run(target));
            } catch (err) {
              problem = err instanceof Error ? err.message : String(err);
            }
            for (const row of probeRows) {
              const v = values[row.metric.key];
              if (v !== undefined && Number.isFinite(v)) row.cells[column.key]!.samples.push(v);
              if (problem) row.cells[column.key]!.problems.push(problem);
            }
            log(`${tag}: ${probeRows.map((r) => `${r.metric.label.split(': ').pop()} ${fmt(values[r.metric.key])}`).join(', ')}${problem ? ` (${problem})` : ''}`);
          }
        } finally {
          await stop(start.proc);
        }
      }
    }
  }
  return { scenario, columns, rows: rows.flat(), commands: [...commands], seconds: (Date.now() - started) / 1000 };
}
