// `gatehouse validate --config FILE`: checks a configuration without starting anything. Problems
// go to stderr one per line, `FILE:LINE:COL: path.to.field: what is wrong`, and the exit code is
// 1; a valid file prints a one-line summary (and any warnings) and exits 0. Bad usage exits 2.
import { parseArgs } from 'node:util';
import { formatProblem, loadConfigFile } from '../config/load-config.js';
import type { GatewayConfig } from '../config/types.js';

const USAGE_LINE = 'usage: gatehouse validate --config FILE [--schema-only]';

const USAGE = `${USAGE_LINE}

Checks a configuration file (see routes/reference.yaml) without starting anything.

  --config FILE    the YAML configuration to check
  --schema-only    check keys, values and references, but not the certificate, key and CRL files
                   the configuration names (for a machine that does not hold them)

Prints FILE:LINE:COL: path.to.field: problem for each problem and exits 1, or
FILE: ok (N listeners, N routes, N upstreams) and exits 0.
`;

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { config: { type: 'string' }, 'schema-only': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: false,
    }));
  } catch (err) {
    return usageError(oneLine((err as Error).message));
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.config === undefined || values.config === '') return usageError('--config FILE is required');

  const result = loadConfigFile(values.config, { checkFiles: !values['schema-only'] });
  const warnings = result.warnings.map((w) => ({ ...w, message: `warning: ${w.message}` }));
  const lines = [...(result.ok ? [] : result.problems), ...warnings].sort((a, b) => a.line - b.line || a.col - b.col);
  for (const line of lines) process.stderr.write(formatProblem(line) + '\n');
  if (!result.ok) return 1;
  process.stdout.write(`${values.config}: ok (${summary(result.config)})\n`);
  return 0;
}

function usageError(message: string): number {
  process.stderr.write(`gatehouse validate: ${message} (${USAGE_LINE})\n`);
  return 2;
}

/** Node's parseArgs messages run over several lines with advice for its own API; keep the first. */
function oneLine(message: string): string {
  return message.split('\n', 1)[0]!.replace(/\. To specify a positional argument.*$/, '');
}

function summary(config: GatewayConfig): string {
  const routes = config.listeners.reduce((n, l) => n + l.routes.length, 0);
  const count = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  return `${count(config.listeners.length, 'listener')}, ${count(routes, 'route')}, ${count(config.upstreams.length, 'upstream')}`;
}
