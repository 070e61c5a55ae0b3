#!/usr/bin/env bash
# Fetch the pinned browser assets from the npm registry into src/xypr/web/static/vendor/ and check
# them against vendor.sha256. Run once when a pin changes (`make vendor`); the files are committed,
# so nothing is fetched at run time and no Node runs in production.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=src/xypr/web/static/vendor
sums=$dest/vendor.sha256
# package@version  file-inside-the-tarball  name-in-the-repository
assets=(
  "htmx.org@2.0.4 package/dist/htmx.min.js htmx-2.0.4.min.js"
  "htmx-ext-sse@2.2.2 package/sse.js htmx-ext-sse-2.2.2.js"
  "uplot@1.6.32 package/dist/uPlot.iife.min.js uPlot-1.6.32.iife.min.js"
  "uplot@1.6.32 package/dist/uPlot.min.css uPlot-1.6.32.min.css"
  "purecloud-client-app-sdk@2.6.10 package/dist/purecloud-client-app-sdk-c3a00965.min.js purecloud-client-app-sdk-2.6.10.min.js"
)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for line in "${assets[@]}"; do
  read -r spec inner name <<<"$line"
  dir=$work/${spec//[@\/]/_}
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir"
    (cd "$dir" && npm pack "$spec" --silent >/dev/null && tar xzf ./*.tgz)
  fi
  cp "$dir/$inner" "$dest/$name"
done
if [ "${1:-}" = "--record" ]; then
  (cd "$dest" && sha256sum -- *.js *.css >vendor.sha256)
  echo "recorded checksums in $sums"
fi
(cd "$dest" && sha256sum --check --quiet vendor.sha256) && echo "vendor assets match $sums"
