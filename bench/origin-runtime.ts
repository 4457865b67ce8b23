// Which Node runs the origin. uWebSockets.js ships one binary per Node ABI, and those for Node 22
// and 24 need glibc 2.38 (Debian 12 has 2.36), so under the Node 24 that npm scripts run gatehouse
// on, the origin falls back to another Node on the machine: the one that runs npm, or one on PATH.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './layout.js';

export interface OriginRuntime {
  readonly execPath: string;
  readonly version: string;
}

/** The first Node that can load uWebSockets.js; throws with every candidate's reason when none can. */
export function originRuntime(): OriginRuntime {
  const fromPath = (process.env.PATH ?? '').split(path.delimiter).map((dir) => path.join(dir, 'node'));
  const candidates = [...new Set([process.execPath, process.env.npm_node_execpath, ...fromPath])].filter(
    (p): p is string => p !== undefined && p !== '' && existsSync(p),
  );
  const reasons: string[] = [];
  for (const execPath of candidates) {
    const probe = spawnSync(execPath, ['-p', "require('uwebsockets'); process.version"], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 10_000 });
    if (probe.status === 0) return { execPath, version: probe.stdout.trim() };
    // The loader's own line (a missing glibc symbol) says more than uws.js's list of Node versions.
    const stderr = probe.stderr ?? '';
    const why = /[^\n]*GLIBC[^\n]*/.exec(stderr)?.[0] ?? /Error: ([^\n]*)/.exec(stderr)?.[1] ?? `exit ${probe.status}`;
    reasons.push(`${execPath}: ${why.slice(0, 160)}`);
  }
  throw new Error(`no Node on this machine can load uWebSockets.js for the origin:\n  ${reasons.join('\n  ')}`);
}
