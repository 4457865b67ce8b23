// `gatehouse certs`: a development CA. Dispatches to one module per subcommand and turns their
// errors into exit codes: 0 done, 1 refused or failed (or, for inspect, a failing verdict), 2 a bad
// or missing argument, always reported on one line as `gatehouse certs <sub>: <problem>`.
import { processIo, type CommandIo, type Subcommand } from './command-io.js';
import { initCommand } from './init-command.js';
import { inspectCommand } from './inspect-command.js';
import { CertificateInputError } from './inspect-certificate.js';
import { issueCommand } from './issue-command.js';
import { CommandFailure, UsageError } from './parse-args.js';
import { revokeCommand } from './revoke-command.js';

const SUBCOMMANDS: Readonly<Record<string, Subcommand>> = {
  init: initCommand,
  issue: issueCommand,
  revoke: revokeCommand,
  inspect: inspectCommand,
};

const NAMES = Object.keys(SUBCOMMANDS).join(', ');

const USAGE =
  `usage: gatehouse certs <subcommand> [options]     (gatehouse certs <subcommand> --help for its options)\n\n` +
  `A development CA: ECDSA P-256 certificates with SPIFFE IDs, on @peculiar/x509.\n\n` +
  Object.entries(SUBCOMMANDS)
    .map(([name, sub]) => `  ${name.padEnd(9)}${sub.summary}\n`)
    .join('') +
  `\nexample:\n` +
  `  gatehouse certs init --dir ca --trust-domain example.org\n` +
  `  gatehouse certs issue --ca ca --spiffe-id spiffe://example.org/ns/web/sa/frontend --out frontend\n` +
  `  gatehouse certs inspect frontend.crt --ca ca/ca.crt --crl ca/ca.crl --usage client\n`;

const isHelp = (arg: string) => arg === '--help' || arg === '-h';

/** One line, whatever the error message holds. */
const oneLine = (text: string) => text.replace(/\s*\n\s*/g, ' ').trim();

export async function main(argv: string[], io: CommandIo = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.err(`gatehouse certs: missing subcommand (${NAMES}; see gatehouse certs --help)\n`);
    return 2;
  }
  if (isHelp(name) || name === 'help') {
    io.out(USAGE);
    return 0;
  }
  const sub = SUBCOMMANDS[name];
  if (!sub) {
    io.err(`gatehouse certs: unknown subcommand '${name}' (${NAMES})\n`);
    return 2;
  }
  const flags = rest.indexOf('--');
  if ((flags === -1 ? rest : rest.slice(0, flags)).some(isHelp)) {
    io.out(sub.help);
    return 0;
  }
  try {
    return await sub.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError || err instanceof CertificateInputError) {
      io.err(`gatehouse certs ${name}: ${oneLine(err.message)}\n`);
      return 2;
    }
    // A file system error (a read-only --out directory, a full disk) is a failure, not a bug.
    if (err instanceof CommandFailure || (err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === 'string')) {
      io.err(`gatehouse certs ${name}: ${oneLine(err.message)}\n`);
      return 1;
    }
    throw err;
  }
}
