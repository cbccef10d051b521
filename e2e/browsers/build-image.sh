#!/usr/bin/env bash
# Build the remote-browser image (helix-e2e-chromium:local) from this machine's Chromium.
#
#   bash e2e/browsers/build-image.sh [HELIX_E2E_BINARY]
#
# The image is FROM scratch: /usr/lib/chromium, the shared libraries `ldd` lists for Chromium
# and for helix-e2e (at the paths it lists them, the dynamic loader included), NSS's run-time
# modules, fontconfig's configuration and the fonts, the helix-e2e binary for the health check
# (`/helix-e2e __probe --tcp`), and an empty /tmp. HELIX_E2E_BINARY defaults to
# $CARGO_TARGET_DIR/debug/helix-e2e, else target/debug/helix-e2e. Tag with HELIX_E2E_CHROMIUM_IMAGE
# to override (the compose file reads the same variable).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
image="${HELIX_E2E_CHROMIUM_IMAGE:-helix-e2e-chromium:local}"
chromium_dir="${HELIX_E2E_CHROMIUM_DIR:-/usr/lib/chromium}"

bin="${1:-}"
if [ -z "$bin" ]; then
  if [ -n "${CARGO_TARGET_DIR:-}" ]; then bin="$CARGO_TARGET_DIR/debug/helix-e2e"; else bin="$repo/target/debug/helix-e2e"; fi
fi
[ -x "$bin" ] || { echo "build-image.sh: no executable at $bin (cargo build first, or pass the binary)" >&2; exit 1; }
[ -x "$chromium_dir/chromium" ] || { echo "build-image.sh: no Chromium at $chromium_dir/chromium (apt-get install -y chromium, or set HELIX_E2E_CHROMIUM_DIR)" >&2; exit 1; }
command -v ldd >/dev/null || { echo "build-image.sh: ldd not found (libc-bin)" >&2; exit 1; }
command -v docker >/dev/null || { echo "build-image.sh: docker not found (apt-get install -y docker.io)" >&2; exit 1; }

ctx="$(mktemp -d /tmp/helix-e2e-chromium-image.XXXXXX)"
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/tmp" "$root/usr/lib"
chmod 1777 "$root/tmp"
cp -a "$chromium_dir" "$root/usr/lib/chromium"
cp "$bin" "$root/helix-e2e"

copy() { mkdir -p "$root$(dirname "$1")"; cp -L "$1" "$root$1"; }
# `ldd` lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and
# "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
libs="$( { ldd "$chromium_dir/chromium"; ldd "$bin"; } | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)"
for lib in $libs; do copy "$lib"; done
# NSS opens its modules (softokn, freebl, the CA list) by name at run time, past ldd's view.
for nss in /usr/lib/x86_64-linux-gnu/nss /usr/lib/x86_64-linux-gnu/libsoftokn3.so /usr/lib/x86_64-linux-gnu/libfreeblpriv3.so /usr/lib/x86_64-linux-gnu/libnssckbi.so; do
  [ -e "$nss" ] || continue
  if [ -d "$nss" ]; then mkdir -p "$root$nss"; cp -L "$nss"/* "$root$nss/"; else copy "$nss"; fi
done
for dir in /etc/fonts /usr/share/fonts; do
  [ -d "$dir" ] && { mkdir -p "$root$(dirname "$dir")"; cp -a "$dir" "$root$dir"; }
done
cp "$here/Dockerfile" "$ctx/Dockerfile"

echo "build-image.sh: building $image from $chromium_dir ($(echo "$libs" | wc -w) libraries)" >&2
# The classic builder, as e2e/reference/build-images.sh: BuildKit is not part of Debian's docker.io.
DOCKER_BUILDKIT=0 docker build --quiet -t "$image" "$ctx" >/dev/null
echo "build-image.sh: built $image" >&2
