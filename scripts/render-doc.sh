#!/bin/sh
# Render modules/ice/doc/ice.xml (DocBook 4.5) to plain text the way
# Kamailio renders its modules' README files: xsltproc with docbook-xsl's
# XHTML stylesheet (customised by scripts/docbook-readme.xsl), then
# `lynx -dump`. Writes to stdout; `make doc` redirects into modules/ice/README.
# Needs: xsltproc docbook-xsl docbook-xml lynx (scripts/deps.sh). No network.
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
doc=${1:-$top/modules/ice/doc/ice.xml}
for t in xsltproc lynx; do
	command -v $t >/dev/null 2>&1 || { echo "render-doc: $t not installed" >&2; exit 3; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
xsltproc --nonet --xinclude --output "$tmp/ice.html" \
	"$top/scripts/docbook-readme.xsl" "$doc"
# fixed width, charset and config: the same text on every machine
LC_ALL=C.UTF-8 lynx -cfg=/dev/null -nolist -dump -width=80 \
	-assume_charset=UTF-8 -display_charset=UTF-8 "$tmp/ice.html" \
	| sed 's/[[:space:]]*$//'
