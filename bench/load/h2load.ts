// Runs h2load (bench/load/h2load.c, HTTP/2 over mTLS) on the load core and parses its one-line
// JSON report.
import { CORES, HOST } from '../layout.js';
import { runToEnd } from '../processes.js';
import { H2LOAD } from '../tools.js';

export type H2Mode = 'get' | 'grpc';

export interface H2Request {
  readonly port: number;
  readonly sni: string;
  readonly cert: string;
  readonly key: string;
  readonly mode: H2Mode;
  readonly connections: number;
  /** Streams in flight per connection. */
  readonly streams: number;
  readonly seconds: number;
  /** Stop after this many requests have ended (with `seconds` still the bound). */
  readonly requests?: number;
  readonly path?: string;
}

export interface H2Report {
  /** OK answers: 2xx, or for gRPC 200 with one message and the trailer grpc-status: 0. */
  readonly requests: number;
  /** Reset streams, streams lost with their connection, failed connections. */
  readonly errors: number;
  /** Answers that ended but were not OK. */
  readonly non_ok: number;
  /** gRPC answers without trailers (counted in non_ok). */
  readonly no_trailers: number;
  readonly resets: number;
  readonly goaways: number;
  /** Connections whose server did not pick h2 by ALPN. */
  readonly no_h2: number;
  readonly connections: number;
  readonly seconds: number;
  /** h2load's own user + system CPU time. */
  readonly cpu_seconds: number;
  readonly bytes: number;
}

export function h2loadArgs(r: H2Request): string[] {
  return [
    '--host', HOST, '--port', String(r.port), '--sni', r.sni, '--cert', r.cert, '--key', r.key, '--mode', r.mode,
    '--connections', String(r.connections), '--streams', String(r.streams), '--seconds', String(r.seconds),
    ...(r.requests ? ['--requests', String(r.requests)] : []), ...(r.path ? ['--path', r.path] : []),
  ];
}

export async function runH2load(r: H2Request, binary = H2LOAD): Promise<H2Report> {
  const res = await runToEnd(binary, h2loadArgs(r), { cpus: CORES.load, timeoutMs: (r.seconds + 30) * 1000 });
  const line = res.stdout.trim().split('\n').pop() ?? '';
  if (res.code !== 0 || !line.startsWith('{')) throw new Error(`h2load exited ${res.code}: ${res.stderr.trim().slice(0, 300)}`);
  return JSON.parse(line) as H2Report;
}

/** A problem worth showing next to the number: failures above 1%, no h2, or no request at all. */
export function h2Problem(r: H2Report): string | undefined {
  const parts: string[] = [];
  if (r.no_h2 > 0) parts.push(`${r.no_h2} connections where the server did not pick h2 (ALPN)`);
  if (r.requests === 0) parts.push(`no successful request (${r.errors} errors, ${r.non_ok} answers not OK)`);
  else {
    if (r.errors > r.requests / 100) parts.push(`${r.errors} errors (${r.resets} streams reset, ${r.goaways} GOAWAY)`);
    if (r.non_ok > r.requests / 100) parts.push(`${r.non_ok} answers not OK${r.no_trailers ? ` (${r.no_trailers} without trailers)` : ''}`);
  }
  return parts.length ? parts.join(', ') : undefined;
}
