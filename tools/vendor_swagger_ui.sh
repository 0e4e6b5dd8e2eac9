#!/usr/bin/env bash
# Vendor Swagger UI's browser bundle from npm into api/static/swagger-ui/, so that `/docs` works
# on a machine without internet (nothing is fetched at run time). Re-run to change the version.
set -euo pipefail
version=${1:-5.35.0}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack "swagger-ui-dist@$version" --silent >/dev/null && tar xzf swagger-ui-dist-*.tgz)
out=api/static/swagger-ui
rm -rf "$out" && mkdir -p "$out"
for f in swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE NOTICE; do
    cp "$work/package/$f" "$out/"
done
echo "$version" > "$out/VERSION"
echo "vendored swagger-ui-dist $version into $out"
