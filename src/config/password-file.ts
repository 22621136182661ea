// Reading a password from a file, as ucarp's --passfile does it (fgets into a 512-byte buffer):
// the first line, without its newline, cut at a NUL byte. Shared by the YAML front end
// (password_file) and ucarp's command line (-o), which word their errors differently.
import * as fs from 'node:fs';

export type PasswordFileResult =
  | { ok: true; password: string; /** st_mode, for the world-readable warning. */ mode: number }
  | { ok: false; stage: 'open' | 'read'; error: NodeJS.ErrnoException }
  | { ok: false; stage: 'empty' };

/** fgets(buf, 512) reads at most 511 bytes. */
const LINE_MAX = 511;

export function readPasswordFile(file: string): PasswordFileResult {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (error) {
    return { ok: false, stage: 'open', error: error as NodeJS.ErrnoException };
  }
  try {
    const buf = Buffer.alloc(LINE_MAX);
    let n: number;
    let mode: number;
    try {
      mode = fs.fstatSync(fd).mode;
      n = fs.readSync(fd, buf, 0, buf.length, null);
    } catch (error) {
      return { ok: false, stage: 'read', error: error as NodeJS.ErrnoException };
    }
    if (n === 0) return { ok: false, stage: 'empty' };
    const line = buf.subarray(0, n);
    const nl = line.indexOf(0x0a);
    let end = nl < 0 ? n : nl;
    const nul = line.subarray(0, end).indexOf(0);
    if (nul >= 0) end = nul;
    return { ok: true, password: line.subarray(0, end).toString('utf8'), mode };
  } finally {
    fs.closeSync(fd);
  }
}
