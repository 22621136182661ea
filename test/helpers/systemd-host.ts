// A real systemd booted as PID 1 of its own PID, mount, cgroup, network, UTS and IPC
// namespaces, so that a unit file can be tested with systemctl and journalctl on a machine
// where systemd is installed but not running (a CI VM or container), or next to the host's own
// systemd.
//
// Isolation from the host, and why each piece is there:
// - Root file system: an overlay whose lower layer is the host's `/` and whose upper layer is a
//   tmpfs mounted inside the namespace. Whatever the booted system writes (journal, units,
//   /etc/ucarp.yaml) lands there and disappears with the namespace; the host's files are never
//   written.
// - /run and /tmp: fresh tmpfs on the new root before systemd starts, and the host's root is
//   detached (pivot_root), so the host's /tmp and /run are not even reachable from inside.
// - /dev: a tmpfs with a few bound device nodes. Binding the host's devtmpfs would let units
//   create entries in it (the journal's dev-log socket makes /dev/log).
// - Units: the overlay's /etc/systemd/system is emptied and refilled with the caller's files,
//   and SYSTEMD_UNIT_PATH makes that directory the only unit directory. No unit of the host
//   (enabled or static: sysctl, modules-load, binfmt, tmpfiles clean-up, networking ...) can be
//   loaded, so nothing can start a second time or change global kernel settings; whatever the
//   booted units need (journald, stub targets) is given explicitly. A test that installs a
//   package may add the package unit directory (packageUnitDirs): it is shown empty, so only
//   the units the package installs there appear.
// - Network: an empty network namespace for PID 1, so that no unit touches the host's
//   interfaces by accident; units join a test namespace with NetworkNamespacePath=, whose
//   /run/netns entry is bound into the new /run.
// - cgroups: PID 1 runs in a cgroup namespace rooted at a child cgroup created here, with a
//   cgroup2 mount of its own, so systemd's slices and scopes are created under that child and
//   removed with it.
// Teardown kills PID 1 of the namespace (the kernel then kills everything inside), removes the
// cgroup tree and the temporary directory, also from a process 'exit' hook.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';

/** Thrown when this machine cannot boot systemd at all; the message says why. */
export class CannotBoot extends Error {}

