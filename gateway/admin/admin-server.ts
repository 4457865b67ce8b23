// The admin endpoint (loopback by default): Prometheus metrics, liveness and readiness, JSON pages
// and actions (POST). Actions change the running gateway: with admin.token_file they need its bearer
// token (on any address); without, they are served only when the admin address is loopback, since
// anyone who can reach a pod IP must not be able to reload it.
import { createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { Admin } from '../config/types.js';
import { log } from '../log.js';
import { configRegistry } from '../metrics/config-metrics.js';
import { registry } from '../metrics/registry.js';
import { listenAt } from '../net/shared-port.js';
import { listeningFd } from '../net/stream-handles.js';

export interface AdminServer {
  readonly server: http.Server;
  setReady(ready: boolean): void;
  /** Graceful stop begun: /readyz answers 503 from now on, whatever setReady says. */
  setDraining(): void;
  /** The descriptor of its listening socket (for the next generation: runtime/handover.ts). */
  listeningFd(): number | undefined;
  /**
   * Another process answers on the address now (a handover): stops accepting, and answers the
   * requests it has as it would have before, whatever setReady or setDraining say from now on.
   */
  stopAccepting(): void;
  close(): Promise<void>;
}

/** What a cluster primary serves instead of its own registry: workers' metrics aggregated, and extra JSON pages. */
export interface AdminSources {
  metrics?: () => Promise<{ contentType: string; body: string }>;
  json?: Readonly<Record<string, () => Promise<unknown>>>;
  /** POST endpoints (e.g. /reload): the status and JSON body they answer. */
  actions?: Readonly<Record<string, () => Promise<{ status: number; body: unknown }>>>;
}

/** 127.0.0.0/8, ::1 or localhost: only this machine reaches it. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  return host.toLowerCase().startsWith('::ffff:127.');
}

export async function startAdminServer(config: Admin, beforeScrape: () => void, sources: AdminSources = {}): Promise<AdminServer> {
  const served = sources.metrics ?? (() => registry.metrics().then((body) => ({ contentType: registry.contentType, body })));
  // The config metrics are the serving process's own (not its workers'): added to either.
  const metrics = async () => {
    const [own, config] = await Promise.all([served(), configRegistry.metrics()]);
    return { contentType: own.contentType, body: own.body + config };
  };
  const { address, tokenFile } = config;
  const mutable = isLoopback(address.host);
  let ready = false;
  let draining = false;
  /** stopAccepting() was called: readiness no longer changes. */
  let handedOver = false;
  const json = (res: http.ServerResponse, status: number, value: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value) + '\n');
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const action = path === undefined ? undefined : sources.actions?.[path];
    if (req.method === 'POST' && action) {
      const refusal = tokenFile !== undefined ? tokenRefusal(tokenFile, req.headers.authorization) : mutable ? undefined : 'admin_not_loopback';
      if (refusal) {
        log.warn('admin_refused', { path, reason: refusal, admin: `${address.host}:${address.port}`, peer: req.socket.remoteAddress });
        if (refusal === 'admin_not_loopback') {
          json(res, 403, { error: `POST ${path} is refused: the admin address ${address.host} is not loopback, and changing the gateway is served only on a loopback admin address or with admin.token_file` });
        } else {
          res.setHeader('www-authenticate', 'Bearer');
          json(res, 401, { error: `POST ${path} needs the bearer token of admin.token_file (${refusal})` });
        }
        return;
      }
      action().then(
        ({ status, body }) => json(res, status, body),
        (err: Error) => json(res, 500, { error: `${path} failed: ${err.message}` }),
      );
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: action ? 'POST' : 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      beforeScrape();
      metrics().then(
        ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
      );
    } else if (path !== undefined && sources.json?.[path]) {
      sources.json[path]!().then(
        (value) => json(res, 200, value),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${path} failed: ${err.message}\n`),
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const status = draining ? 'draining' : ready ? 'ready' : 'starting';
      res.writeHead(status === 'ready' ? 200 : 503, { 'content-type': 'text/plain' }).end(`${status}\n`);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz, /readyz\n');
    }
  });
  // On the admin socket the generation before passed on, after a handover: this one answers there now.
  await listenAt(server, address, 511);
  return {
    server,
    listeningFd: () => (server.listening ? listeningFd(server) : undefined),
    stopAccepting: () => {
      handedOver = true;
      if (server.listening) server.close(); // idle keep-alive connections close with it
    },
    setReady: (value) => {
      if (!handedOver) ready = value;
    },
    setDraining: () => {
      if (!handedOver) draining = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Why `authorization` does not carry the token in `file` (read now, so a rotated token applies at once), or undefined if it does. */
function tokenRefusal(file: string, authorization: string | undefined): 'no_token' | 'wrong_token' | 'token_file_unreadable' | undefined {
  let token: string;
  try {
    token = fs.readFileSync(file, 'utf8').trim();
  } catch {
    return 'token_file_unreadable';
  }
  if (token === '') return 'token_file_unreadable';
  const given = /^Bearer +(\S+)$/i.exec(authorization ?? '')?.[1];
  if (given === undefined) return 'no_token';
  // Digests of equal length, compared in constant time.
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(token)) ? undefined : 'wrong_token';
}
