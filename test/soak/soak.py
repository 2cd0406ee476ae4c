#!/usr/bin/python3
"""Soak driver for kamailio-ice: many short calls with media through
kamailio + ice.so, then a check that nothing stayed behind; and port-pool
exhaustion with a tiny port range.

  test/soak/soak.py --calls 100000 --rate 200     # make soak
  test/soak/soak.py --calls 2000 --rate 100       # make soak-short
  test/soak/soak.py --exhaustion-only

Everything runs in a network namespace of its own (<ICE_NS_PREFIX>soak,
default prefix "soak-"), like the integration tests (it uses their framework,
test/integration/icetest.py): kamailio on 127.0.0.1:5060 with the module
(relay ports 35000-35999), a sipp UAS (uas_call.xml: 180, 200, RTP until the
BYE) and a sipp UAC (uac_call.xml: INVITE, ACK, RTP for --media-ms, BYE) at
--rate calls/s, at most --limit at once. Both send PCMU with rtp_stream.
sipp runs without message traces (100k calls would write GBs); its
statistics file (-trace_stat) gives the successful and failed calls.

Load run (checks):
  - every call succeeded at the caller (sipp's SuccessfulCall = --calls,
    FailedCall = 0);
  - media went through the relay: the receivers' nft counters saw at least
    --min-media-share of 2 x calls x (media-ms x 50 pps);
  - ice.stats sessions_total grew by --calls, sessions_active is 0,
    ice.ports in_use is back to where it started, ice.sessions is empty;
  - kamcmd core.shmmem "used", after a settle delay (tm's wait timer and the
    forwarder's reaping), is within --shm-slack bytes of its value before the
    load (measured after one warm-up call); the figures are printed;
  - no session "timed out" (media_timeout is 30 s, a call lasts about a
    second: a timeout here deletes a live call's session);
  - kamailio is alive, with no CRITICAL/BUG line in its log.
Exhaustion (a second kamailio with port_min 35000, port_max 35007: 4 RTP/RTCP
pairs, i.e. two calls of 2 pairs each):
  - two long calls are anchored (ice_manage rc 1, SDP at the relay) and
    ice.ports shows in_use 8 of 8;
  - a third call's INVITE and 200 get ice_manage rc -1 with "port pool
    exhausted" in the log; the test script relays it anyway, so the call
    completes with its media unanchored (SDP untouched);
  - after the first two calls end, in_use goes back to 0 and a fourth call
    is anchored again.
Exit status 0 when every check passed. Figures: <out>/soak/figures.json.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "test", "integration"))
os.environ.setdefault("ICE_NS_PREFIX", "soak-")
os.environ.setdefault("ICE_TEST_OUT", "/tmp/kice-soak")
import icetest as it  # noqa: E402

EXH_PORT_MIN = 35000
EXH_PORT_MAX = 35007


# --------------------------------------------------------------------------
# helpers

def set_cfg(kam, port_min=None, port_max=None, children=None, extra=None,
            tm=None):
    """Edit a generated kamailio config before start(): the relay's port
    range, the number of SIP workers, more modparam("ice", ...) and
    modparam("tm", ...) lines."""
    with open(kam.cfg) as f:
        cfg = f.read()

    def sub(pattern, new):
        nonlocal cfg
        cfg, n = re.subn(pattern, new, cfg, count=1, flags=re.M)
        if n != 1:
            raise it.TestError("cannot edit %s: /%s/" % (kam.cfg, pattern))
    if port_min is not None:
        sub(r'^modparam\("ice", "port_min", \d+\)$',
            'modparam("ice", "port_min", %d)' % port_min)
    if port_max is not None:
        sub(r'^modparam\("ice", "port_max", \d+\)$',
            'modparam("ice", "port_max", %d)' % port_max)
    if children is not None:
        sub(r"^children=\d+$", "children=%d" % children)
    for k, v in (extra or {}).items():
        sub(r'^(modparam\("ice", "media_timeout", \d+\))$',
            '\\1\nmodparam("ice", "%s", %s)' % (k, v))
    for k, v in (tm or {}).items():
        sub(r'^(modparam\("tm", "fr_inv_timer", \d+\))$',
            '\\1\nmodparam("tm", "%s", %s)' % (k, v))
    with open(kam.cfg, "w") as f:
        f.write(cfg)


def shmmem(kam):
    r = kam.rpc("core.shmmem")
    return {k: int(v) for k, v in r.items()}


def settle_shm(kam, base, slack, timeout):
    """Poll core.shmmem until used is within slack of base (or timeout).
    Returns (used, seconds waited)."""
    t0 = time.monotonic()
    used = shmmem(kam)["used"]
    while used - base > slack and time.monotonic() - t0 < timeout:
        time.sleep(1.0)
        used = shmmem(kam)["used"]
    return used, time.monotonic() - t0


class LoadSipp:
    """sipp for load: no message trace; a statistics CSV (-trace_stat)."""

    def __init__(self, t, ns, name, scenario, port, media_port, calls,
                 rate=None, limit=None, remote=None, args=(), timeout=60):
        self.t = t
        self.ns = ns
        self.name = name
        self.dir = os.path.join(t.dir, name)
        os.makedirs(self.dir, exist_ok=True)
        t.ensure_tone(self.dir)
        self.statfile = os.path.join(self.dir, "stat.csv")
        self.errfile = os.path.join(self.dir, "errors.log")
        self.outfile = os.path.join(self.dir, "stdout.log")
        self.argv = ["ip", "netns", "exec", ns.name, it.SIPP,
                     "-sf", os.path.join(it.SCEN_DIR, scenario),
                     "-i", it.LOOPBACK, "-p", str(port),
                     "-mi", it.LOOPBACK, "-mp", str(media_port),
                     "-m", str(calls), "-nostdin",
                     "-trace_stat", "-stf", self.statfile, "-fd", "5",
                     "-trace_err", "-error_file", self.errfile,
                     "-timeout", "%ds" % timeout, "-timeout_error",
                     "-max_recv_loops", "1000", "-max_sched_loops", "1000",
                     "-rtp_threadtasks", "40"] + list(args)
        if rate:
            self.argv += ["-r", str(rate)]
        if limit:
            self.argv += ["-l", str(limit)]
        if remote:
            self.argv.append(remote)
        self.proc = None

    def start(self):
        self.out_fh = open(self.outfile, "wb")
        self.proc = subprocess.Popen(self.argv, cwd=self.dir,
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.out_fh,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.t.defer(self.kill, "sipp %s" % self.name)
        self.t.log("sipp %s started (pid %d): %s" % (
            self.name, self.proc.pid, " ".join(self.argv[5:])))
        return self

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            import signal
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.proc.pid, sig)
                    self.proc.wait(timeout=3)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
        try:
            self.out_fh.close()
        except Exception:  # noqa: BLE001
            pass

    def stats(self):
        """The last row of the -trace_stat CSV as a dict."""
        try:
            with open(self.statfile) as f:
                rows = [ln.rstrip("\n").split(";") for ln in f if ln.strip()]
        except OSError:
            return {}
        if len(rows) < 2:
            return {}
        return dict(zip(rows[0], rows[-1]))

    def errors(self):
        return it.tail(self.errfile, 20) if os.path.exists(self.errfile) \
            else ""


def stat_int(st, key):
    try:
        return int(st.get(key, "0") or 0)
    except ValueError:
        return 0


# --------------------------------------------------------------------------
# the load run

def load_run(t, calls, rate, media_ms, limit=None, shm_slack=256 * 1024,
             settle_s=30, min_media_share=0.5, children=4, warm_settle_s=6):
    """Set up, run and check `calls` calls; returns the figures (dict)."""
    ns = it.Netns(t, "soak")
    cnt = it.media_counters(ns, {"uac": it.UAC_MEDIA, "uas": it.UAS_MEDIA},
                            it.LOOPBACK)
    kam = t.kamailio(ns, it.LOOPBACK, "%s:%d" % (it.LOOPBACK, it.UAS_SIP),
                     listen_port=it.KAM_SIP)
    # tm retransmits an unanswered INVITE after 500 ms (T1); on a busy
    # 2-core machine the callee's 180 can take longer than that, and sipp's
    # UAS aborts a call on the retransmission: with T1 = 2 s, a late reply
    # is not a failed call
    set_cfg(kam, children=children,
            tm={"retr_timer1": 2000, "retr_timer2": 4000})
    kam.start()
    if not t.has_module:
        raise it.TestError("the soak needs the module")
    call_s = media_ms / 1000.0 + 1.0            # set-up, media, BYE, slack
    if limit is None:
        limit = max(20, int(rate * call_s * 2))
    expect_s = calls / float(rate) + call_s

    uas = LoadSipp(t, ns, "uas", "uas_call.xml", it.UAS_SIP, it.UAS_MEDIA,
                   calls + 1, timeout=int(expect_s * 3 + 120)).start()
    it.wait_for(lambda: ns.run(["ss", "-Huln", "sport = :%d" % it.UAS_SIP],
                               check=False).stdout.strip(), 5)

    # one warm-up call: first-use allocations (tm, stats, the forwarder's
    # buffers) are not leaks
    warm = LoadSipp(t, ns, "warmup", "uac_call.xml", it.UAC_SIP,
                    it.UAC_MEDIA, 1, args=["-d", str(media_ms)],
                    remote="%s:%d" % (it.LOOPBACK, it.KAM_SIP),
                    timeout=20).start()
    rc = warm.wait(30)
    t.require(rc == 0, "warm-up call completed (sipp rc %s)" % rc,
              detail=warm.errors())
    it.wait_for(lambda: kam.rpc("ice.stats").get("sessions_active") == 0, 10)
    # tm keeps the warm-up call's transactions for its wait timer (5 s);
    # without this wait they count in the baseline (a few KB)
    time.sleep(warm_settle_s)
    shm0 = shmmem(kam)
    st0 = kam.rpc("ice.stats")
    ports0 = kam.rpc("ice.ports")
    c0 = cnt.packets()
    t.log("before: core.shmmem %s; ice.stats %s; ice.ports %s" % (
        json.dumps(shm0), json.dumps(st0), json.dumps(ports0)))

    t.log("load: %d calls at %d calls/s (at most %d at once), %d ms of "
          "media each; expected %.0f s" % (calls, rate, limit, media_ms,
                                          expect_s))
    uac = LoadSipp(t, ns, "uac", "uac_call.xml", it.UAC_SIP, it.UAC_MEDIA,
                   calls, rate=rate, limit=limit,
                   args=["-d", str(media_ms)],
                   remote="%s:%d" % (it.LOOPBACK, it.KAM_SIP),
                   timeout=int(expect_s * 3 + 60)).start()
    t0 = time.monotonic()
    peak = {"sessions": 0, "ports": 0}
    last_report = t0
    while uac.proc.poll() is None:
        time.sleep(1.0)
        try:
            st = kam.rpc("ice.stats")
        except Exception as e:  # noqa: BLE001
            t.log("ice.stats failed: %s" % e)
            if not kam.alive():
                break
            continue
        peak["sessions"] = max(peak["sessions"], st["sessions_active"])
        peak["ports"] = max(peak["ports"], st["ports_in_use"])
        if time.monotonic() - last_report >= 30:
            last_report = time.monotonic()
            us = uac.stats()
            t.log("%4.0f s: %s calls done (%s failed), %d active sessions, "
                  "%d ports in use, %d packets relayed" % (
                      last_report - t0, us.get("SuccessfulCall(C)", "?"),
                      us.get("FailedCall(C)", "?"), st["sessions_active"],
                      st["ports_in_use"], st["packets_relayed"]))
        if time.monotonic() - t0 > expect_s * 3 + 90:
            break
    rc_uac = uac.wait(10)
    dur = time.monotonic() - t0
    rc_uas = uas.wait(15)
    us = uac.stats()
    ok_calls = stat_int(us, "SuccessfulCall(C)")
    failed = stat_int(us, "FailedCall(C)")
    t.check(rc_uac == 0 and ok_calls == calls and failed == 0,
            "caller: %d of %d calls succeeded, %d failed in %.1f s "
            "(%.1f calls/s; sipp rc %s)" % (ok_calls, calls, failed, dur,
                                            ok_calls / dur, rc_uac),
            detail=uac.errors())

    # settle: tm's wait timer, the forwarder's reaping
    it.wait_for(lambda: kam.rpc("ice.stats").get("sessions_active") == 0,
                20, interval=0.5)
    shm_used, waited = settle_shm(kam, shm0["used"], shm_slack, settle_s)
    shm1 = shmmem(kam)
    st1 = kam.rpc("ice.stats")
    ports1 = kam.rpc("ice.ports")
    c1 = cnt.packets()
    sessions_left = t.ice_sessions(kam)
    media_pkts = (c1["uac_relay"] - c0["uac_relay"]) + \
        (c1["uas_relay"] - c0["uas_relay"])
    direct = (c1["uac_all"] - c1["uac_relay"]) + \
        (c1["uas_all"] - c1["uas_relay"])
    want_media = int(2 * calls * (media_ms / 1000.0) * it.RTP_PPS *
                     min_media_share)
    t.log("after (%.1f s settle): core.shmmem %s; ice.stats %s; ice.ports %s"
          % (waited, json.dumps(shm1), json.dumps(st1), json.dumps(ports1)))
    t.check(media_pkts >= want_media, "receivers got %d RTP packets from the "
            "relay (need >= %d)" % (media_pkts, want_media))
    t.check(direct == 0, "no RTP bypassed the relay (%d)" % direct)
    t.check(st1["sessions_total"] - st0["sessions_total"] == calls,
            "ice.stats sessions_total grew by %d (%d)" % (
                calls, st1["sessions_total"] - st0["sessions_total"]))
    t.check(st1["sessions_active"] == 0 and not sessions_left,
            "no session left (sessions_active %d, ice.sessions %d)" % (
                st1["sessions_active"], len(sessions_left)),
            detail=json.dumps(sessions_left[:5]))
    t.check(ports1["in_use"] == ports0["in_use"],
            "ice.ports in_use back to %d (%d)" % (ports0["in_use"],
                                                 ports1["in_use"]))
    t.check(shm1["used"] - shm0["used"] <= shm_slack,
            "core.shmmem used back within %d bytes of its start: %d -> %d "
            "(%+d bytes, %+.2f bytes per call)" % (
                shm_slack, shm0["used"], shm1["used"],
                shm1["used"] - shm0["used"],
                (shm1["used"] - shm0["used"]) / float(calls)))
    # media_timeout is 30 s and a call lasts about a second: a session that
    # "timed out" during the load was deleted under a live call
    tmo = kam.log_lines(r"timed out after \d+ ms")
    t.check(not tmo, "no session timed out during the load (%d did)" %
            len(tmo), detail="\n".join(ln.strip() for ln in tmo[:5]))
    it.check_kamailio_healthy(t, kam)
    fig = {
        "calls": calls, "rate": rate, "media_ms": media_ms, "limit": limit,
        "successful": ok_calls, "failed": failed, "duration_s": round(dur, 1),
        "achieved_cps": round(ok_calls / dur, 1) if dur else 0,
        "peak_sessions": peak["sessions"], "peak_ports": peak["ports"],
        "packets_relayed": st1["packets_relayed"] - st0["packets_relayed"],
        "packets_dropped": st1["packets_dropped"] - st0["packets_dropped"],
        "rtp_at_receivers": media_pkts,
        "shm_used_before": shm0["used"], "shm_used_after": shm1["used"],
        "shm_real_used_before": shm0["real_used"],
        "shm_real_used_after": shm1["real_used"],
        "shm_settle_s": round(waited, 1),
        "ports_in_use_before": ports0["in_use"],
        "ports_in_use_after": ports1["in_use"],
        "sessions_created": st1["sessions_total"] - st0["sessions_total"],
        "sessions_timed_out": len(tmo),
        "sipp_uas_rc": rc_uas,
    }
    kam.stop()
    return fig


# --------------------------------------------------------------------------
# port-pool exhaustion

def manage_rcs(kam, call_id):
    rx = re.compile(r"ICETEST ice_manage rc=(-?\d+) msg=(\S+) cid=%s$" %
                    re.escape(call_id))
    out = []
    for ln in kam.log_text().splitlines():
        m = rx.search(ln)
        if m:
            out.append((m.group(2), int(m.group(1))))
    return out


def exhaustion_run(t, hold_ms=4000):
    ns = it.Netns(t, "exh")
    kam = t.kamailio(ns, it.LOOPBACK, "%s:%d" % (it.LOOPBACK, it.UAS_SIP),
                     listen_port=it.KAM_SIP, name="kamailio-exh")
    set_cfg(kam, port_min=EXH_PORT_MIN, port_max=EXH_PORT_MAX)
    kam.start()
    ports = kam.rpc("ice.ports")
    npairs = (ports["in_use"] + ports["free"])
    t.check(npairs == EXH_PORT_MAX - EXH_PORT_MIN + 1,
            "ice.ports: %d ports (%s)" % (npairs, json.dumps(ports)))
    uas = t.sipp(ns, "exh-uas", "uas_call.xml", it.LOOPBACK, it.UAS_SIP,
                 it.LOOPBACK, it.UAS_MEDIA, calls=4).start()
    uas.wait_listening(it.UAS_SIP)
    remote = "%s:%d" % (it.LOOPBACK, it.KAM_SIP)
    # two long calls take the 8 ports
    two = t.sipp(ns, "exh-uac12", "uac_call.xml", it.LOOPBACK, it.UAC_SIP,
                 it.LOOPBACK, it.UAC_MEDIA, calls=2, remote=remote,
                 args=["-d", str(hold_ms), "-r", "10",
                       "-cid_str", "soak-exh-%u@test"]).start()
    full = it.wait_for(lambda: kam.rpc("ice.ports").get("free") == 0 and
                       len(t.ice_sessions(kam)) == 2, 5, interval=0.1)
    t.check(full, "two calls anchored, the pool is full: %s" %
            json.dumps(kam.rpc("ice.ports")))
    # the third call
    three = t.sipp(ns, "exh-uac3", "uac_call.xml", it.LOOPBACK,
                   it.UAC_SIP + 1, it.LOOPBACK, it.UAC_MEDIA + 10, calls=1,
                   remote=remote,
                   args=["-d", "500", "-cid_str", "soak-exh3-%u@test"]
                   ).start()
    rc3 = three.wait()
    t.check(rc3 == 0, "the third call completed anyway (sipp rc %s)" % rc3,
            detail=three.errors())
    cid3 = "soak-exh3-1@test"
    rcs = manage_rcs(kam, cid3)
    t.check(rcs == [("INVITE", -1), ("200", -1)],
            "third call: ice_manage rc -1 for the INVITE and the 200: %s" %
            rcs)
    lines = [ln for ln in kam.log_lines("ice_manage: ") if cid3 in ln and
             "ICETEST" not in ln]
    t.check(lines and all("port pool exhausted" in ln for ln in lines),
            "third call: the log says 'port pool exhausted' (%d lines)" %
            len(lines), detail="\n".join(lines))
    if lines:
        t.log("module said: %s" % lines[0].split("ice_manage:", 1)[1].strip())
    inv3 = [m for m in uas.received(lambda m: m.method == "INVITE")
            if m.header("call-id") == cid3]
    sent3 = three.sent(lambda m: m.method == "INVITE")
    t.check(inv3 and sent3 and inv3[0].body == sent3[0].body,
            "third call: its SDP reached the callee untouched (unanchored)")
    t.check(not any(s.get("call_id") == cid3 for s in t.ice_sessions(kam)),
            "third call: no session was left for it")
    t.check(kam.rpc("ice.ports").get("in_use") == npairs,
            "the two calls still hold all %d ports" % npairs)

    rc12 = two.wait()
    t.check(rc12 == 0, "the two long calls completed (sipp rc %s)" % rc12,
            detail=two.errors())
    free = it.wait_for(lambda: kam.rpc("ice.ports").get("in_use") == 0, 5)
    t.check(free, "after they end, ice.ports in_use is 0 (%s)" %
            json.dumps(kam.rpc("ice.ports")))
    four = t.sipp(ns, "exh-uac4", "uac_call.xml", it.LOOPBACK,
                  it.UAC_SIP + 2, it.LOOPBACK, it.UAC_MEDIA + 20, calls=1,
                  remote=remote,
                  args=["-d", "500", "-cid_str", "soak-exh4-%u@test"]
                  ).start()
    rc4 = four.wait()
    t.check(rc4 == 0, "a fourth call completes (sipp rc %s)" % rc4,
            detail=four.errors())
    rcs = manage_rcs(kam, "soak-exh4-1@test")
    t.check(rcs == [("INVITE", 1), ("200", 1)],
            "fourth call: anchored again (ice_manage rcs %s)" % rcs)
    oks = four.received(lambda m: m.status == 200 and
                        m.cseq_method == "INVITE")
    if oks:
        addr, port = oks[0].sdp().audio_dest()
        t.check(addr == it.LOOPBACK and
                EXH_PORT_MIN <= (port or 0) <= EXH_PORT_MAX,
                "fourth call: the answer points at the relay (%s:%s)" %
                (addr, port))
    uas.wait()
    ok = it.wait_for(lambda: kam.rpc("ice.ports").get("in_use") == 0 and
                     not t.ice_sessions(kam), 5)
    t.check(ok, "at the end: no session, no port in use")
    it.check_kamailio_healthy(t, kam)
    kam.stop()


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rate", type=int, default=100, help="calls per second")
    ap.add_argument("--media-ms", type=int, default=500,
                    help="media time of each call (caller's pause)")
    ap.add_argument("--limit", type=int, default=None,
                    help="at most this many calls at once")
    ap.add_argument("--shm-slack", type=int, default=256 * 1024,
                    help="allowed growth of shm 'used' (bytes)")
    ap.add_argument("--settle", type=int, default=30,
                    help="seconds to wait for shm to settle")
    ap.add_argument("--children", type=int, default=4,
                    help="kamailio SIP workers")
    ap.add_argument("--no-exhaustion", action="store_true")
    ap.add_argument("--exhaustion-only", action="store_true")
    ap.add_argument("--name", default="soak")
    a = ap.parse_args()
    figs = {}

    def run(t):
        if not a.exhaustion_only:
            figs["load"] = load_run(t, a.calls, a.rate, a.media_ms, a.limit,
                                    a.shm_slack, a.settle, children=a.children)
            t.log("figures: %s" % json.dumps(figs["load"]))
        if not a.no_exhaustion:
            exhaustion_run(t)
        with open(os.path.join(t.dir, "figures.json"), "w") as f:
            json.dump(figs, f, indent=1)
    return it.main(run, a.name)


if __name__ == "__main__":
    sys.exit(main())
