#!/bin/bash
# End-to-end test of the Debian package (GitHub issue 7):
#   1. build kamailio-ice-module with dpkg-buildpackage -b -us -uc
#      (scripts/build-deb.sh; the .deb ends up in build/deb/);
#   2. lintian on the .deb: any E: fails the test;
#   3. apt-get install -y ./build/deb/kamailio-ice-module_*.deb;
#   4. Debian's /usr/sbin/kamailio with test/deb/kamailio-deb.cfg, which
#      loads "ice.so" by name from the default module path (no -L);
#   5. one sipp call (built-in uac -> kamailio -> built-in uas, 127.0.0.1):
#      the SDP each side received must point at the relay's port range,
#      and kamcmd ice.stats / ice.ports / ice.sessions must answer;
#   6. stop kamailio, apt-get remove -y kamailio-ice-module, clean up.
#
# Needs root. Every step is bounded by a timeout. Exits non-zero on failure.
# Env: DEB_TEST_NOBUILD=1  reuse the .deb already in build/deb/
#      DEB_TEST_KEEP=1     keep the work directory (logs, sipp traces)
#      KAMAILIO_SRC        configured Kamailio source (see scripts/build-deb.sh)
set -u

TOP=$(cd "$(dirname "$0")/../.." && pwd)
cd "$TOP"
PKG=kamailio-ice-module
KAM_PORT=5186
UAS_PORT=5187
UAC_PORT=5188
UAC_MEDIA=6188
UAS_MEDIA=6196
PORT_MIN=42000
PORT_MAX=42099
MODDIR=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)/kamailio/modules
WORK=$(mktemp -d /tmp/kice-deb-test.XXXXXX)
RUN=$WORK/run
CTL=unix:$RUN/kamailio_ctl
KAM_PID=
UAS_PID=
INSTALLED=0
passed=0
failed=0

ok() {
	echo "PASS: $*"
	passed=$((passed + 1))
}
bad() {
	echo "FAIL: $*"
	failed=$((failed + 1))
}
summary() {
	echo "deb-test: $passed passed, $failed failed"
}
# fatal: a step the rest depends on failed
die() {
	bad "$*"
	exit 1
}

stop_pid() { # pid name
	local pid=$1 i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_pid "$UAS_PID"
	stop_pid "$KAM_PID"
	if [ "$INSTALLED" = 1 ]; then
		echo "== apt-get remove -y $PKG"
		if timeout 300 env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q "$PKG" \
			>"$WORK/remove.log" 2>&1 && [ ! -e "$MODDIR/ice.so" ]; then
			ok "package removed, $MODDIR/ice.so gone"
		else
			bad "apt-get remove $PKG (see $WORK/remove.log)"
			tail -5 "$WORK/remove.log"
		fi
	fi
	if [ "$failed" -gt 0 ] || [ "${DEB_TEST_KEEP:-}" = 1 ]; then
		echo "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
	summary
	[ "$failed" -gt 0 ] && exit 1
	exit "$rc"
}
trap cleanup EXIT
trap 'bad "interrupted"; exit 130' INT TERM

[ "$(id -u)" = 0 ] || die "deb-test needs root (apt-get install)"
missing=
for bin in dpkg-buildpackage lintian apt-get timeout ss /usr/sbin/kamailio \
	/usr/sbin/kamcmd /usr/bin/sipp /usr/bin/python3; do
	command -v "$bin" >/dev/null 2>&1 || missing="$missing $bin"
done
[ -z "$missing" ] || die "missing tools:$missing (sh scripts/deps.sh)"
for p in $KAM_PORT $UAS_PORT $UAC_PORT; do
	ss -Hlun "sport = :$p" | grep -q . && die "UDP port $p is in use"
done
if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q "ok installed"; then
	echo "note: $PKG was already installed; it is replaced and removed at the end"
fi

# 1. build
if [ "${DEB_TEST_NOBUILD:-}" = 1 ] && ls build/deb/${PKG}_*.deb >/dev/null 2>&1; then
	echo "== reusing $(ls build/deb/${PKG}_*.deb)"
else
	echo "== dpkg-buildpackage -b -us -uc (scripts/build-deb.sh; log $WORK/build.log)"
	if timeout 1200 sh scripts/build-deb.sh >"$WORK/build.log" 2>&1; then
		ok "package built"
	else
		tail -30 "$WORK/build.log"
		die "package build (see $WORK/build.log)"
	fi
