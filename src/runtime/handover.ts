// What the daemon hands to its next image when it replaces itself (ucarpctl restart): each
// group's state and counter, in a file next to the control socket that the new image reads
// and deletes before it starts any group. Only the same process (same pid, after execve) may
// take it, and only soon after it was written; a group carries on only if its identity
// (diff.ts) is unchanged, and a master only while its peers cannot have timed it out yet.
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { GroupConfig } from '../config/types';
import { RESTART_LIMITS } from '../config/settings';
import { intervalUnits, unitsToMs, type ResumeState } from '../engine/group';
import { IDENTITY } from './diff';
import { errorMessage } from '../errors';

const FORMAT_VERSION = 1;
const U64_MAX = (1n << 64n) - 1n;

export interface GroupHandover {
  name: string;
  state: ResumeState;
  /** The CARP counter of the last advertisement sent or heard, as a decimal string. */
  counter: string;
  /**
   * The identity settings (diff.ts IDENTITY) the group ran with; the password only as a
   * salted SHA-256 (`passwordDigest`), so that a changed one is noticed.
   */
  identity: Record<string, unknown>;
}

export interface Handover {
  version: number;
  pid: number;
  /** CLOCK_MONOTONIC in milliseconds when written: it runs on across execve. */
  writtenAtMs: number;
  /** The salt of the password digests (groupIdentity). */
  salt: string;
  groups: GroupHandover[];
}

/** What a group resumes with in the new image. */
export interface GroupResume {
  state: ResumeState;
  counter: bigint;
  /** The source it ran with, learnt from the interface when the file names none. */
  srcip: string;
}

/**
 * The password stays out of a file that is not the configuration: only a salted digest of it
 * goes in (`salt` random per handover, hex), enough to tell a changed password.
 */
export function groupIdentity(cfg: GroupConfig, salt: string): Record<string, unknown> {
  const id: Record<string, unknown> = Object.fromEntries(
    IDENTITY.filter((k) => k !== 'password').map((k) => [k, cfg[k]]),
  );
  id.passwordDigest = createHash('sha256').update(salt).update(cfg.password).digest('hex');
  return id;
}

/** A fresh salt for one handover's password digests. */
export function newSalt(): string {
  return randomBytes(16).toString('hex');
}

/** /run/ucarp/control.sock → /run/ucarp/control.handover.json (as the address record). */
export function handoverPath(socket: string): string {
  const base = path.basename(socket).replace(/\.sock$/, '');
  return path.join(path.dirname(socket), `${base}.handover.json`);
}

export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}

/** Written atomically and synchronously: the next thing the process does is execve(). */
export function writeHandover(file: string, h: Handover): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  fs.writeFileSync(tmp, JSON.stringify(h) + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export type ParsedHandover = { ok: true; handover: Handover } | { ok: false; why: string };

/** Checks a handover's text for this process (`pid`) at monotonic time `nowMs`. */
export function parseHandover(text: string, pid: number, nowMs: number): ParsedHandover {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { ok: false, why: 'not valid JSON' };
  }
  const h = v as Partial<Handover> | null;
  if (typeof h !== 'object' || h === null || h.version !== FORMAT_VERSION)
    return { ok: false, why: `not a version ${FORMAT_VERSION} handover` };
  if (h.pid !== pid) return { ok: false, why: `written by pid ${String(h.pid)}, not this process` };
  if (typeof h.writtenAtMs !== 'number' || typeof h.salt !== 'string' || !Array.isArray(h.groups))
    return { ok: false, why: 'missing fields' };
  const age = nowMs - h.writtenAtMs;
  if (age < 0 || age > RESTART_LIMITS.handoverMaxAgeMs)
    return { ok: false, why: `written ${Math.round(age)} ms ago` };
  const groups = h.groups.filter(
    (g): g is GroupHandover =>
      typeof g === 'object' &&
      g !== null &&
      typeof g.name === 'string' &&
      (g.state === 'MASTER' || g.state === 'BACKUP') &&
      typeof g.counter === 'string' &&
      /^\d{1,20}$/.test(g.counter) &&
      BigInt(g.counter) <= U64_MAX &&
      typeof g.identity === 'object' &&
      g.identity !== null,
  );
  return {
    ok: true,
    handover: { version: h.version, pid, writtenAtMs: h.writtenAtMs, salt: h.salt, groups },
  };
}

/**
 * Reads and deletes the handover; null when there is none or it is not for this process
 * (`why` says why, for the log).
 */
export function takeHandover(
  file: string,
  pid: number = process.pid,
  nowMs: number = monotonicMs(),
): { handover: Handover | null; why?: string } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { handover: null };
    return { handover: null, why: errorMessage(e) };
  }
  // Whatever it says, it is used at most once.
  fs.rmSync(file, { force: true });
  const r = parseHandover(text, pid, nowMs);
  return r.ok ? { handover: r.handover } : { handover: null, why: r.why };
}

/**
 * How each configured group carries on: only a group of the same name and identity, and a
 * master only while no peer can have declared it down: its last advertisement went out just
 * before the handover was written, and a peer's master-down interval is at least advbase ×
 * deadratio (docs/protocol.md §8). The others start afresh.
 */
export function resumeGroups(
  h: Handover,
  configs: readonly GroupConfig[],
  nowMs: number,
): Map<string, GroupResume> {
  const age = nowMs - h.writtenAtMs;
  const byName = new Map(h.groups.map((g) => [g.name, g]));
  const out = new Map<string, GroupResume>();
  for (const cfg of configs) {
    const g = byName.get(cfg.name);
    if (!g) continue;
    const srcip = cfg.srcip === '' ? String(g.identity.srcip ?? '') : cfg.srcip;
    if (!isDeepStrictEqual(groupIdentity({ ...cfg, srcip }, h.salt), g.identity)) continue;
    const masterDown = unitsToMs(intervalUnits(cfg.advbase * cfg.deadratio, 0));
    if (g.state === 'MASTER' && age >= masterDown) continue;
    out.set(cfg.name, { state: g.state, counter: BigInt(g.counter), srcip });
  }
  return out;
}
