#!/bin/sh
# Install the Debian packages kamailio-ice needs to build and test.
# Idempotent: installs only what is missing. Needs root (or sudo) once.
set -e
PKGS="kamailio kamailio-extra-modules sip-tester build-essential pkg-config \
dpkg-dev libssl-dev libsrtp2-dev libcmocka-dev iproute2 nftables \
clang libclang-rt-14-dev bison flex xsltproc docbook-xsl docbook-xml \
python3 python3-aiortc python3-aioice tcpdump procps coturn \
debhelper lintian lynx libxml2-utils kamailio-websocket-modules kamailio-tls-modules \
rtpengine-daemon baresip-core python3-pylibsrtp liburing-dev"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
		|| missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
