#!/usr/bin/env python3
"""reinvite_keeps_ports: a re-INVITE keeps the relay ports.

The caller (uac_reinvite.xml) sets up a call, streams RTP, sends a re-INVITE
with the same media (o= version + 1), streams again and hangs up. Checks: the
SDPs the callee receives in the INVITE and the re-INVITE point at the same
relay address and port, and so do the two 200s the caller receives; the
session's local ports are the same before and after the re-INVITE; media
still flows through the relay after it; nothing is left after the BYE.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import icetest as it  # noqa: E402

CALL_ID = "icet-reinvite-1@test"
PAUSE_MS = 2500          # each of the two pauses
MIN_PKTS = 50


def run(t):
    ns, kam, cnt = it.loopback_setup(t)
    uas = t.sipp(ns, "uas", "uas_reinvite.xml", it.LOOPBACK, it.UAS_SIP,
                 it.LOOPBACK, it.UAS_MEDIA).start()
    uas.wait_listening(it.UAS_SIP)
    uac = t.sipp(ns, "uac", "uac_reinvite.xml", it.LOOPBACK, it.UAC_SIP,
                 it.LOOPBACK, it.UAC_MEDIA,
                 remote="%s:%d" % (it.LOOPBACK, it.KAM_SIP),
                 args=["-d", str(PAUSE_MS),
                       "-cid_str", "icet-reinvite-%u@test"]
                 ).start()

    before = it.wait_relayed(t, kam, CALL_ID, 10, timeout=PAUSE_MS / 1000.0)
    # wait for the re-INVITE's 200 at the caller, then snapshot
    reinv_ok = it.wait_for(lambda: uac.received(
        lambda m: m.status == 200 and m.header("cseq") == "2 INVITE"),
        PAUSE_MS / 1000.0 + 3)
    t.check(reinv_ok, "caller got the 200 for the re-INVITE during the call")
    snap = cnt.packets()
    after = None
    if t.has_module:
        try:
            after = t.ice_session(kam, CALL_ID)
        except it.RpcError as e:
            t.check(False, "ice.session after the re-INVITE: %s" % e)
    if t.needs_module("ice.session keeps its local ports over the re-INVITE"):
        pb, pa = sorted(it.local_ports(before)), sorted(it.local_ports(after))
        t.check(pb and pb == pa,
                "local ports before %s == after %s" % (pb, pa),
                detail="before: %s\nafter: %s" % (json.dumps(before),
                                                  json.dumps(after)))
        n = [s for s in t.ice_sessions(kam) if s.get("call_id") == CALL_ID]
        t.check(len(n) == 1, "still one session for the call (%d)" % len(n))

    rc_uac = uac.wait()
    rc_uas = uas.wait()
    t.check(rc_uac == 0, "caller sipp finished the call (rc=%s)" % rc_uac,
            detail=uac.errors())
    t.check(rc_uas == 0, "callee sipp finished the call (rc=%s)" % rc_uas,
            detail=uas.errors())

    invs = uas.received(lambda m: m.method == "INVITE")
    oks = uac.received(lambda m: m.status == 200 and m.cseq_method == "INVITE")
    t.require(len(invs) == 2 and len(oks) == 2,
              "callee got INVITE + re-INVITE (%d), caller two 200s (%d)" %
              (len(invs), len(oks)))
    d_uas = [it.check_relay_sdp(t, m, it.LOOPBACK, "callee, INVITE #%d" %
                                (i + 1)) for i, m in enumerate(invs)]
    d_uac = [it.check_relay_sdp(t, m, it.LOOPBACK, "caller, 200 #%d" %
                                (i + 1)) for i, m in enumerate(oks)]
    t.check(d_uas[0] == d_uas[1], "callee sees the same relay address in the "
            "INVITE and the re-INVITE: %s, %s" % tuple(d_uas))
    t.check(d_uac[0] == d_uac[1], "caller sees the same relay address in both "
            "200s: %s, %s" % tuple(d_uac))

    it.check_rtp_counts(t, cnt, "uac", MIN_PKTS)
    it.check_rtp_counts(t, cnt, "uas", MIN_PKTS)
    if snap and t.has_module:
        end = cnt.packets()
        for rx in ("uac", "uas"):
            delta = end[rx + "_relay"] - snap.get(rx + "_relay", 0)
            t.check(delta >= 25, "%s still gets RTP from the relay after the "
                    "re-INVITE (+%d packets)" % (rx, delta))
    it.check_manage_rcs(t, kam, CALL_ID, [("INVITE", 1), ("200", 1),
                                          ("INVITE", 1), ("200", 1)])
    it.check_session_gone(t, kam, CALL_ID)
    it.check_kamailio_healthy(t, kam)


if __name__ == "__main__":
    sys.exit(it.main(run, "reinvite_keeps_ports"))
