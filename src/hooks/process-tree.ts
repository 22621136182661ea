// The whole process tree of one script, found through /proc and killed as a unit.
//
// A script runs in its own session and process group (the runner spawns it detached), but a
// process group is not a tree: a descendant that calls setsid(), or a daemon that forks twice,
// leaves the group, and killing the group misses it. Parent links in /proc/<pid>/stat do
// reach it, as long as its parent is alive. Once a parent dies, the kernel re-parents the
// orphan to the nearest ancestor marked as child subreaper, or to init: this process becomes
// one (native/ucarp_native.c), so orphans stay linked to us and stay findable. They are then
// our children but not libuv's, so libuv never reaps them; reapAdopted() does, for exactly
// those pids. The scripts themselves are reaped by whoever started them (the addon's
// posix_spawn path, or libuv; src/hooks/spawn-child.ts), never here.
//
// Membership of a tree, re-evaluated at each scan:
// - the leader, until the runner has seen it exit;
// - every process in the leader's session or process group (the ids cannot be reused while
//   any process still carries them);
// - every process seen as a member before, recognised by pid and start time;
// - an adopted orphan of ours (parent is this process, another session) whose environment
//   carries the run's token: a daemon that left the session and lost its parent keeps what
//   it inherited;
// - the descendants of all of the above.
import fs from 'node:fs';
import { native } from '../native';

export interface ProcEntry {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  /** One-letter state from /proc/<pid>/stat; 'Z' is a zombie, 'X' dead. */
  state: string;
  /** Start time in clock ticks since boot: tells a process from a later one with its pid. */
  start: number;
}

/** Environment variable through which a run's processes are recognised once orphaned. */
export const RUN_TOKEN_VAR = 'UCARP_RUN_ID';

/** How often the SIGTERM phase looks whether the tree is gone. */
const POLL_MS = 50;
/** SIGKILL rounds: each catches what was forked while the previous one was being sent. */
const KILL_ROUNDS = 20;
/** After SIGKILL, how long to wait for the members to die and be reaped. */
const REAP_WAIT_MS = 2000;

/** Parses /proc/<pid>/stat; the command name may contain spaces and parentheses. */
export function parseStat(text: string): ProcEntry | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  // After the name: state, ppid, pgrp, session, ..., and starttime as the 20th field.
  const f = text
    .slice(close + 2)
    .trim()
    .split(' ');
  if (f.length < 20 || !Number.isInteger(pid)) return undefined;
  return {
    pid,
    state: f[0],
    ppid: Number(f[1]),
    pgid: Number(f[2]),
    sid: Number(f[3]),
    start: Number(f[19]),
  };
}

