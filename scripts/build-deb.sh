#!/bin/sh
# Build the kamailio-ice-module Debian package (dpkg-buildpackage -b -us -uc)
# from a copy of this work tree, so that the package build (which cleans
# and rebuilds the module) leaves the developer's build alone. The .deb,
# its -dbgsym, .buildinfo and .changes end up in build/deb/.
#
# Usage: scripts/build-deb.sh            (from the top of the tree)
# Env:   KAMAILIO_SRC  configured Kamailio source (default build/kamailio,
#                      fetched by scripts/kamailio-src.sh if missing)
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
out="$top/build/deb"
work="$out/work"
KAMAILIO_SRC=${KAMAILIO_SRC:-$top/build/kamailio}
case "$KAMAILIO_SRC" in /*) ;; *) KAMAILIO_SRC="$top/$KAMAILIO_SRC" ;; esac
export KAMAILIO_SRC

# The Kamailio tree is shared with the normal build: fetch/configure it once
# here, outside the copy (it is the only step that may use the network).
sh scripts/kamailio-src.sh "$KAMAILIO_SRC"

rm -rf "$work"
mkdir -p "$work/kamailio-ice"
# tracked and new (not ignored) files: no build/, objects or .git
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git -C "$top" ls-files -z --cached --others --exclude-standard \
		| (cd "$top" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) \
		| tar -C "$top" --null -T - -cf - | tar -C "$work/kamailio-ice" -xf -
else
	tar -C "$top" --exclude=./build --exclude=.git --exclude='*.o' \
		--exclude='*.so' --exclude='*.a' -cf - . | tar -C "$work/kamailio-ice" -xf -
fi

cd "$work/kamailio-ice"
dpkg-buildpackage -b -us -uc
cd "$out"
rm -f kamailio-ice-module_*.deb kamailio-ice-module-dbgsym_*.*deb \
	kamailio-ice_*.buildinfo kamailio-ice_*.changes
mv "$work"/kamailio-ice-module_*.deb "$work"/kamailio-ice_*.buildinfo \
	"$work"/kamailio-ice_*.changes "$out"/
mv "$work"/kamailio-ice-module-dbgsym_*.*deb "$out"/ 2>/dev/null || true
rm -rf "$work"
ls -1 "$out"/kamailio-ice*
