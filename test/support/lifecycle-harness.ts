// Helpers for the certificate lifecycle tests (rotation, revocation, expiry): metric reads from the
// one registry, bounded polling, the serial a listener presents to a new handshake, a bounded load
// loop, log capture, and file writes the way operators and Kubernetes do them.
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { setLogLevel, setLogSink } from '../../gateway/log.js';
import { registry } from '../../gateway/metrics/registry.js';
import { request, type ClientCert } from './mtls-client.js';

/** Sum of the samples of `name` whose labels include all of `labels`. */
export async function metricValue(name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await registry.metrics();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    const open = line.indexOf('{');
    const close = line.lastIndexOf('}');
    const sampleLabels = open === -1 ? '' : line.slice(open + 1, close);
    if (Object.entries(labels).every(([k, v]) => sampleLabels.includes(`${k}="${v}"`))) total += Number(line.slice(open === -1 ? name.length : close + 1).trim());
  }
  return total;
}

/** Polls `check` every `intervalMs` until it returns a truthy value or `timeoutMs` passes (then throws, naming `what`). */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 5000, intervalMs = 25): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The serial (lowercase hex) of the certificate a listener presents to a brand-new handshake. */
export function servedSerial(port: number, ca: string, cert: ClientCert): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca, cert: cert.chainPem, key: cert.keyPem });
    socket.setTimeout(5000, () => socket.destroy(new Error('handshake timed out')));
    socket.once('secureConnect', () => {
      const serial = socket.getPeerX509Certificate()?.serialNumber.toLowerCase() ?? '';
      socket.destroy();
      resolve(serial);
    });
    socket.once('error', reject);
  });
}

export interface LoadResult {
  ok: number;
  failed: number;
  errors: string[];
}

/**
 * Requests through the gateway for `durationMs`: `keepAlive` clients each on one persistent
 * connection, and `fresh` clients doing a full handshake per request. A request fails when it errors
 * or does not answer 200.
 */
export async function runLoad(opts: { port: number; ca: string; cert: ClientCert; durationMs: number; keepAlive: number; fresh: number }): Promise<LoadResult> {
  const result: LoadResult = { ok: 0, failed: 0, errors: [] };
  const deadline = Date.now() + opts.durationMs;
  const client = async (agent: https.Agent | undefined, n: number) => {
    for (let i = 0; Date.now() < deadline && i < 100_000; i++) {
      try {
        const res = await request({ port: opts.port, ca: opts.ca, cert: opts.cert, agent, path: `/load/${n}/${i}` });
        if (res.status === 200) result.ok++;
        else {
          result.failed++;
          if (result.errors.length < 10) result.errors.push(`status ${res.status}: ${res.body.slice(0, 200)}`);
        }
      } catch (err) {
        result.failed++;
        if (result.errors.length < 10) result.errors.push((err as Error).message);
      }
    }
  };
  const agents = Array.from({ length: opts.keepAlive }, () => new https.Agent({ keepAlive: true, maxSockets: 1 }));
  await Promise.all([...agents.map((a, i) => client(a, i)), ...Array.from({ length: opts.fresh }, (_, i) => client(undefined, opts.keepAlive + i))]);
  for (const a of agents) a.destroy();
  return result;
}

/** Captures structured log lines (the logger is silent under vitest otherwise). */
export function captureLogs(): { lines: () => Record<string, unknown>[]; events: (event: string) => Record<string, unknown>[]; restore: () => void } {
  const captured: Record<string, unknown>[] = [];
  const previous = setLogSink((line) => {
    if (captured.length < 10_000) captured.push(JSON.parse(line) as Record<string, unknown>);
  });
  setLogLevel('debug');
  return {
    lines: () => captured,
    events: (event) => captured.filter((l) => l.event === event),
    restore: () => {
      setLogSink(previous);
      setLogLevel('silent');
    },
  };
}

/** Replaces a file the way cert-manager and careful scripts do: write aside, then rename over it. */
export function writeAtomically(file: string, data: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

export interface ResumableRequestResult {
  /** Whether the TLS session offered was resumed (the server skipped certificate verification). */
  reused: boolean;
  /** The status line the gateway answered, or undefined when it closed the connection first. */
  status: string | undefined;
  /** The newest session ticket the server sent, to offer on the next connection. */
  session: Buffer | undefined;
}

/** One request on a fresh TLS connection, optionally resuming `session`; never throws for a refused connection. */
export function resumableRequest(port: number, ca: string, cert: ClientCert, session?: Buffer): Promise<ResumableRequestResult> {
  return new Promise((resolve) => {
    const result: ResumableRequestResult = { reused: false, status: undefined, session: undefined };
    const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca, cert: cert.chainPem, key: cert.keyPem, session });
    let data = '';
    socket.setTimeout(5000, () => socket.destroy());
    socket.on('session', (s: Buffer) => (result.session = s));
    socket.once('secureConnect', () => {
      result.reused = socket.isSessionReused();
      socket.write('GET /raw HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });
    socket.on('data', (chunk: Buffer) => {
      if (data.length < 4096) data += chunk.toString('latin1');
    });
    socket.on('error', () => undefined);
    socket.once('close', () => {
      result.status = data.startsWith('HTTP/1.1 ') ? data.split('\r\n')[0] : undefined;
      resolve(result);
    });
  });
}
