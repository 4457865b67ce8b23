// Where a `certs` subcommand writes and how it reads the files it is given. Output goes through an
// injectable pair of writers so that tests run the command in-process and read what it printed.
import fs from 'node:fs';
import { UsageError } from './parse-args.js';

export interface CommandIo {
  out(text: string): void;
  err(text: string): void;
}

export const processIo: CommandIo = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

/** Reads a file named on the command line; a missing or unreadable one is a usage error. */
export function readInputFile(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new UsageError(`cannot read ${what} ${file}: ${why}`);
  }
}

/** A subcommand of `gatehouse certs`: its help text and what it does (exit code 0 or 1; throws for 2). */
export interface Subcommand {
  readonly summary: string;
  readonly help: string;
  run(argv: readonly string[], io: CommandIo): Promise<number>;
}
