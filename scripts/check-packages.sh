#!/usr/bin/env bash
# Checks each package under packages/ as npm users will get it. `pnpm pack` applies publishConfig
# (the dist export maps), so publint and attw read the tarball rather than the workspace's package.json,
# whose exports point at src. Expects a fresh build: `pnpm lint:packages` builds first.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

tarballs=$(mktemp -d)
trap 'rm -rf "$tarballs"' EXIT

for dir in packages/*/; do
  (cd "$dir" && pnpm pack --pack-destination "$tarballs" >/dev/null)
done

for tarball in "$tarballs"/*.tgz; do
  printf '==> %s\n' "$(basename "$tarball")"
  pnpm exec publint run --strict "$tarball"
  # esm-only: the packages are ESM for Node 20, so CommonJS `require` and node10 resolution are out of scope.
  pnpm exec attw --profile esm-only --no-color --format table-flipped "$tarball"
done
