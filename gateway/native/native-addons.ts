// gatehouse's C addons (Node-API, one C file each) and where they live: build-addons.ts compiles
// them at `npm run build`; each user loads its own with loadAddon() and falls back to TypeScript
// (or, for experiments, to nothing) when it is missing.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface AddonSpec {
  /** What the addon is, for messages. */
  readonly title: string;
  /** The C source, from the repository's root. */
  readonly source: string;
  /** The compiled addon, from the repository's root (a gitignored build/ directory). */
  readonly output: string;
  /** What gatehouse does without it, for the build's warning. */
  readonly without: string;
  /** Header directories beyond Node's (system headers of a library the addon calls). */
  readonly requiredHeaders?: readonly string[];
}

export const FD_RELAY_ADDON: AddonSpec = {
  title: 'the native pump',
  source: 'gateway/passthrough/fd-relay/fd-relay.c',
  output: 'gateway/passthrough/fd-relay/build/fd_relay.node',
  without: 'passthrough relays will pump bytes in TypeScript, which costs more CPU per connection',
};

export const H2_ENGINE_ADDON: AddonSpec = {
  title: 'the native HTTP/2 engine',
  source: 'gateway/http2/native/h2-engine.c',
  output: 'gateway/http2/native/build/h2_engine.node',
  without: 'terminate listeners do not offer h2 (HTTP/2 clients get HTTP/1.1)',
  requiredHeaders: ['/usr/include/nghttp2/nghttp2.h'],
};

/** The repository's root, from this file in gateway/native/ or in dist/gateway/native/. */
const ROOTS = ['../../', '../../../'];

/** The compiled addon's file, or undefined when it was not built. */
export function addonFile(spec: AddonSpec): string | undefined {
  return ROOTS.map((root) => fileURLToPath(new URL(root + spec.output, import.meta.url))).find((f) => existsSync(f));
}

/** Loads the addon; undefined when it was not built. Throws when it was built but does not load. */
export function loadAddon<T>(spec: AddonSpec): T | undefined {
  const file = addonFile(spec);
  return file === undefined ? undefined : (createRequire(import.meta.url)(file) as T);
}
