// `openssl s_time` for handshakes: one connection at a time per process, so several run in
// parallel on the load core. Without -www it only handshakes (TLS 1.3 tickets are not read, so
// -reuse does not resume: resumed handshakes are measured with h1load --mode resume instead).
import { CORES, HOST } from '../layout.js';
import { runToEnd } from '../processes.js';

export interface STimeRequest {
  readonly port: number;
  readonly cert: string;
  readonly key: string;
  readonly mode: 'new' | 'reuse';
  readonly seconds: number;
  readonly parallel: number;
}

export interface STimeReport {
  readonly connections: number;
  /** Wall-clock seconds from the first start to the last exit. */
  readonly seconds: number;
  /** Processes that failed or printed no count. */
  readonly failedProcesses: number;
  readonly firstError?: string;
}

export function sTimeArgs(r: STimeRequest): string[] {
  return ['s_time', '-connect', `${HOST}:${r.port}`, '-cert', r.cert, '-key', r.key, `-${r.mode}`, '-time', String(r.seconds)];
}

export async function runSTime(r: STimeRequest): Promise<STimeReport> {
  const started = Date.now();
  const runs = await Promise.all(
    Array.from({ length: r.parallel }, () => runToEnd('openssl', sTimeArgs(r), { cpus: CORES.load, timeoutMs: (r.seconds + 30) * 1000, maxOutput: 64 * 1024 })),
  );
  const seconds = (Date.now() - started) / 1000;
  let connections = 0;
  let failedProcesses = 0;
  let firstError: string | undefined;
  for (const run of runs) {
    // "1844 connections in 3 real seconds, 0 bytes read per connection"
    const m = /(\d+) connections in [\d.]+ real seconds/.exec(run.stdout);
    if (m) connections += Number(m[1]);
    else {
      failedProcesses++;
      firstError ??= `s_time exited ${run.code}: ${(run.stderr || run.stdout).trim().split('\n').slice(-2).join(' ').slice(0, 200)}`;
    }
  }
  return { connections, seconds, failedProcesses, firstError };
}
