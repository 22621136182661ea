#!/usr/bin/env bash
# Builds ucarp-ts_<version>_<arch>.deb with Debian's own tools (`npm run package`).
#
#   packaging/build-deb.sh [--out DIR] [--no-lintian] [--no-build]
#
# --no-build packages dist/ as it is (test/integration/package.test.ts, which runs from dist/,
# must not have it rewritten under its feet).
#
# Everything the package runs is under /usr/lib/ucarp-ts: the compiled JavaScript (dist/src,
# and dist/schemas which it loads), the production node_modules, our addon, and a Node LTS
# runtime taken from the npm registry's node-linux-<arch> package; the addons are built here
# against that runtime's headers, so nothing is compiled or downloaded at install time.
# The rest of the layout, the maintainer scripts and the ifupdown hooks are in packaging/deb/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/packaging/deb
out=$root
lintian=yes
build=yes
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --no-lintian) lintian=no; shift ;;
    --no-build) build=no; shift ;;
    *) echo "usage: $0 [--out DIR] [--no-lintian] [--no-build]" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The LTS line the package bundles; .ci/other-nodes.sh tests the same major.
NODE_MAJOR=24
LIB=usr/lib/ucarp-ts

# Debian's tools, installed when missing (as test/pretest.sh does for the test tools).
need=()
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
command -v strip >/dev/null || need+=(binutils)
[ $lintian = no ] || command -v lintian >/dev/null || need+=(lintian)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing ${need[*]} and not root: install them, or run as root" >&2
    exit 1
  fi
  echo "installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

version=$(node -p 'require(process.argv[1]).version' "$root/package.json")
arch=$(dpkg --print-architecture)
case "$arch" in
  amd64) node_arch=x64 ;;
  arm64) node_arch=arm64 ;;
  *) echo "no Node.js package on the npm registry for $arch" >&2; exit 1 ;;
esac
changelog_version=$(sed -n '1s/^ucarp-ts (\([^)]*\)).*/\1/p' "$src/changelog")
if [ "$changelog_version" != "$version" ]; then
  echo "packaging/deb/changelog is at $changelog_version, package.json at $version" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/pk-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

if [ $build = yes ]; then
  echo "--- compiling TypeScript"
  (cd "$root" && npm run --silent build)
fi
[ -f "$root/dist/src/cli/ucarp.js" ] || { echo "no dist/: run npm run build" >&2; exit 1; }

echo "--- Node.js $NODE_MAJOR from the npm registry (node-linux-$node_arch)"
mkdir "$work/node"
(cd "$work/node" && npm pack --silent "node-linux-$node_arch@$NODE_MAJOR" >/dev/null && tar xzf ./*.tgz)
nodedir=$work/node/package
node_version=$("$nodedir/bin/node" --version)

echo "--- production node_modules and addons for node $node_version"
app=$work/app
mkdir -p "$app/dist" "$app/native"
cp "$root/package.json" "$root/package-lock.json" "$app/"
cp -r "$root/bin" "$app/"
cp -r "$root/dist/src" "$root/dist/schemas" "$app/dist/"
cp "$root/native/binding.gyp" "$root/native/"*.c "$root/native/"*.h "$app/native/"
(
  cd "$app"
  # nodedir: the runtime's own headers (the machine's npm config points at /usr, its Node).
  export PATH=$nodedir/bin:$PATH npm_config_nodedir=$nodedir
  # Also runs the root package's install script: native/ for this runtime.
  npm ci --omit=dev --no-audit --no-fund >"$work/npm.log" 2>&1 || {
    tail -40 "$work/npm.log" >&2
    exit 1
  }
  # Proof the addons load in the runtime that ships.
  node -e 'require("unix-dgram"); require("netlink"); require("./native/build/Release/ucarp_native.node")'
)

echo "--- file system tree"
pkg=$work/root
lib=$pkg/$LIB
mkdir -p "$lib/native/build/Release" "$lib/node/bin"
cp -r "$app/dist" "$app/package.json" "$lib/"
find "$lib/dist" -name '*.js.map' -delete
# The entry points of bin/, started by the wrappers in /usr/sbin with the bundled node: no
# shebang, whose `env node` would find whatever node is first in PATH.
mkdir "$lib/bin"
for name in ucarp ucarpctl; do sed '1{/^#!/d}' "$app/bin/$name" >"$lib/bin/$name.js"; done
cp "$app/native/build/Release/ucarp_native.node" "$lib/native/build/Release/"
# node_modules without what only building needs: compiler output other than the addons,
# sources, the addons' prebuilt binaries for other machines, and the .bin links.
cp -r "$app/node_modules" "$lib/"
(
  cd "$lib/node_modules"
  # Build-time only: headers for addons, and type declarations (netlink lists @types/node as a
  # dependency).
  rm -rf .bin .package-lock.json nan node-addon-api
  find . -type d -name @types -prune -exec rm -rf {} +
  find . -type d -name build -prune -print0 | while IFS= read -r -d '' b; do
    find "$b" -type f ! \( -path "$b/Release/*.node" ! -path "$b/Release/*/*" \) -delete
  done
  find . -path '*/prebuilds/*' -prune ! -path "*/prebuilds/linux-$node_arch" -exec rm -rf {} +
  find . \( -name '*.c' -o -name '*.cc' -o -name '*.h' -o -name '*.gyp' -o -name '*.gypi' \
    -o -name Makefile -o -name '*.mk' -o -name '*.map' -o -name '*.ts' -a ! -name '*.d.ts' \) -delete
  # Documentation and the packages' own tooling; their license files stay.
  find . \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.js.map' -o -name '.npmignore' \
    -o -name '.travis.yml' -o -name '.eslintrc*' -o -name '.editorconfig' -o -name '.git*' \
    -o -iname 'README*' -o -iname 'CHANGELOG*' -o -iname 'HISTORY*' -o -name '*.markdown' \) \
    -prune -exec rm -rf {} +
  find . -type d -empty -delete
)
cp "$nodedir/bin/node" "$lib/node/bin/node"
cp "$nodedir/LICENSE" "$lib/node/LICENSE"