fi
set -- build/deb/${PKG}_*.deb
[ $# = 1 ] && [ -f "$1" ] || die "expected exactly one build/deb/${PKG}_*.deb, got: $*"
DEB=$1

# 2. lintian
echo "== lintian $DEB"
timeout 300 lintian "$DEB" >"$WORK/lintian.log" 2>&1
lrc=$?
sed 's/^/   /' "$WORK/lintian.log"
if grep -q '^E:' "$WORK/lintian.log"; then
	bad "lintian reports errors"
elif [ $lrc -ne 0 ] && [ $lrc -ne 2 ] && ! grep -q '^[WIPN]:' "$WORK/lintian.log"; then
	bad "lintian did not run (rc $lrc)"
else
	ok "lintian: no errors ($(grep -c '^W:' "$WORK/lintian.log") warnings)"
fi

# 3. install
echo "== apt-get install -y ./$DEB"
INSTALLED=1
if ! timeout 300 env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "./$DEB" \
	>"$WORK/install.log" 2>&1; then
	tail -20 "$WORK/install.log"
	die "apt-get install ./$DEB"
fi
dpkg-query -W -f='${Status}' "$PKG" | grep -q "ok installed" \
	|| die "$PKG not installed after apt-get install"
[ -f "$MODDIR/ice.so" ] || die "$MODDIR/ice.so not installed"
# dh_compress gzips documents over 4 kB (not the example configs)
for f in README README.md changelog changelog.Debian copyright \
	examples/kamailio-ice.cfg examples/kamailio-ice-production.cfg; do
	[ -f "/usr/share/doc/$PKG/$f" ] || [ -f "/usr/share/doc/$PKG/$f.gz" ] \
		|| bad "/usr/share/doc/$PKG/$f(.gz) missing"
done
dep=$(dpkg-query -W -f='${Depends}' "$PKG")
kver=$(dpkg-query -W -f='${Version}' kamailio)
case "$dep" in
*"kamailio (= $kver)"*) ok "installed; Depends: $dep" ;;
*) bad "Depends does not pin kamailio (= $kver): $dep" ;;
esac

# 4. kamailio, ice.so loaded by name from the default path
echo "== /usr/sbin/kamailio -f test/deb/kamailio-deb.cfg (log $WORK/kamailio.log)"
mkdir -p "$RUN"
timeout 20 /usr/sbin/kamailio -c -f test/deb/kamailio-deb.cfg >"$WORK/check.log" 2>&1 \
	|| { cat "$WORK/check.log"; die "kamailio -c rejects test/deb/kamailio-deb.cfg"; }
/usr/sbin/kamailio -f test/deb/kamailio-deb.cfg -DD -E -Y "$RUN" -w "$RUN" \
	-A "LISTEN=udp:127.0.0.1:$KAM_PORT" -A "PORT_MIN=$PORT_MIN" -A "PORT_MAX=$PORT_MAX" \
	>"$WORK/kamailio.log" 2>&1 &
KAM_PID=$!
up=0
for _ in $(seq 1 50); do
	kill -0 "$KAM_PID" 2>/dev/null || break
	if timeout 5 kamcmd -s "$CTL" core.version >/dev/null 2>&1; then
		up=1
		break
	fi
	sleep 0.2
done
if [ $up != 1 ]; then
	tail -30 "$WORK/kamailio.log"
	die "kamailio did not start"
fi
if grep -q "$MODDIR/ice.so" /proc/"$KAM_PID"/maps 2>/dev/null; then
	ok "kamailio started with $MODDIR/ice.so loaded by name"
else
	bad "kamailio runs but did not map $MODDIR/ice.so"
fi

# 5. one call through it
echo "== sipp call 127.0.0.1:$UAC_PORT -> kamailio :$KAM_PORT -> 127.0.0.1:$UAS_PORT"
cd "$WORK"
timeout 60 sipp -sn uas -i 127.0.0.1 -p $UAS_PORT -mp $UAS_MEDIA -m 1 -nostdin \
	-trace_msg -message_file "$WORK/uas.msg" -trace_err -error_file "$WORK/uas.err" \
	>"$WORK/uas.out" 2>&1 &
UAS_PID=$!
for _ in $(seq 1 50); do
	ss -Hlun "sport = :$UAS_PORT" | grep -q . && break
	sleep 0.1
