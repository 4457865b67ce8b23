// The benchmark's origin as a process: started on the load core, restarted if it dies, stopped
// with everything else (./processes.ts). Used by `npm run bench` and the handshake soak.
import path from 'node:path';
import type { BenchPki } from './certificates.js';
import { CORES, DIST_BENCH, HOST, type Ports } from './layout.js';
import type { OriginRuntime } from './origin-runtime.js';
import { spawnTracked, stop, waitForPorts, type Tracked } from './processes.js';

const ORIGIN_SCRIPT = path.join(DIST_BENCH, 'origin.js');

export function originArgs(pki: BenchPki, ports: Ports): string[] {
  return [ORIGIN_SCRIPT, '--port', String(ports.origin), '--cert', pki.origin.cert, '--key', pki.origin.key, '--ca', pki.caFile];
}

/** The origin process, started on the load core and restarted if it dies. */
export function originKeeper(pki: BenchPki, ports: Ports, runtime: OriginRuntime, log: (line: string) => void): { ensure: () => Promise<void>; stop: () => Promise<void> } {
  let proc: Tracked | undefined;
  return {
    async ensure() {
      if (proc?.isRunning()) return;
      if (proc) log(`origin exited (${await proc.exited}): restarting it. ${proc.output().trim().slice(-200)}`);
      proc = spawnTracked(runtime.execPath, originArgs(pki, ports), { cpus: CORES.origin });
      const failure = await waitForPorts(proc, HOST, [ports.origin]);
      if (failure) throw new Error(`the origin did not start: ${failure}: ${proc.output().trim().slice(-300)}`);
    },
    async stop() {
      if (proc) await stop(proc);
    },
  };
}