async function readStat(pid: number): Promise<ProcEntry | undefined> {
  try {
    return parseStat(await fs.promises.readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

function readStatSync(pid: number | 'self'): ProcEntry | undefined {
  try {
    return parseStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Every process of the system. Asynchronous so that a host with thousands of them does not
 * stall the event loop, and with that the groups' advertisements. */
export async function readProcs(): Promise<Map<number, ProcEntry>> {
  const names = (await fs.promises.readdir('/proc')).filter((n) => /^\d+$/.test(n));
  const out = new Map<number, ProcEntry>();
  const BATCH = 64;
  for (let i = 0; i < names.length; i += BATCH) {
    const batch = await Promise.all(names.slice(i, i + BATCH).map((n) => readStat(Number(n))));
    for (const p of batch) if (p) out.set(p.pid, p);
  }
  return out;
}

const isGone = (p: ProcEntry | undefined): boolean => p === undefined || p.state === 'Z' || p.state === 'X';

// --- Adopted orphans -------------------------------------------------------------------------

/**
 * Children the runner started and whose end it has not seen yet: reaped by the addon or by
 * libuv, never by reapAdopted().
 */
const spawned = new Set<number>();
let subreaper: boolean | undefined;

export function trackSpawned(pid: number): void {
  spawned.add(pid);
}

/** Once the child's end is reported: it has been reaped. */
export function untrackSpawned(pid: number): void {
  spawned.delete(pid);
}

/**
 * Marks this process as child subreaper (once) and reaps the orphans it adopts as they die.
 * False when the kernel or a seccomp filter refuses, or the addon is missing: orphans then go
 * to init, which reaps them, and only those still linked to the tree can be killed.
 */
export function becomeSubreaper(): boolean {
  if (subreaper !== undefined) return subreaper;
  try {
    native().setChildSubreaper();
    subreaper = true;
  } catch {
    subreaper = false;
    return false;
  }
  let scheduled = false;
  // Signal handles do not keep the process alive.
  process.on('SIGCHLD', () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      reapAdopted();
    });
  });
  return true;
}

/** This process's children, from every thread's list (a thread that forks is the parent). */
function ownChildren(): number[] {
  let tasks: string[];
  try {
    tasks = fs.readdirSync('/proc/self/task');
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const t of tasks) {
    try {
      for (const s of fs.readFileSync(`/proc/self/task/${t}/children`, 'utf8').split(' ')) {
        if (s !== '') pids.push(Number(s));
      }
    } catch {
      // A thread that just ended, or a kernel without CONFIG_PROC_CHILDREN: nothing adopted
      // is found here then, and the kill path reaps its own members (killTree).
    }
  }
  return pids;
}

/**
 * A child of ours that nobody else reaps: not started by the runner (or already reaped), and
 * outside our session. Children that other code of this process spawns without
 * `detached` share our session; the daemon spawns nothing detached but scripts.
 */
function isAdopted(p: ProcEntry, selfSid: number | undefined): boolean {
  return p.ppid === process.pid && !spawned.has(p.pid) && p.sid !== selfSid;
}

/** Reaps every adopted orphan that has died; returns how many. */
export function reapAdopted(): number {
  if (!subreaper) return 0;
  const selfSid = readStatSync('self')?.sid;
  let reaped = 0;
  for (const pid of ownChildren()) {
    const p = readStatSync(pid);
    if (p && p.state === 'Z' && isAdopted(p, selfSid) && native().reapChild(pid) === 1) reaped++;
  }
  return reaped;
}

function hasToken(pid: number, token: string): boolean {
  let env: string;
  try {
    env = fs.readFileSync(`/proc/${pid}/environ`, 'latin1');
  } catch {
    return false;
  }
  const entry = `${RUN_TOKEN_VAR}=${token}\0`;
  return env.startsWith(entry) || env.includes(`\0${entry}`);
}

// --- One tree --------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class ProcessTree {
  private leaderAlive = true;
  private readonly leaderStart: number | undefined;
  /** Every member seen so far: pid → start time. */
  private readonly known = new Map<number, number>();

  /**
   * @param leader pid of the spawned script, leader of its own session and process group,
   *   not yet reaped (call right after spawning)
   * @param token value of RUN_TOKEN_VAR in the script's environment
   */
  constructor(
    readonly leader: number,
    readonly token: string,
  ) {
    this.leaderStart = readStatSync(leader)?.start;
  }

  /** The runner saw the leader's 'exit': libuv reaped it, its pid may be reused. */
  leaderExited(): void {
    this.leaderAlive = false;
  }

  /** Current members, zombies included. */
  async members(): Promise<ProcEntry[]> {
    return this.collect(await readProcs());
  }

  private collect(procs: Map<number, ProcEntry>): ProcEntry[] {
    const self = process.pid;
    const selfSid = procs.get(self)?.sid;
    // The session and group ids stay the leader's pid: the kernel does not hand that pid out
    // again while any process carries them. Only once it shows up with another start time do
    // they belong to someone else.
    const reused = this.leaderReused(procs);
    const l = reused ? -1 : this.leader;
    const seeds: number[] = [];
    const children = new Map<number, number[]>();
    for (const p of procs.values()) {
      const list = children.get(p.ppid);
      if (list) list.push(p.pid);
      else children.set(p.ppid, [p.pid]);
      if (p.pid === self || p.pid === 1) continue;
      if (
        (p.pid === l && this.leaderAlive) ||
        p.sid === l ||
        p.pgid === l ||
        this.known.get(p.pid) === p.start ||
        (isAdopted(p, selfSid) && hasToken(p.pid, this.token))
      ) {
        seeds.push(p.pid);
      }
    }
    const found = new Map<number, ProcEntry>();
    const stack = seeds;
    while (stack.length > 0) {
      const pid = stack.pop() as number;
      const p = procs.get(pid);
      if (!p || pid === self || pid === 1 || found.has(pid)) continue;
      found.set(pid, p);
      for (const c of children.get(pid) ?? []) stack.push(c);
    }
    for (const p of found.values()) this.known.set(p.pid, p.start);
    return [...found.values()];
  }

  private leaderReused(procs: Map<number, ProcEntry>): boolean {
    const p = procs.get(this.leader);
    return p !== undefined && (!this.leaderAlive || p.start !== this.leaderStart);
  }

  private signal(members: ProcEntry[], sig: NodeJS.Signals): void {
    // The group as well: it also reaches what was forked in it since the scan.
    const group = members.some((p) => p.pgid === this.leader);
    const targets = group ? [-this.leader] : [];
    for (const p of members) if (!isGone(p)) targets.push(p.pid);
    for (const t of targets) {
      try {
        process.kill(t, sig);
      } catch {
        // Already gone.
      }
    }
  }

  /** Known members still running, by re-reading only their own stat files. */
  private async anyKnownAlive(): Promise<boolean> {
    const checks = await Promise.all(
      [...this.known].map(async ([pid, start]) => {
        const p = await readStat(pid);
        return p !== undefined && p.start === start && !isGone(p);
      }),
    );
    return checks.some(Boolean);
  }

  /**
   * SIGTERM to every member, SIGKILL to what is left after `graceMs`, then waits until no
   * member remains, zombie or not (reaping the adopted ones). Resolves early when the tree
   * ends sooner.
   */
  async kill(graceMs: number): Promise<void> {
    const deadline = performance.now() + graceMs;
    this.signal(await this.members(), 'SIGTERM');
    for (;;) {
      if (!(await this.anyKnownAlive())) {
        // Whatever was forked after the first scan is not known yet.
        const fresh = (await this.members()).filter((p) => !isGone(p));
        if (fresh.length === 0) break;
        this.signal(fresh, 'SIGTERM');
      }
      const left = deadline - performance.now();
      if (left <= 0) break;
      await sleep(Math.min(POLL_MS, left));
    }
    for (let round = 0; round < KILL_ROUNDS; round++) {
      const alive = (await this.members()).filter((p) => !isGone(p));
      if (alive.length === 0) break;
      this.signal(alive, 'SIGKILL');
      await sleep(round === 0 ? 5 : 20);
    }
    await this.reapMembers();
  }

  /**
   * Dead members end up as zombies of ours (the subreaper inherits them when their parent
   * dies): reap them, and wait for the rest (the leader, which libuv reaps, or orphans that
   * went to init without the subreaper).
   */
  private async reapMembers(): Promise<void> {
    const until = performance.now() + REAP_WAIT_MS;
    for (;;) {
      reapAdopted();
      const left = (await this.members()).filter((p) => !(p.pid === this.leader && !this.leaderAlive));
      if (left.length === 0 || performance.now() > until) return;
      await sleep(10);
    }
  }
}
