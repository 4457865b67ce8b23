// gateway/http2/native/nghttp2-api.h declares the part of nghttp2's API the engine uses, so that
// building needs no nghttp2 package. Here it is held to nghttp2's own header where one is
// installed (CI installs libnghttp2-dev for the benchmark's load generator): the same sizes,
// offsets and constants compiled against each, and every function and callback type declared
// here compiled beside nghttp2's and required to be the same type.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const OURS = path.resolve('gateway/http2/native/nghttp2-api.h');
const INSTALLED = '/usr/include/nghttp2/nghttp2.h';
const compiler = process.env.CC ?? 'cc';

/** What must read the same through both headers. */
const LAYOUT = [
  'sizeof(nghttp2_nv)', 'offsetof(nghttp2_nv, value)', 'offsetof(nghttp2_nv, namelen)', 'offsetof(nghttp2_nv, valuelen)', 'offsetof(nghttp2_nv, flags)',
  'sizeof(nghttp2_frame_hd)', 'offsetof(nghttp2_frame_hd, stream_id)', 'offsetof(nghttp2_frame_hd, type)', 'offsetof(nghttp2_frame_hd, flags)',
  'offsetof(nghttp2_frame, headers.cat)', 'offsetof(nghttp2_frame, headers.nva)', 'offsetof(nghttp2_frame, headers.nvlen)',
  'offsetof(nghttp2_frame, rst_stream.error_code)', 'offsetof(nghttp2_frame, settings.niv)', 'offsetof(nghttp2_frame, settings.iv)',
  'offsetof(nghttp2_frame, goaway.last_stream_id)', 'offsetof(nghttp2_frame, goaway.error_code)', 'offsetof(nghttp2_frame, ping.opaque_data)',
  'sizeof(nghttp2_settings_entry)', 'offsetof(nghttp2_settings_entry, value)', 'sizeof(nghttp2_priority_spec)',
  'sizeof(nghttp2_data_source)', 'sizeof(nghttp2_data_provider)', 'offsetof(nghttp2_data_provider, read_callback)',
];

/** Every NGHTTP2_* constant our header defines (enum members and macros), read from its text. */
function constantsOf(text: string): string[] {
  return [...new Set([...text.matchAll(/\b(NGHTTP2_[A-Z0-9_]+)\s*(?:=|\(|-?\d|0x)/g)].map((m) => m[1]!))].filter((name) => name !== 'NGHTTP2_H');
}

function compileAndRun(dir: string, name: string, source: string, defines: string[]): string {
  const file = path.join(dir, `${name}.c`);
  fs.writeFileSync(file, source);
  execFileSync(compiler, [...defines, file, '-o', path.join(dir, name)], { stdio: ['ignore', 'ignore', 'pipe'] });
  return execFileSync(path.join(dir, name), { encoding: 'utf8' });
}

describe.skipIf(!fs.existsSync(INSTALLED))("nghttp2-api.h against nghttp2's own header", () => {
  const ours = fs.readFileSync(OURS, 'utf8');
  const installed = fs.readFileSync(INSTALLED, 'utf8');

  it('has the same struct sizes, member offsets and constant values', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nghttp2-api-'));
    try {
      const values = [...LAYOUT, ...constantsOf(ours)];
      const source = `#include <stdio.h>\n#include <stddef.h>\n#include HEADER\nint main(void) {\n${values.map((v) => `  printf("%s %ld\\n", ${JSON.stringify(v)}, (long)(${v}));`).join('\n')}\n  return 0;\n}\n`;
      const viaOurs = compileAndRun(dir, 'ours', source, [`-DHEADER="${OURS}"`]);
      const viaInstalled = compileAndRun(dir, 'installed', source, ['-DHEADER=<nghttp2/nghttp2.h>']);
      expect(viaOurs.split('\n').length).toBeGreaterThan(LAYOUT.length + 20);
      expect(viaOurs).toBe(viaInstalled);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('declares every function and callback type as nghttp2 does', () => {
    const functions = [...ours.split('/* Functions. */')[1]!.matchAll(/\b(nghttp2_[a-z0-9_]+)\(/g)].map((m) => m[1]!);
    const callbacks = [...ours.matchAll(/(typedef [^;]*?\(\*(nghttp2_[a-z_]+_callback)\)[^;]*;)/g)].map((m) => ({ text: m[1]!, name: m[2]! }));
    // A function newer than the installed header cannot be compared here.
    const comparable = functions.filter((f) => new RegExp(`\\b${f}\\s*\\(`).test(installed));
    expect(comparable.length).toBeGreaterThan(20);
    expect(callbacks.length).toBeGreaterThan(5);
    let source = '#include <nghttp2/nghttp2.h>\n';
    for (const f of comparable) source += `#define ${f} ours_${f}\n`;
    source += `#include "${OURS}"\n`; // its types are skipped (nghttp2.h came first); its functions renamed
    for (const f of comparable) source += `#undef ${f}\n_Static_assert(__builtin_types_compatible_p(__typeof__(${f}), __typeof__(ours_${f})), "${f}");\n`;
    for (const { text, name } of callbacks) {
      source += `${text.replace(`(*${name})`, `(*ours_${name})`)}\n_Static_assert(__builtin_types_compatible_p(${name}, ours_${name}), "${name}");\n`;
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nghttp2-api-'));
    try {
      const file = path.join(dir, 'signatures.c');
      fs.writeFileSync(file, source);
      let failure = '';
      try {
        execFileSync(compiler, ['-c', file, '-o', path.join(dir, 'signatures.o')], { stdio: ['ignore', 'ignore', 'pipe'] });
      } catch (err) {
        failure = String((err as { stderr?: Buffer }).stderr ?? err);
      }
      expect(failure.match(/static assertion failed: "[^"]+"/g) ?? failure).toEqual('');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