install -D -m 0755 <(sed 's/@NAME@/ucarp/g' "$src/wrapper") "$pkg/usr/sbin/ucarp"
install -D -m 0755 <(sed 's/@NAME@/ucarpctl/g' "$src/wrapper") "$pkg/usr/sbin/ucarpctl"
install -D -m 0644 "$root/systemd/ucarp.service" "$pkg/lib/systemd/system/ucarp.service"
install -D -m 0600 "$src/ucarp.yaml" "$pkg/etc/ucarp.yaml"
install -D -m 0755 "$src/ifupdown/if-up" "$pkg/etc/network/if-up.d/ucarp"
install -D -m 0755 "$src/ifupdown/if-down" "$pkg/etc/network/if-down.d/ucarp"
install -D -m 0755 "$src/vip-up" "$pkg/usr/share/ucarp/vip-up"
install -D -m 0755 "$src/vip-down" "$pkg/usr/share/ucarp/vip-down"
for page in "$root"/man/*.[0-9]; do
  section=${page##*.}
  install -d "$pkg/usr/share/man/man$section"
  gzip -9n <"$page" >"$pkg/usr/share/man/man$section/$(basename "$page").gz"
done
doc=$pkg/usr/share/doc/ucarp-ts
install -d "$doc"
gzip -9n <"$src/changelog" >"$doc/changelog.gz"
bash "$src/copyright.sh" "$lib" "$node_version" >"$doc/copyright"
install -D -m 0644 "$src/lintian-overrides" "$pkg/usr/share/lintian/overrides/ucarp-ts"

# Ownership comes from --root-owner-group; modes are normalized here: everything readable,
# only programs executable.
find "$pkg" -type d -exec chmod 0755 {} +
find "$pkg" -type f ! -path "$pkg/etc/ucarp.yaml" -exec chmod 0644 {} +
chmod 0755 "$pkg/usr/sbin/"* "$pkg/etc/network/if-up.d/ucarp" "$pkg/etc/network/if-down.d/ucarp" \
  "$pkg/usr/share/ucarp/"* "$lib/node/bin/node"
# Symbols only: the runtime's dynamic symbol table, which addons link against, stays.
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$lib/node/bin/node" \
  $(find "$lib" -name '*.node')

echo "--- control"
install -d -m 0755 "$pkg/DEBIAN"
# Dependencies of the ELF files, as dpkg-shlibdeps finds them (it wants a debian/control).
mkdir -p "$work/shlibs/debian"
printf 'Source: ucarp-ts\n\nPackage: ucarp-ts\nArchitecture: any\n' >"$work/shlibs/debian/control"
depends=$(cd "$work/shlibs" && dpkg-shlibdeps -O -e"$lib/node/bin/node" $(find "$lib" -name '*.node' -printf '-e%p ') 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "dpkg-shlibdeps found no dependencies" >&2; exit 1; }
installed_size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$installed_size/" \
  -e "s/@DEPENDS@/$depends/" "$src/control.in" >"$pkg/DEBIAN/control"
install -m 0644 "$src/conffiles" "$pkg/DEBIAN/conffiles"
install -m 0755 "$src/postinst" "$src/prerm" "$src/postrm" "$pkg/DEBIAN/"
(cd "$pkg" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' | sort -z |
  xargs -0 md5sum >DEBIAN/md5sums)
chmod 0644 "$pkg/DEBIAN/md5sums"

deb=$out/ucarp-ts_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "--- built $deb: $(du -h "$deb" | cut -f1) ($(stat -c %s "$deb") bytes; installed ${installed_size} KiB; node $node_version; $(($(date +%s) - start)) s)"

if [ $lintian = yes ]; then
  echo "--- lintian"
  # Errors and warnings fail the build; every remaining tag is explained in
  # packaging/deb/lintian-overrides, shipped where lintian reads it.
  lintian --fail-on error,warning --display-info "$deb"
  echo "lintian: clean"
fi
