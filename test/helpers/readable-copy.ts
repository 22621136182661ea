// Some tests run a child as `nobody` (uid 65534) to prove that non-root users are refused.
// That child must be able to read the code it runs, but the checkout may sit where nobody
// cannot enter (a clone under /root, mode 0700). So the child runs from a copy of just what
// it loads, in the temporary directory, made readable by everyone whatever the umask of the
// clone was.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The checkout: this file is compiled to dist/test/helpers/. */
const ROOT = path.resolve(__dirname, '../../..');

export interface ReadableCopy {
  /** Laid out like the checkout: bin/, dist/src/, native/build/Release/, node_modules/. */
  readonly root: string;
  remove(): void;
}

/**
 * The installed top-level packages that are not dev-only, from package-lock.json. Copying
 * each whole brings its nested node_modules along; dev tooling (typescript, eslint…) is what
 * makes node_modules large and no child needs it.
 */
function runtimePackages(): string[] {
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; devOptional?: boolean }>;
  };
  return Object.entries(lock.packages)
    .filter(([key, p]) => /^node_modules\/(@[^/]+\/)?[^/]+$/.test(key) && !p.dev && !p.devOptional)
    .map(([key]) => key)
    .filter((key) => fs.existsSync(path.join(ROOT, key)));
}

function makeReadable(p: string): void {
  const st = fs.lstatSync(p);
  if (st.isSymbolicLink()) return;
  if (st.isDirectory()) {
    fs.chmodSync(p, (st.mode & 0o7777) | 0o555);
    for (const entry of fs.readdirSync(p)) makeReadable(path.join(p, entry));
  } else {
    // Executable for everyone only what its owner may execute (bin/ scripts, addons).
    fs.chmodSync(p, (st.mode & 0o7777) | 0o444 | ((st.mode & 0o100) !== 0 ? 0o111 : 0));
  }
}

/** A copy is no use if nobody cannot reach it: say so rather than fail as the checkout did. */
function assertReachable(dir: string): void {
  for (let d = dir; ; d = path.dirname(d)) {
    if ((fs.statSync(d).mode & 0o001) === 0)
      throw new Error(`${d} is not searchable by other users: set TMPDIR to a directory that is`);
    if (d === path.dirname(d)) return;
  }
}

/** Copies the built project (run `npm run build` first) to a fresh directory anyone can read. */
export function readableCopy(): ReadableCopy {
  assertReachable(os.tmpdir());
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-ts-readable-'));
  const remove = () => fs.rmSync(root, { recursive: true, force: true });
  try {
    const parts = [
      'package.json',
      'bin',
      'dist/src',
      'native/build/Release/ucarp_native.node',
      ...runtimePackages(),
    ];
    for (const rel of parts) {
      // Verbatim: a relative link inside a package must not become a link back into the checkout.
      fs.cpSync(path.join(ROOT, rel), path.join(root, rel), { recursive: true, verbatimSymlinks: true });
    }
    makeReadable(root);
  } catch (e) {
    remove();
    throw e;
  }
  return { root, remove };
}
