#!/usr/bin/env bash
# Vendor the merchandiser console's browser libraries from npm into api/static/console/ (nothing
# is fetched at run time): htmx (forms that update part of a page) and cytoscape.js (the path
# and complement-map drawings). Re-run to change the versions.
set -euo pipefail
htmx=${1:-2.0.11}
cytoscape=${2:-3.35.0}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=api/static/console
mkdir -p "$out"
(cd "$work" && npm pack "htmx.org@$htmx" "cytoscape@$cytoscape" --silent >/dev/null)
for package in "htmx.org-$htmx" "cytoscape-$cytoscape"; do
    mkdir -p "$work/$package" && tar xzf "$work/$package.tgz" -C "$work/$package"
done
cp "$work/htmx.org-$htmx/package/dist/htmx.min.js" "$out/htmx.min.js"
cp "$work/htmx.org-$htmx/package/LICENSE" "$out/htmx.LICENSE"
cp "$work/cytoscape-$cytoscape/package/dist/cytoscape.min.js" "$out/cytoscape.min.js"
cp "$work/cytoscape-$cytoscape/package/LICENSE" "$out/cytoscape.LICENSE"
printf 'htmx.org %s\ncytoscape %s\n' "$htmx" "$cytoscape" > "$out/VERSIONS"
echo "vendored htmx.org $htmx and cytoscape $cytoscape into $out"
