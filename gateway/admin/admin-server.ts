// The admin endpoint (loopback by default): Prometheus metrics, liveness and readiness.
import http from 'node:http';
import type { Address } from '../config/types.js';
import { registry } from '../metrics/registry.js';

export interface AdminServer {
  readonly server: http.Server;
  setReady(ready: boolean): void;
  close(): Promise<void>;
}

/** What a cluster primary serves instead of its own registry: workers' metrics aggregated, and extra JSON pages. */
export interface AdminSources {
  metrics?: () => Promise<{ contentType: string; body: string }>;
  json?: Readonly<Record<string, () => Promise<unknown>>>;
}

export async function startAdminServer(address: Address, beforeScrape: () => void, sources: AdminSources = {}): Promise<AdminServer> {
  const metrics = sources.metrics ?? (() => registry.metrics().then((body) => ({ contentType: registry.contentType, body })));
  let ready = false;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
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
        (value) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value) + '\n'),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${path} failed: ${err.message}\n`),
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'starting\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz, /readyz\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    setReady: (value) => {
      ready = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
