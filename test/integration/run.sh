#!/bin/bash
# Run the kamailio-ice integration tests (all, or the ones named as
# arguments). Prints PASS/FAIL per test and a summary line; exits non-zero
# if any test failed. Needs root (network namespaces, nftables).
#
#   ICE_SO=/abs/modules/ice/ice.so test/integration/run.sh
#   ICE_ALLOW_NO_MODULE=1 test/integration/run.sh   # proxy-only, dev only
#   test/integration/run.sh call_basic nat_latching
#
# Env: ICE_SO (default <repo>/modules/ice/ice.so), ICE_ALLOW_NO_MODULE=1,
# ICE_NO_MODULE=1, ICE_TEST_OUT (logs, default /tmp/icet-out),
# ICE_TEST_TIMEOUT (seconds per test, default 45; ice_matrix 420 or
# ICE_MATRIX_TIMEOUT, ice_security and ice_baresip 120), ICE_TEST_BUDGET
# (seconds after which no test is started, default 750), ICE_TEST_VERBOSE=1 (print
# every test's output, not only a failing test's), ICE_TEST_DEBUG (kamailio
# debug level, default 2).
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ALL_TESTS=(call_basic call_basic_epoll malformed_sdp reinvite_keeps_ports nat_latching
	forked_early_media ice_matrix ice_security ice_baresip
	webrtc_bridge webrtc_security webrtc_sdes baresip_bridge
	hijack bad_input faults soak)
PER_TEST=${ICE_TEST_TIMEOUT:-45}
# the sipp tests stay under 5 minutes; the ICE tests (about 4 minutes
# together) get 8 more
BUDGET=${ICE_TEST_BUDGET:-1100}
# the ICE tests place many calls each: their own timeouts
test_timeout() {
	case "$1" in
	ice_matrix) echo "${ICE_MATRIX_TIMEOUT:-420}" ;;
	ice_security | ice_baresip) echo 120 ;;
	webrtc_bridge | webrtc_security | webrtc_sdes | baresip_bridge) echo 90 ;;
	*) echo "$PER_TEST" ;;
	esac
}
export ICE_TEST_OUT=${ICE_TEST_OUT:-/tmp/icet-out}
export PYTHONDONTWRITEBYTECODE=1
PY=/usr/bin/python3

# Remove every namespace our tests create (icet-*), ending the processes in
# it first; nft tables, veths and routes live in those namespaces and go
# with them.
sweep() {
	local ns pids left=0
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${ICE_NS_PREFIX:-icet-}"); do
		left=1
		pids=$(ip netns pids "$ns" 2>/dev/null)
		if [ -n "$pids" ]; then
			kill -TERM $pids 2>/dev/null
			for _ in 1 2 3 4 5 6 7 8 9 10; do
				pids=$(ip netns pids "$ns" 2>/dev/null)
				[ -z "$pids" ] && break
				sleep 0.2
			done
			[ -n "$pids" ] && kill -KILL $pids 2>/dev/null
		fi
		ip netns del "$ns" 2>/dev/null
	done
	return $left
}
child=
stop_child() {
	if [ -n "$child" ]; then
		kill -TERM "$child" 2>/dev/null # timeout passes it on to the test
		wait "$child" 2>/dev/null
	fi
	echo "interrupted"
	exit 130
}
trap 'sweep' EXIT
trap 'stop_child' INT TERM

if [ "$(id -u)" != 0 ]; then
	echo "integration tests need root (network namespaces, nftables)" >&2
	exit 2
fi
missing=
for bin in ip nft ss timeout /usr/sbin/kamailio /usr/bin/sipp $PY; do
	command -v "$bin" >/dev/null 2>&1 || missing="$missing $bin"
done
if [ -n "$missing" ]; then
	echo "missing tools:$missing (apt-get install kamailio sip-tester nftables iproute2)" >&2
	exit 2
fi

SO=${ICE_SO:-$HERE/../../modules/ice/ice.so}
if [ "${ICE_NO_MODULE:-}" = 1 ]; then
	echo "module: none (ICE_NO_MODULE=1): proxy-only run, module checks skipped"
elif [ -f "$SO" ]; then
	echo "module: $(cd "$(dirname "$SO")" && pwd)/$(basename "$SO")"
elif [ "${ICE_ALLOW_NO_MODULE:-}" = 1 ]; then
	echo "module: not found at $SO; proxy-only run (ICE_ALLOW_NO_MODULE=1), module checks skipped"
else
	echo "FAIL: ice module not found at $SO (make module; or ICE_ALLOW_NO_MODULE=1 for a proxy-only run)"
	echo "integration: 0 passed, ${#ALL_TESTS[@]} failed"
	exit 1
fi

if [ $# -gt 0 ]; then
	TESTS=("$@")
else
	TESTS=("${ALL_TESTS[@]}")
fi

mkdir -p "$ICE_TEST_OUT"
sweep || echo "note: removed icet-* namespaces left by an earlier run"

pass=0
fail=0
failed=()
start=$(date +%s)
for t in "${TESTS[@]}"; do
	f="$HERE/test_$t.py"
	out="$ICE_TEST_OUT/$t.out"
	if [ ! -f "$f" ]; then
		echo "FAIL $t (no such test: $f)"
		fail=$((fail + 1))
		failed+=("$t")
		continue
	fi
	now=$(date +%s)
	left=$((BUDGET - (now - start)))
	if [ $left -lt 15 ]; then
		echo "FAIL $t (not run: the run's time budget is used up)"
		fail=$((fail + 1))
		failed+=("$t")
		continue
	fi
	limit=$(test_timeout "$t")
	[ $limit -gt $left ] && limit=$left
	t0=$(date +%s)
	timeout -k 5 "$limit" $PY "$f" >"$out" 2>&1 &
	child=$!
	wait "$child"
	rc=$?
	child=
	dt=$(($(date +%s) - t0))
	result=$(grep '^RESULT ' "$out" | tail -1)
	note=
	case "$result" in
	*"proxy-only"*) note=" (proxy-only: ${result##*proxy-only: }" ;;
	esac
	if [ $rc -eq 0 ]; then
		echo "PASS $t (${dt}s)$note"
		pass=$((pass + 1))
		[ "${ICE_TEST_VERBOSE:-}" = 1 ] && sed 's/^/    /' "$out"
	else
		[ $rc -eq 124 ] && echo "    (killed after ${limit}s)" >>"$out"
		echo "FAIL $t (${dt}s, rc=$rc) -- output ($out):"
		sed 's/^/    /' "$out"
		fail=$((fail + 1))
		failed+=("$t")
	fi
	# each test cleans up after itself; anything left is a harness bug
	if ! sweep; then
		echo "FAIL $t: left icet-* namespaces behind (removed now)"
		[ $rc -eq 0 ] && {
			pass=$((pass - 1))
			fail=$((fail + 1))
			failed+=("$t")
		}
	fi
done

echo
[ $fail -gt 0 ] && echo "failed: ${failed[*]} (logs under $ICE_TEST_OUT)"
echo "integration: $pass passed, $fail failed"
[ $fail -eq 0 ]
