// Runs h1load (bench/load/h1load.c) on the load core and parses its one-line JSON report.
import { CORES, HOST } from '../layout.js';
import { runToEnd } from '../processes.js';
import { H1LOAD } from '../tools.js';

export type H1Mode = 'keepalive' | 'close' | 'resume' | 'handshake';

export interface H1Request {
  readonly port: number;
  readonly sni: string;
  readonly cert: string;
  readonly key: string;
  readonly mode: H1Mode;
  readonly connections: number;
  readonly seconds: number;
  readonly path?: string;
}

export interface H1Report {
  readonly requests: number;
  readonly errors: number;
  readonly non2xx: number;
  readonly connections: number;
  readonly resumed: number;
  readonly seconds: number;
  readonly bytes: number;
}

export function h1loadArgs(r: H1Request): string[] {
  return [
    '--host', HOST, '--port', String(r.port), '--sni', r.sni, '--cert', r.cert, '--key', r.key,
    '--mode', r.mode, '--connections', String(r.connections), '--seconds', String(r.seconds), '--path', r.path ?? '/',
  ];
}

export async function runH1load(r: H1Request): Promise<H1Report> {
  const res = await runToEnd(H1LOAD, h1loadArgs(r), { cpus: CORES.load, timeoutMs: (r.seconds + 30) * 1000 });
  const line = res.stdout.trim().split('\n').pop() ?? '';
  if (res.code !== 0 || !line.startsWith('{')) throw new Error(`h1load exited ${res.code}: ${res.stderr.trim().slice(0, 300)}`);
  return JSON.parse(line) as H1Report;
}

/** A problem worth showing next to the number: failures above 1%, or no request at all. */
export function h1Problem(r: H1Report): string | undefined {
  if (r.requests === 0) return `no successful request (${r.errors} errors)`;
  const parts: string[] = [];
  if (r.errors > r.requests / 100) parts.push(`${r.errors} errors`);
  if (r.non2xx > r.requests / 100) parts.push(`${r.non2xx} non-2xx`);
  return parts.length ? parts.join(', ') : undefined;
}
