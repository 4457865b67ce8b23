// Where the benchmark keeps its files and which loopback ports and cores it uses. Every peer
// runs alone in turn on the same ports, so one fixed scheme serves all of them.
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The repository root: dist/bench/layout.js sits two levels below it. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Certificates, generated peer configs, logs: gitignored, recreated on every run. */
export const WORK_DIR = path.join(REPO_ROOT, 'bench', '.work');
export const RESULTS_DIR = path.join(REPO_ROOT, 'bench', 'results');
export const DIST_BENCH = path.join(REPO_ROOT, 'dist', 'bench');
export const GATEHOUSE_CLI = path.join(REPO_ROOT, 'dist', 'gateway', 'cli.js');

export const HOST = '127.0.0.1';

export interface Ports {
  /** The proxy's mTLS terminate listener. */
  readonly terminate: number;
  /** The proxy's SNI passthrough (TCP relay) listener. */
  readonly passthrough: number;
  /** The uWebSockets.js origin (mTLS). */
  readonly origin: number;
  /** gatehouse's admin listener (unused by the others). */
  readonly admin: number;
  /** The HTTP/2 and gRPC origin (NGINX, mTLS; ./origin-h2.ts), started only for the HTTP/2 scenarios. */
  readonly originH2: number;
}

export function portsFrom(base: number): Ports {
  return { terminate: base, passthrough: base + 1, origin: base + 2, admin: base + 3, originH2: base + 4 };
}

/** The SNI name the passthrough routes relay to the origin. */
export const PASSTHROUGH_SNI = 'origin.bench.test';
/** An SNI name that only exists to give gatehouse's terminate listener a passthrough route (scenario 5). */
export const FRONT_DOOR_SNI = 'relay.bench.test';
/** The name the proxies expect in the origin's certificate. */
export const ORIGIN_NAME = 'localhost';

/**
 * Core layout on a 2-core machine: the gateway or peer under test gets core 0 alone; the load
 * generator and the origin share core 1 (the origin is light: uWebSockets.js, or NGINX for
 * HTTP/2, 1 KB answers).
 */
export const CORES = {
  proxy: '0',
  proxyTwoWorkers: '0,1',
  load: '1',
  origin: '1',
} as const;

/**
 * Connection limit configured in every peer: above the idle-connection scenario's count, and
 * low enough that a peer needing two descriptors a connection stays under a 20,000 fd limit.
 */
export const MAX_CONNECTIONS = 9000;

/**
 * The HTTP/2 load (scenarios 9 and 10): connections, each with this many streams in flight, so
 * that 128 requests are outstanding; below every peer's stream limit (HAProxy 100, NGINX 128).
 */
export const H2_LOAD = { connections: 8, streams: 16 } as const;

/** The gRPC method the load calls, and the path prefix the peers and the origin route on. */
export const GRPC_PATH_PREFIX = '/grpc.health.v1.Health/';
export const GRPC_PATH = `${GRPC_PATH_PREFIX}Check`;