done
timeout 60 sipp 127.0.0.1:$UAS_PORT -rsa 127.0.0.1:$KAM_PORT -sn uac -i 127.0.0.1 \
	-p $UAC_PORT -mp $UAC_MEDIA -m 1 -d 3000 -nostdin -timeout 30 \
	-trace_msg -message_file "$WORK/uac.msg" -trace_err -error_file "$WORK/uac.err" \
	>"$WORK/uac.out" 2>&1 &
UAC_PID=$!
sleep 1.5 # the call is up for 3 s: look at it from the operator's side
timeout 5 kamcmd -s "$CTL" ice.sessions >"$WORK/sessions.txt" 2>&1
timeout 5 kamcmd -s "$CTL" ice.ports >"$WORK/ports.txt" 2>&1
prc=$?
wait "$UAC_PID"
uac_rc=$?
wait "$UAS_PID"
UAS_PID=
cd "$TOP"
if [ $uac_rc = 0 ]; then
	ok "sipp call completed"
else
	bad "sipp uac exited $uac_rc"
	tail -5 "$WORK/uac.out" "$WORK/uac.err" 2>/dev/null
fi
sed 's/^/   /' "$WORK/sessions.txt"
grep -q 'call_id' "$WORK/sessions.txt" && ok "kamcmd ice.sessions lists the call" \
	|| bad "kamcmd ice.sessions did not list the call"

# the SDP each side received: c= 127.0.0.1, m=audio in the relay's range
sdp_check() { # msgfile first-line-prefix what
	/usr/bin/python3 - "$1" "$2" "$PORT_MIN" "$PORT_MAX" <<'PY'
import re, sys
path, start, lo, hi = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
text = open(path, encoding="utf-8", errors="replace").read()
# sipp -trace_msg: a dashed line, "UDP message received [n] bytes :", the message
for block in re.split(r"\n-{20,}[^\n]*\n", "\n" + text):
    m = re.search(r"message received \[\d+\] bytes :\s*\n+(.*)", block, re.S)
    if not m or not m.group(1).startswith(start):
        continue
    msg = m.group(1)
    ports = [int(p) for p in re.findall(r"^m=audio (\d+) ", msg, re.M)]
    conns = re.findall(r"^c=IN IP4 (\S+)", msg, re.M)
    if not ports:
        continue
    print("   %s: c=%s m=audio %s" % (start, ",".join(conns), ports))
    if all(lo <= p <= hi for p in ports) and conns and all(c == "127.0.0.1" for c in conns):
        sys.exit(0)
    sys.exit(1)
print("   no %r with SDP in %s" % (start, path))
sys.exit(1)
PY
}
sdp_check "$WORK/uac.msg" "SIP/2.0 200" \
	&& ok "the 200 OK's SDP at the UAC points at the relay ($PORT_MIN-$PORT_MAX)" \
	|| bad "the 200 OK's SDP at the UAC does not point at the relay"
sdp_check "$WORK/uas.msg" "INVITE" \
	&& ok "the INVITE's SDP at the UAS points at the relay ($PORT_MIN-$PORT_MAX)" \
	|| bad "the INVITE's SDP at the UAS does not point at the relay"

timeout 5 kamcmd -s "$CTL" ice.stats >"$WORK/stats.txt" 2>&1
src=$?
sed 's/^/   /' "$WORK/stats.txt"
total=$(sed -n 's/^[[:space:]]*sessions_total:[[:space:]]*//p' "$WORK/stats.txt")
if [ $src = 0 ] && [ "${total:-0}" -ge 1 ] 2>/dev/null; then
	ok "kamcmd ice.stats: sessions_total=$total"
else
	bad "kamcmd ice.stats (rc $src, sessions_total '${total:-}')"
fi
sed 's/^/   /' "$WORK/ports.txt"
if [ $prc = 0 ] && grep -Eq "port_min:[[:space:]]*$PORT_MIN\$" "$WORK/ports.txt" \
	&& grep -Eq "port_max:[[:space:]]*$PORT_MAX\$" "$WORK/ports.txt"; then
	ok "kamcmd ice.ports: $PORT_MIN-$PORT_MAX"
else
	bad "kamcmd ice.ports (rc $prc)"
fi

# 6. stop kamailio (the package is removed by cleanup)
stop_pid "$KAM_PID"
KAM_PID=
if grep -Eq 'CRITICAL|BUG|segfault' "$WORK/kamailio.log"; then
	bad "kamailio log has CRITICAL/BUG lines"
	grep -E 'CRITICAL|BUG|segfault' "$WORK/kamailio.log" | head -5
else
	ok "kamailio stopped cleanly"
fi
exit 0
