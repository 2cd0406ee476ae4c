#!/usr/bin/env python3
"""faults: what happens to calls when kamailio's processes are stopped or
killed.

All in one namespace on 127.0.0.1 (caller sipp :5070 media 6000, callee sipp
:5091 media 7000, kamailio :5060, relay 35000-35999), one call with PCMU both
ways (uac_call.xml / uas_call.xml).

1. SIGSTOP the whole kamailio process group (main, SIP workers, the ICE
   FORWARDER) mid-call for 2 s, then SIGCONT: while stopped, the receivers
   get nothing from the relay; after SIGCONT the relay resumes within
   0.5 s at the normal rate, the latched addresses are unchanged, no session
   timed out, the call ends normally (BYE through kamailio) and the session
   is deleted.
2. SIGSTOP only the ICE FORWARDER for 1 s, then SIGCONT: the main process
   gets a SIGCHLD for a stopped child and must not shut down (Kamailio only
   stops when a child has exited); media resumes.
3. SIGKILL the ICE FORWARDER (its pid from core.psx): Kamailio's main
   process stops the whole server when any child dies. Checks: kamailio
   exits within 5 s with status 1 (a child killed by a signal), its log says
   "child process <pid> exited by a signal 9" and "terminating due to
   SIGCHLD", no kamailio process is left in the namespace and no relay port
   is still bound. What the module guarantees is written down in
   test/integration/README.md ("Faults").

Clock jumps are not tested: the module's timers (media_timeout,
session_timeout, relatch_window, ICE pacing) use CLOCK_MONOTONIC, which a
wall-clock change (date -s, an NTP step) does not move, and CLOCK_MONOTONIC
cannot be faked for one process tree; changing the system clock is not safe
on a shared machine.
"""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import icetest as it  # noqa: E402

CALL_ID = "icet-faults-1@test"
CALL_MS = 8000
STOP_S = 2.0
FWD_STOP_S = 1.0


def forwarder_pids(kam):
    ps = kam.rpc("core.psx") or []
    return [int(p["PID"]) for p in ps
            if "ICE FORWARDER" in str(p.get("DSC", ""))]


def kamailio_pids(ns):
    out = []
    for p in ns.run(["ip", "netns", "pids", ns.name]).stdout.split():
        try:
            with open("/proc/%s/comm" % p) as f:
                if f.read().strip() == "kamailio":
                    out.append(int(p))
        except (OSError, ValueError):
            pass
    return out


def relayed(cnt):
    c = cnt.packets()
    return c.get("uac_relay", 0), c.get("uas_relay", 0)


def stall_and_resume(t, cnt, what, stop, cont, stop_s):
    """Stop, check that media stalls, continue, check that it resumes."""
    before = relayed(cnt)
    stop()
    t_stop = time.monotonic()
    time.sleep(0.3)                 # packets already in flight
    during0 = relayed(cnt)
    time.sleep(max(0.0, stop_s - 0.3))
    during1 = relayed(cnt)
    cont()
    t_cont = time.monotonic()
    t.log("%s: stopped %.2f s; relayed before %s, while stopped %s -> %s" %
          (what, t_cont - t_stop, before, during0, during1))
    t.check(during1 == during0, "%s: nothing relayed while stopped (%s -> "
            "%s)" % (what, during0, during1))
    resumed = it.wait_for(lambda: all(a > b for a, b in zip(relayed(cnt),
                                                            during1)), 0.5,
                          interval=0.02)
    t_res = time.monotonic() - t_cont
    t.check(resumed, "%s: media resumed both ways within 0.5 s (%.0f ms)" %
            (what, t_res * 1000))
    time.sleep(0.3)
    a0 = relayed(cnt)
    time.sleep(1.0)
    a1 = relayed(cnt)
    rate = [y - x for x, y in zip(a0, a1)]
    t.check(all(r >= 0.8 * it.RTP_PPS for r in rate),
            "%s: normal rate after SIGCONT: %s packets/s (caller, callee)" %
            (what, rate))
    burst = [y - x for x, y in zip(during1, a0)]
    t.log("%s: %s packets in the first 0.3 s after SIGCONT (queued in the "
          "relay's socket buffers while stopped)" % (what, burst))


