#!/usr/bin/env node
// `gatehouse` command line: dispatches to one module per command. Each command returns its exit
// code: 0 success, 1 a failure of the thing asked for (invalid config, start-up failed), 2 bad usage.

const USAGE = `usage: gatehouse <command> [options]

commands:
  start [--config FILE]        run the gateway (without --config: the embedded demo default)
  validate --config FILE       check a configuration file; prints FILE:LINE:COL: field: problem
  certs init|issue|revoke|inspect ...   development CA (gatehouse certs --help)
  grpc-health [--address HOST:PORT]      the standard gRPC health check over HTTP/2 with mTLS
`;

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  start: async () => (await import('./commands/start.js')).main,
  validate: async () => (await import('./commands/validate.js')).main,
  certs: async () => (await import('../certs/certs-command.js')).main,
  'grpc-health': async () => (await import('./commands/grpc-health.js')).main,
};

async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return name ? 0 : 2;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`gatehouse: unknown command '${name}'\n${USAGE}`);
    return 2;
  }
  return (await load())(rest);
}

run(process.argv.slice(2)).then(
  (code) => {
    // `start` keeps the process alive through its servers; others exit with their code.
    if (code !== -1) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`gatehouse: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
