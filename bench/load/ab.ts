// ApacheBench, kept as a cross-check of h1load on keep-alive. ab speaks HTTP/1.0 only: HAProxy
// forwards that version unchanged and the uWebSockets.js origin refuses HTTP/1.0 (505), so
// HAProxy's ab cell shows non-2xx answers rather than a number to compare.
import { CORES, HOST } from '../layout.js';
import { runToEnd } from '../processes.js';

export interface AbRequest {
  readonly port: number;
  /** Certificate chain and key in one PEM file. */
  readonly pem: string;
  readonly keepAlive: boolean;
  readonly concurrency: number;
  readonly seconds: number;
}

export interface AbReport {
  readonly complete: number;
  readonly failed: number;
  readonly non2xx: number;
  readonly seconds: number;
}

export function abArgs(r: AbRequest): string[] {
  // -t before -n: -t alone implies -n 50000; -r: do not exit on a receive error.
  return ['-E', r.pem, ...(r.keepAlive ? ['-k'] : []), '-r', '-c', String(r.concurrency), '-t', String(r.seconds), '-n', '100000000', `https://${HOST}:${r.port}/`];
}

export async function runAb(r: AbRequest): Promise<AbReport> {
  const res = await runToEnd('ab', abArgs(r), { cpus: CORES.load, timeoutMs: (r.seconds + 30) * 1000, maxOutput: 256 * 1024 });
  const num = (label: string): number | undefined => {
    const m = new RegExp(`^${label}:\\s+([\\d.]+)`, 'm').exec(res.stdout);
    return m ? Number(m[1]) : undefined;
  };
  const complete = num('Complete requests');
  const seconds = num('Time taken for tests');
  if (complete === undefined || seconds === undefined) throw new Error(`ab exited ${res.code}: ${res.stderr.trim().split('\n').slice(-2).join(' ').slice(0, 200)}`);
  return { complete, failed: num('Failed requests') ?? 0, non2xx: num('Non-2xx responses') ?? 0, seconds };
}
