#!/usr/bin/env python3
"""forked_early_media: two early dialogs, then a 200 from one of them.

The callee (sipp uas_forked.xml) answers the INVITE with 183 + SDP from
to-tag A (media port 7010), 183 + SDP from to-tag B (media port 7000), then
200 OK from B. kamailio runs ice_manage("remove") on each. Checks: both
183s that reach the caller carry relay addresses (relay IP, port in the relay
range); the two early dialogs are distinct; after the 200 media flows both
ways through the relay; after the BYE nothing is left.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import icetest as it  # noqa: E402

CALL_ID = "icet-forked-1@test"
CALL_MS = 3500
MIN_PKTS = 50


def run(t):
    ns, kam, cnt = it.loopback_setup(t)
    uas = t.sipp(ns, "uas", "uas_forked.xml", it.LOOPBACK, it.UAS_SIP,
                 it.LOOPBACK, it.UAS_MEDIA).start()
    uas.wait_listening(it.UAS_SIP)
    uac = t.sipp(ns, "uac", "uac_forked.xml", it.LOOPBACK, it.UAC_SIP,
                 it.LOOPBACK, it.UAC_MEDIA,
                 remote="%s:%d" % (it.LOOPBACK, it.KAM_SIP),
                 args=["-d", str(CALL_MS), "-cid_str", "icet-forked-%u@test"]
                 ).start()

    sess = it.wait_relayed(t, kam, CALL_ID, 25, timeout=CALL_MS / 1000.0 + 1)
    if t.needs_module("ice.session during the call"):
        t.log("ice.session mid-call: %s" % json.dumps(sess))
        legs = it.leg_totals(sess)
        moving = [(tag, role) for tag, role, tot in legs
                  if tot["packets_in"] > 0 and tot["packets_out"] > 0]
        t.check(len(moving) >= 2, "two legs (caller, callee B) relay both "
                "ways after the 200: %s" % legs)

    rc_uac = uac.wait()
    rc_uas = uas.wait()
    t.check(rc_uac == 0, "caller sipp finished the call (rc=%s)" % rc_uac,
            detail=uac.errors())
    t.check(rc_uas == 0, "callee sipp finished the call (rc=%s)" % rc_uas,
            detail=uas.errors())

    p183 = uac.received(lambda m: m.status == 183)
    t.require(len(p183) == 2, "caller received two 183s (got %d)" % len(p183))
    tags = [m.to_tag() for m in p183]
    t.check(tags[0] != tags[1] and all(tags),
            "the two 183s belong to different early dialogs (to-tags %s)" %
            tags)
    dests = []
    for i, m in enumerate(p183):
        dests.append(it.check_relay_sdp(t, m, it.LOOPBACK,
                                        "caller, 183 #%d" % (i + 1)))
    t.log("relay addresses offered in the 183s: %s" % dests)
    if not t.has_module:
        t.check(dests[0][1] == it.UAS_MEDIA + 10 and
                dests[1][1] == it.UAS_MEDIA,
                "proxy-only: 183s carry the callee's own ports %d, %d" %
                (it.UAS_MEDIA + 10, it.UAS_MEDIA))

    oks = uac.received(lambda m: m.status == 200 and m.cseq_method == "INVITE")
    t.require(oks, "caller received the 200 OK")
    t.check(oks[0].to_tag() == tags[1], "200 OK is from early dialog B")
    it.check_relay_sdp(t, oks[0], it.LOOPBACK, "caller, 200")
    invites = uas.received(lambda m: m.method == "INVITE")
    t.require(invites, "callee received the INVITE")
    it.check_relay_sdp(t, invites[0], it.LOOPBACK, "callee")

    it.check_rtp_counts(t, cnt, "uac", MIN_PKTS)
    it.check_rtp_counts(t, cnt, "uas", MIN_PKTS)
    it.check_manage_rcs(t, kam, CALL_ID, [("INVITE", 1), ("183", 1),
                                          ("183", 1), ("200", 1)])
    it.check_session_gone(t, kam, CALL_ID)
    it.check_kamailio_healthy(t, kam)


if __name__ == "__main__":
    sys.exit(it.main(run, "forked_early_media"))
