// One benchmark at a time per work tree: two runs would mint certificates over each other in
// bench/.work/pki (a proxy started by one would no longer be trusted by the other's origin) and
// compete for the same two cores. A lock file holds the running harness's pid; a stale one (its
// process gone) is taken over.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { WORK_DIR } from './layout.js';

const LOCK_FILE = path.join(WORK_DIR, 'bench.lock');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock or throws naming the run that holds it; released on exit. */
export function acquireRunLock(): void {
  mkdirSync(WORK_DIR, { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(LOCK_FILE, String(process.pid), { flag: 'wx' });
      process.on('exit', releaseRunLock);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number(readFileSync(LOCK_FILE, 'utf8').trim());
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
      throw new Error(`another benchmark (pid ${holder}) is running in this work tree; wait for it to finish (${path.relative(process.cwd(), LOCK_FILE)})`);
    }
    rmSync(LOCK_FILE, { force: true }); // stale: its process is gone
  }
  throw new Error(`cannot take ${LOCK_FILE}`);
}

export function releaseRunLock(): void {
  try {
    if (Number(readFileSync(LOCK_FILE, 'utf8').trim()) === process.pid) rmSync(LOCK_FILE, { force: true });
  } catch {
    /* already gone */
  }
}