def run(t):
    if not t.needs_module("fault tests"):
        return
    ns, kam, cnt = it.loopback_setup(t)
    uas = t.sipp(ns, "uas", "uas_call.xml", it.LOOPBACK, it.UAS_SIP,
                 it.LOOPBACK, it.UAS_MEDIA).start()
    uas.wait_listening(it.UAS_SIP)
    uac = t.sipp(ns, "uac", "uac_call.xml", it.LOOPBACK, it.UAC_SIP,
                 it.LOOPBACK, it.UAC_MEDIA,
                 remote="%s:%d" % (it.LOOPBACK, it.KAM_SIP),
                 args=["-d", str(CALL_MS), "-cid_str", "icet-faults-%u@test"]
                 ).start()
    sess0 = it.wait_relayed(t, kam, CALL_ID, 25, timeout=5)
    t.require(sess0 is not None, "call %s is relayed both ways" % CALL_ID)
    latched0 = sorted(it.addr_str(c.get("latched"))
                      for _, _, c in it.session_components(sess0))
    pgid = kam.proc.pid
    fwd = forwarder_pids(kam)
    t.require(len(fwd) == 1, "core.psx lists one ICE FORWARDER: %s" % fwd)

    # 1. the whole of kamailio stopped for 2 s
    stall_and_resume(t, cnt, "kamailio SIGSTOP",
                     lambda: os.killpg(pgid, signal.SIGSTOP),
                     lambda: os.killpg(pgid, signal.SIGCONT), STOP_S)
    # 2. only the forwarder stopped for 1 s
    stall_and_resume(t, cnt, "forwarder SIGSTOP",
                     lambda: os.kill(fwd[0], signal.SIGSTOP),
                     lambda: os.kill(fwd[0], signal.SIGCONT), FWD_STOP_S)
    t.check(kam.alive(), "kamailio did not shut down on the SIGCHLD of a "
            "stopped (not exited) child")
    sess1 = t.ice_session(kam, CALL_ID)
    latched1 = sorted(it.addr_str(c.get("latched"))
                      for _, _, c in it.session_components(sess1))
    t.check(latched1 == latched0, "latched addresses unchanged: %s" %
            latched1, detail="before %s" % latched0)

    rc_uac = uac.wait()
    rc_uas = uas.wait()
    t.check(rc_uac == 0 and rc_uas == 0, "the call ended normally (sipp rc "
            "%s, %s)" % (rc_uac, rc_uas), detail=uac.errors() + uas.errors())
    it.check_session_gone(t, kam, CALL_ID)
    tmo = kam.log_lines(r"timed out after")
    t.check(not tmo, "no session timed out", detail="\n".join(tmo))
    it.check_kamailio_healthy(t, kam)

    # 3. SIGKILL the forwarder during a call
    uas2 = t.sipp(ns, "uas2", "uas_call.xml", it.LOOPBACK, it.UAS_SIP,
                  it.LOOPBACK, it.UAS_MEDIA).start()
    uas2.wait_listening(it.UAS_SIP)
    uac2 = t.sipp(ns, "uac2", "uac_call.xml", it.LOOPBACK, it.UAC_SIP,
                  it.LOOPBACK, it.UAC_MEDIA,
                  remote="%s:%d" % (it.LOOPBACK, it.KAM_SIP),
                  args=["-d", "6000", "-cid_str", "icet-faults2-%u@test"],
                  timeout=10).start()
    t.require(it.wait_relayed(t, kam, "icet-faults2-1@test", 10, timeout=5),
              "second call relayed")
    fwd = forwarder_pids(kam)
    t.require(len(fwd) == 1, "core.psx lists one ICE FORWARDER: %s" % fwd)
    ps = kam.rpc("core.psx")
    t.log("core.psx: %s" % json.dumps(ps))
    os.kill(fwd[0], signal.SIGKILL)
    t_kill = time.monotonic()
    try:
        rc = kam.proc.wait(timeout=5)
    except Exception:  # noqa: BLE001
        rc = None
    t.check(rc is not None, "kamailio exited %.1f s after the forwarder "
            "was killed" % (time.monotonic() - t_kill))
    t.check(rc == 1, "kamailio's exit status is 1 (a child killed by a "
            "signal): %s" % rc)
    lines = kam.log_lines(r"child process %d exited by a signal 9|"
                          r"terminating due to SIGCHLD" % fwd[0])
    t.check(any("exited by a signal 9" in ln for ln in lines) and
            any("terminating due to SIGCHLD" in ln for ln in lines),
            "the log says why: %s" % " / ".join(ln.strip()[:100]
                                               for ln in lines))
    left = it.wait_for(lambda: not kamailio_pids(ns), 5)
    t.check(left, "no kamailio process left in the namespace",
            detail=kamailio_pids(ns))
    r = ns.run(["ss", "-Huan", "sport >= :%d and sport <= :%d" % (
        it.RELAY_PORT_MIN, it.RELAY_PORT_MAX)], check=False)
    t.check(not r.stdout.strip(), "no relay port still bound",
            detail=r.stdout)
    uac2.kill()
    uas2.kill()


if __name__ == "__main__":
    sys.exit(it.main(run, "faults"))
