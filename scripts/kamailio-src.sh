#!/bin/sh
# Fetch and configure the Kamailio source matching the installed kamailio,
# as Debian builds it (kamailio-module-guide.md section 1).
# Usage: kamailio-src.sh <dest-dir>; prints nothing when already done.
set -e
dest="$1"
[ -n "$dest" ] || { echo "usage: $0 <dest>" >&2; exit 2; }
case "$dest" in /*) ;; *) dest="$(pwd)/$dest" ;; esac
[ -f "$dest/src/config.mak" ] && exit 0
ver=$(dpkg-query -W -f='${Version}' kamailio)
upver=${ver%%-*}
upver=${upver#*:}
mkdir -p "$dest.tmp"
cd "$dest.tmp"
if ! apt-get source --download-only "kamailio=$ver" >/dev/null 2>&1; then
	SUDO=""
	[ "$(id -u)" -ne 0 ] && SUDO="sudo"
	if ! grep -rqs 'deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
		echo "kamailio-src: adding a deb-src entry"
		printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
			| $SUDO tee /etc/apt/sources.list.d/kamailio-ice-src.sources >/dev/null
	fi
	$SUDO apt-get update -q
	apt-get source --download-only "kamailio=$ver"
fi
dpkg-source -x --no-check kamailio_*.dsc src >/dev/null
cd src
make cfg quiet=verbose prefix=/usr cfg_target=/etc/kamailio/ FLAVOUR=kamailio \
	LIBDIR=lib/x86_64-linux-gnu group_include=kstandard \
	CC_EXTRA_OPTS="$(dpkg-buildflags --get CPPFLAGS) $(dpkg-buildflags --get CFLAGS) -DVERSION_NODATE" \
	LD_EXTRA_OPTS="$(dpkg-buildflags --get LDFLAGS)" >/dev/null
rm -rf "$dest"
mv "$dest.tmp/src" "$dest"
rm -rf "$dest.tmp"
echo "kamailio-src: $upver ready in $dest"
