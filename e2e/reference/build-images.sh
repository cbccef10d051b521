#!/usr/bin/env bash
# Build the reference image (helix-e2e-reference:local) from a built helix-e2e binary.
#
#   bash e2e/reference/build-images.sh [BINARY]
#
# BINARY defaults to $CARGO_TARGET_DIR/debug/helix-e2e, else target/debug/helix-e2e. The image
# is FROM scratch: the binary, the shared libraries `ldd` lists (at the paths it lists them, the
# dynamic loader included) and an empty /tmp. Tag with HELIX_E2E_REFERENCE_IMAGE to override
# (the compose file reads the same variable).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
image="${HELIX_E2E_REFERENCE_IMAGE:-helix-e2e-reference:local}"

bin="${1:-}"
if [ -z "$bin" ]; then
  if [ -n "${CARGO_TARGET_DIR:-}" ]; then bin="$CARGO_TARGET_DIR/debug/helix-e2e"; else bin="$repo/target/debug/helix-e2e"; fi
fi
[ -x "$bin" ] || { echo "build-images.sh: no executable at $bin (cargo build first, or pass the binary)" >&2; exit 1; }
command -v ldd >/dev/null || { echo "build-images.sh: ldd not found (libc-bin)" >&2; exit 1; }
command -v docker >/dev/null || { echo "build-images.sh: docker not found (apt-get install -y docker.io)" >&2; exit 1; }

ctx="$(mktemp -d /tmp/helix-e2e-image.XXXXXX)"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/tmp"
chmod 1777 "$ctx/rootfs/tmp"
cp "$bin" "$ctx/rootfs/helix-e2e"

# `ldd` lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and
# "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file. Copy each file (symlinks
# followed) to the path the loader will look for.
libs="$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)"
[ -n "$libs" ] || { echo "build-images.sh: ldd lists no libraries for $bin (a static binary needs none; check the output)" >&2; ldd "$bin" >&2 || true; }
for lib in $libs; do
  mkdir -p "$ctx/rootfs$(dirname "$lib")"
  cp -L "$lib" "$ctx/rootfs$lib"
done
cp "$here/Dockerfile" "$ctx/Dockerfile"

echo "build-images.sh: building $image from $bin ($(echo "$libs" | wc -w) libraries)" >&2
# The classic builder: BuildKit (buildx) is not part of Debian's docker.io, and this context
# needs nothing it offers.
DOCKER_BUILDKIT=0 docker build --quiet -t "$image" "$ctx" >/dev/null
echo "build-images.sh: built $image" >&2
