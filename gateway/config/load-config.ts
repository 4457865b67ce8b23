// Loads a configuration file: YAML → strict schema → rules between sections → file checks →
// a deep-frozen GatewayConfig, or every problem found, each with file, line, column and the
// field's path. Used by `gatehouse start` and `gatehouse validate`, and on reload.
import fs from 'node:fs';
import path from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { checkFiles } from './check-files.js';
import { ProblemCollector, type ConfigProblem } from './config-problem.js';
import { checkRules } from './config-rules.js';
import { readGatewayConfig } from './config-schema.js';
import { deepFreeze } from './deep-freeze.js';
import type { GatewayConfig } from './types.js';
import { ReadContext } from './yaml-reader.js';

export { formatProblem, type ConfigProblem } from './config-problem.js';

/** `warnings`: valid, but worth telling (an unused upstream, a stale CRL); `validate` prints them. */
export type ConfigResult =
  | { readonly ok: true; readonly config: GatewayConfig; readonly warnings: readonly ConfigProblem[] }
  | { readonly ok: false; readonly problems: readonly ConfigProblem[]; readonly warnings: readonly ConfigProblem[] };

export interface LoadOptions {
  /** Check the files the config names (exist, parse, keys match, not expired). Default true. */
  readonly checkFiles?: boolean;
  /** The moment certificates must be valid at; default now. */
  readonly now?: Date;
}

/**
 * Validates YAML `text`; `file` names it in problems and becomes `config.source`, relative paths
 * in it are resolved against `baseDir`.
 */
export function parseConfig(text: string, file: string, baseDir: string, options: LoadOptions = {}): ConfigResult {
  const lineCounter = new LineCounter();
  const problems = new ProblemCollector(file, lineCounter);
  // Duplicate keys are left to the reader, which reports them with their path.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false, version: '1.2' });
  for (const error of [...doc.errors, ...doc.warnings]) problems.atOffset(error.pos[0], '', `YAML: ${firstLine(error.message)}`);
  // A document that does not parse would only produce misleading follow-up problems.
  if (doc.errors.length > 0) return failed(problems);

  const cx = new ReadContext(doc, problems, path.resolve(baseDir));
  const config = readGatewayConfig(cx, file);
  if (config) checkRules(config, cx);
  if (!config || problems.count > 0) return failed(problems);
  if (options.checkFiles !== false) {
    checkFiles(config, cx, (options.now ?? new Date()).getTime());
    if (problems.count > 0) return failed(problems);
  }
  return { ok: true, config: deepFreeze(config), warnings: problems.warnings };
}

/** Reads and validates the file at `file`; relative paths in it are relative to its directory. */
export function loadConfigFile(file: string, options: LoadOptions = {}): ConfigResult {
  const text = readConfigText(file);
  return text.ok ? parseConfig(text.text, text.file, text.baseDir, options) : text;
}

/** A configuration's text with what parseConfig needs to know about it (a reload reads once and sends it to every worker). */
export interface ConfigText {
  readonly ok: true;
  readonly text: string;
  readonly file: string;
  readonly baseDir: string;
}

/** The text of the file at `file`, or the reason it cannot be read as a problem. */
export function readConfigText(file: string): ConfigText | Extract<ConfigResult, { ok: false }> {
  try {
    return { ok: true, text: fs.readFileSync(file, 'utf8'), file, baseDir: path.dirname(path.resolve(file)) };
  } catch (err) {
    const problems = new ProblemCollector(file);
    const code = (err as NodeJS.ErrnoException).code;
    problems.atFile(code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory, not a file' : `cannot read: ${(err as Error).message}`);
    return { ok: false, problems: problems.problems, warnings: problems.warnings };
  }
}

function failed(problems: ProblemCollector): ConfigResult {
  return { ok: false, problems: problems.problems, warnings: problems.warnings };
}

/** The yaml package's messages can carry a source excerpt on further lines; the position says where. */
function firstLine(message: string): string {
  return message.split('\n', 1)[0]!.replace(/ at line \d+, column \d+:?$/, '');
}