export interface BootOptions {
  /** Per-run prefix (cgroup and temporary directory names). */
  prefix: string;
  /** Files of the booted system, absolute path → contents, written over the overlay before boot. */
  files: Record<string, string>;
  /** The target systemd boots (--unit=); must be among `files`. */
  unit: string;
  /** Names under /run/netns made available at the same path inside. */
  netns: string[];
  /** Host directories visible at the same path inside even if the overlay would not show them. */
  bind: string[];
  /**
   * Unit directories that packages install into (e.g. /lib/systemd/system), shown empty (a
   * tmpfs over them) and searched after /etc/systemd/system: a unit installed by a package
   * under test can be enabled and started, and no unit of the host's packages can be loaded.
   */
  packageUnitDirs?: string[];
  bootTimeoutMs?: number;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

const SYSTEMD_CANDIDATES = ['/lib/systemd/systemd', '/usr/lib/systemd/systemd'];

// Runs as PID 1 of the new namespaces, before systemd: $1 is the temporary directory holding
// files/, netns.list and bind.list and the empty mount points layers/ and root/.
const BOOT_SCRIPT = String.raw`
set -eu
D=$1 SYSTEMD=$2 UNIT=$3
# Nothing mounted from here on may propagate to the host's mount table.
mount --make-rprivate /
# The upper layer on a tmpfs: a directory of the host's root file system would overlap the
# lower layer (refused by overlayfs), and the tmpfs vanishes with the namespace.
mount -t tmpfs -o mode=0700 sdlayers "$D/layers"
mkdir "$D/layers/upper" "$D/layers/work"
M=$D/root
mount -t overlay overlay -o "lowerdir=/,upperdir=$D/layers/upper,workdir=$D/layers/work" "$M"
# Before anything else is written: the host's /run and /tmp are never seen by the booted system
# (systemd's tmpfiles clean-up would empty a /tmp it can see).
mount -t tmpfs -o mode=0755,nosuid,nodev sdrun "$M/run"
mount -t tmpfs -o mode=1777,nosuid,nodev sdtmp "$M/tmp"
rm -rf "$M/etc/systemd/system"
cp -a "$D/files/." "$M/"
while IFS= read -r p; do
  mount -t tmpfs -o mode=0755 sdunits "$M$p"
done < "$D/unitdirs.list"
UNIT_PATH=/etc/systemd/system
while IFS= read -r p; do UNIT_PATH=$UNIT_PATH:$p; done < "$D/unitdirs.list"
mount -t proc proc "$M/proc"
mount -t sysfs -o ro sysfs "$M/sys"
mount -t cgroup2 cgroup2 "$M/sys/fs/cgroup"
mount -t tmpfs -o mode=0755,nosuid sddev "$M/dev"
for n in null zero full random urandom tty; do
  touch "$M/dev/$n"
  mount --bind "/dev/$n" "$M/dev/$n"
done
mkdir "$M/dev/shm" "$M/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev sdshm "$M/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$M/dev/pts"
ln -s pts/ptmx "$M/dev/ptmx"
mkdir -p "$M/run/netns"
while IFS= read -r n; do
  touch "$M/run/netns/$n"
  mount --bind "/run/netns/$n" "$M/run/netns/$n"
done < "$D/netns.list"
while IFS= read -r p; do
  mkdir -p "$M$p"
  mount --rbind "$p" "$M$p"
done < "$D/bind.list"
cd "$M"
pivot_root . .
umount -l .
cd /
exec env -i container=ucarp-test SYSTEMD_UNIT_PATH="$UNIT_PATH" \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  "$SYSTEMD" --unit="$UNIT"
`;

const live = new Set<SystemdHost>();
let hookInstalled = false;

function installExitHook(): void {
  if (hookInstalled) return;
  hookInstalled = true;
  process.on('exit', () => {
    for (const h of live) h.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const h of live) h.destroySync();
      process.exit(130);
    });
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The cgroup2 directory this process belongs to, as a host path. */
function ownCgroup2Dir(): string | null {
  const mnt = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .find((f) => f[f.indexOf('-') + 1] === 'cgroup2');
  const line = fs
    .readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  if (!mnt || !line) return null;
  // mountinfo fields: 3 is the mounted cgroup's own path, 4 where it is mounted.
  return path.join(mnt[4], path.relative(mnt[3], line.slice(3)));
}

/**
 * Whether a host path would be hidden or missing inside: the overlay shows only the root file
 * system, and /tmp, /run and /dev are replaced.
 */
export function needsBind(p: string): boolean {
  const real = fs.realpathSync(p);
  if (/^\/(tmp|run|dev|proc|sys)(\/|$)/.test(real)) return true;
  return fs.statSync(real).dev !== fs.statSync('/').dev;
}

/** Why systemd cannot be booted here, or null if it can be tried. */
export function bootBlocker(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (namespaces, mounts, cgroups)';
  if (!SYSTEMD_CANDIDATES.some((p) => fs.existsSync(p))) return 'no systemd binary (package systemd)';
  for (const c of ['unshare', 'nsenter', 'pivot_root', 'systemctl', 'journalctl']) {
    if (!has(c)) return `${c} not found`;
  }
  if (!ownCgroup2Dir()) return 'no cgroup2 hierarchy mounted';
  try {
    execFileSync('unshare', ['--pid', '--fork', '--mount', '--cgroup', '--net', '--uts', '--ipc', 'true'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  } catch (e) {
    const stderr = String((e as { stderr?: Buffer }).stderr ?? '').trim();
    return `unshare refused: ${stderr || (e as Error).message}`;
  }
  return null;
}

export class SystemdHost {
  /** PID 1 of the namespace, as the host sees it. */
  pid = 0;
  readonly dir: string;
  readonly cgroup: string;
  private outer: ChildProcess | undefined;
  private output = '';
  private destroyed = false;

  private constructor(
    readonly opts: BootOptions,
    cgroupParent: string,
  ) {
    this.cgroup = path.join(cgroupParent, `${opts.prefix}-systemd`);
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `${opts.prefix}-systemd-`));
  }

  static async boot(opts: BootOptions): Promise<SystemdHost> {
    const blocker = bootBlocker();
    if (blocker) throw new CannotBoot(blocker);
    const systemd = SYSTEMD_CANDIDATES.find((p) => fs.existsSync(p)) as string;
    const cgroupParent = ownCgroup2Dir() as string;
    installExitHook();
    const h = new SystemdHost(opts, cgroupParent);
    live.add(h);
    try {
      await h.start(systemd);
    } catch (e) {
      h.destroySync();
      throw e;
    }
    return h;
  }

  private async start(systemd: string): Promise<void> {
    const d = this.dir;
    for (const sub of ['layers', 'root', 'files']) fs.mkdirSync(path.join(d, sub));
    for (const [p, text] of Object.entries(this.opts.files)) {
      const f = path.join(d, 'files', p);
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.writeFileSync(f, text);
    }
    fs.writeFileSync(path.join(d, 'netns.list'), this.opts.netns.map((n) => n + '\n').join(''));
    fs.writeFileSync(path.join(d, 'bind.list'), this.opts.bind.map((p) => p + '\n').join(''));
    fs.writeFileSync(
      path.join(d, 'unitdirs.list'),
      (this.opts.packageUnitDirs ?? []).map((p) => p + '\n').join(''),
    );
    fs.writeFileSync(path.join(d, 'boot.sh'), BOOT_SCRIPT);
    fs.mkdirSync(this.cgroup);
    // The shell moves itself into the new cgroup before unshare, so that the cgroup namespace
    // is rooted there.
    const args = [
      '-c',
      'echo $$ > "$1/cgroup.procs" && shift && exec unshare --cgroup --pid --fork --mount-proc ' +
        '--mount --net --uts --ipc --propagation private sh "$@"',
      'sh',
      this.cgroup,
      path.join(d, 'boot.sh'),
      d,
      systemd,
      this.opts.unit,
    ];
    const outer = spawn('sh', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.outer = outer;
    outer.stdout?.on('data', (b: Buffer) => (this.output += b.toString()));
    outer.stderr?.on('data', (b: Buffer) => (this.output += b.toString()));
    const timeout = this.opts.bootTimeoutMs ?? 30000;
    const end = Date.now() + timeout;
    // unshare --fork: its only child is PID 1 of the new PID namespace.
    while (!this.pid) {
      if (outer.exitCode !== null || outer.signalCode !== null || Date.now() > end) {
        throw new Error(`namespace setup failed:\n${this.output}`);
      }
      await new Promise((r) => setTimeout(r, 20));
      try {
        const kids = fs.readFileSync(`/proc/${outer.pid}/task/${outer.pid}/children`, 'utf8').trim();
        if (kids) this.pid = Number(kids.split(/\s+/)[0]);
      } catch {
        // Not forked yet, or gone (checked above).
      }
    }
    let state = '';
    for (;;) {
      if (outer.exitCode !== null || outer.signalCode !== null) {
        throw new Error(`systemd exited during boot:\n${this.output}`);
      }
      // Only once PID 1 is systemd: before that its root is still the host's, where
      // systemctl would find the host's own systemd, if it runs one.
      let comm = '';
      try {
        comm = fs.readFileSync(`/proc/${this.pid}/comm`, 'utf8').trim();
      } catch {
        // PID 1 died: reported by the exit check above on the next round.
      }
      const r = comm === 'systemd' ? await this.exec('systemctl', ['is-system-running']) : null;
      state = r?.stdout.trim() ?? '';
      if (state === 'running' || state === 'degraded') return;
      if (Date.now() > end) {
        const jobs =
          comm === 'systemd'
            ? await this.exec('systemctl', ['list-jobs', '--no-pager']).catch(() => null)
            : null;
        throw new Error(
          `systemd did not finish booting within ${timeout} ms (state "${state}")\n` +
            `${jobs?.stdout ?? ''}\n${this.output}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Runs a command inside every namespace of the booted system. Never rejects on exit status. */
  exec(cmd: string, args: string[], timeoutMs = 30000): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      execFile(
        'nsenter',
        ['-a', '-t', String(this.pid), '--', cmd, ...args],
        {
          timeout: timeoutMs,
          maxBuffer: 64 << 20,
          env: { ...process.env, SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0', LANG: 'C.UTF-8' },
        },
        (err, stdout, stderr) => {
          if (err && typeof err.code !== 'number') {
            reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`));
            return;
          }
          resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
        },
      );
    });
  }

  /** systemctl inside; rejects unless it exits 0. */
  async systemctl(...args: string[]): Promise<string> {
    const r = await this.exec('systemctl', ['--no-pager', ...args]);
    if (r.code === 0) return r.stdout;
    // systemctl only says "see journalctl": the reason is in the journal.
    const log = await this.exec('journalctl', ['--no-pager', '-n', '40']).catch(() => null);
    throw new Error(
      `systemctl ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}\n${log?.stdout ?? ''}`,
    );
  }

  /** `systemctl show` properties of a unit. */
  async show(unit: string, props: string[]): Promise<Record<string, string>> {
    const out = await this.systemctl('show', unit, `--property=${props.join(',')}`);
    const m: Record<string, string> = {};
    for (const l of out.split('\n')) {
      const i = l.indexOf('=');
      if (i > 0) m[l.slice(0, i)] = l.slice(i + 1);
    }
    return m;
  }

  /** Journal entries (journalctl -o json) for the given journalctl arguments. */
  async journal(args: string[]): Promise<Record<string, unknown>[]> {
    const r = await this.exec('journalctl', ['--no-pager', '-o', 'json', ...args]);
    if (r.code !== 0) throw new Error(`journalctl ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
    return r.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** Writes a file of the booted system (through PID 1's root: the overlay, never the host). */
  writeFile(p: string, text: string): void {
    fs.writeFileSync(path.join(`/proc/${this.pid}/root`, p), text);
  }

  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    // SIGKILL to PID 1 of a PID namespace kills every process in it; the mount namespace with
    // the overlay and its tmpfs goes away with the last of them.
    for (const pid of [this.pid, this.outer?.pid]) {
      if (!pid) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    this.removeCgroup();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private removeCgroup(): void {
    if (!fs.existsSync(this.cgroup)) return;
    const dirs: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(path.join(d, e.name));
      }
      dirs.push(d);
    };
    // The killed processes leave their cgroups asynchronously: retry for a while.
    const end = Date.now() + 5000;
    for (;;) {
      try {
        dirs.length = 0;
        walk(this.cgroup);
        for (const d of dirs) fs.rmdirSync(d);
        return;
      } catch (e) {
        if (Date.now() > end) {
          process.stderr.write(`systemd-host: could not remove ${this.cgroup}: ${(e as Error).message}\n`);
          return;
        }
        sleepSync(50);
      }
    }
  }
}

/**
 * What every booted test system needs besides the units under test: journald (for journalctl)
 * from the installed systemd package, the target systemd boots (`target`, wanting journald),
 * and empty stand-ins for the targets units order against by default, which have nothing to
 * initialise here (the network is a test namespace).
 */
export function baseSystemFiles(target: string): Record<string, string> {
  const etc = '/etc/systemd/system';
  const sys = ['/lib/systemd/system', '/usr/lib/systemd/system'].find((d) =>
    fs.existsSync(path.join(d, 'systemd-journald.service')),
  );
  if (!sys) throw new CannotBoot('systemd-journald.service not found');
  const files: Record<string, string> = {};
  for (const u of [
    'systemd-journald.service',
    'systemd-journald.socket',
    'systemd-journald-dev-log.socket',
    'systemd-journald-audit.socket',
  ]) {
    if (fs.existsSync(path.join(sys, u))) files[`${etc}/${u}`] = fs.readFileSync(path.join(sys, u), 'utf8');
  }
  files[`${etc}/${target}`] = [
    '[Unit]',
    `Description=${target} of a test system`,
    'Wants=systemd-journald.socket systemd-journald-dev-log.socket systemd-journald.service',
    '',
  ].join('\n');
  for (const t of ['sysinit', 'basic', 'network-online', 'shutdown', 'multi-user']) {
    files[`${etc}/${t}.target`] = `[Unit]\nDescription=${t}.target of a test system\n`;
  }
  return files;
}
