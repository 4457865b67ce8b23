// The HTTP/2 and gRPC origin of scenarios 9 and 10: an NGINX of its own (one worker, on the load
// core beside the load generator), mTLS (ssl_verify_client on: the proxy's client certificate is
// required), HTTP/2 by ALPN and HTTP/1.1 otherwise (NGINX's proxy_pass speaks only HTTP/1.1 to an
// upstream). It answers any path with the same 1 KB as the uWebSockets.js origin, and the gRPC
// health check (`/grpc.health.v1.Health/Check`) with a gRPC unary answer: 200, application/grpc,
// one length-prefixed HealthCheckResponse{status: SERVING} and the trailer grpc-status: 0.
//
// Why NGINX and not node:http2: measured with h2load straight at each origin on one core
// (docs/benchmarks.md), NGINX costs 10.8 µs per 1 KB GET and 18 µs per gRPC call against
// node:http2's 15.6 and 25 µs, and it shares the load core. NGINX's static module refuses POST
// with 405, so the gRPC location turns that 405 into an internal GET of the answer file.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BenchPki } from './certificates.js';
import { CORES, GRPC_PATH_PREFIX, HOST, type Ports } from './layout.js';
import { MTLS_LISTEN, nginxMain } from './peers/nginx.js';
import { explainFailure, which, writeConfig } from './peers/peer.js';
import { spawnTracked, stop, waitForPorts, type Tracked } from './processes.js';

/** HealthCheckResponse{status: SERVING} (protobuf 08 01) behind gRPC's 5-byte message prefix. */
export const GRPC_SERVING = Buffer.from([0, 0, 0, 0, 2, 0x08, 0x01]);
export const SMALL_BODY_BYTES = 1024;

export function originH2Config(pki: BenchPki, ports: Ports, dir: string): string {
  const http = `  # Two small files, opened once: no open, fstat and close per request.
  etag off;
  open_file_cache max=16 inactive=1h;
  open_file_cache_valid 1h;

  server {
${MTLS_LISTEN(`${HOST}:${ports.originH2}`, true, pki.origin, pki.caFile)}    root ${path.join(dir, 'www')};

    location / {
      default_type text/plain;
      try_files /small.txt =404;
    }

    # gRPC is a POST, which the static module answers with 405: that becomes an internal GET.
    location ${GRPC_PATH_PREFIX} {
      error_page 405 =200 /grpc-answer;
      return 405;
    }

    location = /grpc-answer {
      internal;
      default_type application/grpc;
      add_trailer grpc-status 0 always;
      try_files /grpc-serving.bin =404;
    }
  }
`;
  return nginxMain({ generatedBy: 'bench/origin-h2.ts', dir, workers: 1, workerConnections: 4096 }, http);
}

/** The command that starts it, for the report. */
export function originH2Args(dir: string): string[] {
  return ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', path.join(dir, 'nginx.conf')];
}

/** Writes the configuration and the two answers into `dir`. */
async function prepare(pki: BenchPki, ports: Ports, dir: string): Promise<void> {
  await mkdir(path.join(dir, 'www'), { recursive: true });
  await writeFile(path.join(dir, 'www', 'small.txt'), Buffer.alloc(SMALL_BODY_BYTES, 'x'));
  await writeFile(path.join(dir, 'www', 'grpc-serving.bin'), GRPC_SERVING);
  await writeConfig(dir, 'nginx.conf', originH2Config(pki, ports, dir));
}

export interface OriginH2Keeper {
  /** Starts it (again, if it died); resolves with why it cannot run, or undefined. */
  ensure(): Promise<string | undefined>;
  stop(): Promise<void>;
}

/** The HTTP/2 origin as a process on the load core, started on first use and restarted if it dies. */
export function originH2Keeper(pki: BenchPki, ports: Ports, dir: string, log: (line: string) => void): OriginH2Keeper {
  let proc: Tracked | undefined;
  return {
    async ensure() {
      if (proc?.isRunning()) return undefined;
      if (proc) log(`HTTP/2 origin exited (${await proc.exited}): restarting it. ${proc.output().trim().slice(-200)}`);
      const nginx = which('nginx');
      if (!nginx) return 'the HTTP/2 origin needs nginx, which is not installed';
      await prepare(pki, ports, dir);
      proc = spawnTracked(nginx, originH2Args(dir), { cpus: CORES.origin, cwd: dir });
      const failure = await waitForPorts(proc, HOST, [ports.originH2]);
      if (!failure) return undefined;
      await stop(proc);
      return `the HTTP/2 origin (NGINX) did not start: ${failure}: ${explainFailure(proc.output())}`;
    },
    async stop() {
      if (proc) await stop(proc);
    },
  };
}
