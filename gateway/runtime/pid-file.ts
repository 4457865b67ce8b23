// `gatehouse start --pid-file FILE`: the pid of the serving process, for `kill -HUP`, `-TERM` and
// `-USR2` (handover) and for supervisors that follow a pid file. Written once the process serves;
// the next generation of a handover writes its own over it, so a process removes the file at exit
// only while it still names it.
import fs from 'node:fs';

export class PidFile {
  constructor(private readonly file: string) {}

  /** Written whole under a temporary name and renamed: a reader never sees half a pid. */
  write(): void {
    const temp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(temp, `${process.pid}\n`);
    fs.renameSync(temp, this.file);
  }

  /** Removes the file if it still names this process. */
  remove(): void {
    try {
      if (fs.readFileSync(this.file, 'utf8').trim() === String(process.pid)) fs.rmSync(this.file);
    } catch {
      // gone already
    }
  }
}
