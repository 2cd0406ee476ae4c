#!/usr/bin/env python3
"""call_basic: a call through kamailio + ice with RTP both ways.

The caller (sipp uac_call.xml, 127.0.0.1:5070, media 6000) calls the callee
(sipp uas_call.xml, 127.0.0.1:5091, media 7000) via kamailio (127.0.0.1:5060)
with ice_manage("remove") on the offer and the answer. Both send PCMU with
rtp_stream. Checks: the SDPs each side receives point at the relay; nft
counters on each receiver's input count packets from the relay's port range
(and none that bypass it); ice.session shows both legs relaying both ways;
after the BYE the session is gone and ice.ports in_use is 0.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import icetest as it  # noqa: E402

CALL_ID = "icet-basic-1@test"
CALL_MS = 4000
MIN_PKTS = 50          # at 50 pps each way, ~3.5 s of media is ~175


def run(t):
    ns, kam, cnt = it.loopback_setup(t)
    uas = t.sipp(ns, "uas", "uas_call.xml", it.LOOPBACK, it.UAS_SIP,
                 it.LOOPBACK, it.UAS_MEDIA).start()
    uas.wait_listening(it.UAS_SIP)
    uac = t.sipp(ns, "uac", "uac_call.xml", it.LOOPBACK, it.UAC_SIP,
                 it.LOOPBACK, it.UAC_MEDIA,
                 remote="%s:%d" % (it.LOOPBACK, it.KAM_SIP),
                 args=["-d", str(CALL_MS), "-cid_str", "icet-basic-%u@test"]
                 ).start()

    # mid-call: the relay's own counters
    sess = it.wait_relayed(t, kam, CALL_ID, 25, timeout=CALL_MS / 1000.0)
    if t.needs_module("ice.session shows both legs relaying both ways"):
        legs = it.leg_totals(sess)
        t.check(sess is not None and sess.get("call_id") == CALL_ID,
                "ice.session %s answered" % CALL_ID, detail=json.dumps(sess))
        t.check(len(legs) == 2, "session has 2 legs (caller, callee): %d" %
                len(legs), detail=json.dumps(sess))
        for tag, role, tot in legs:
            t.check(tot["packets_in"] >= 25 and tot["packets_out"] >= 25,
                    "leg %s/%s relayed both ways: %s" % (role, tag, tot))
        comps = it.session_components(sess)
        ports = [c.get("local_port") for _, _, c in comps]
        t.check(comps and all(it.in_relay_range(p) for p in ports),
                "all local ports in the relay range: %s" % ports)
        latched = sorted(it.addr_str(c.get("latched")) for _, _, c in comps)
        t.check(any(a.endswith(":%d" % it.UAC_MEDIA) for a in latched) and
                any(a.endswith(":%d" % it.UAS_MEDIA) for a in latched),
                "latched addresses are the UAs' media ports: %s" % latched)

    rc_uac = uac.wait()
    rc_uas = uas.wait()
    t.check(rc_uac == 0, "caller sipp finished the call (rc=%s)" % rc_uac,
            detail=uac.errors())
    t.check(rc_uas == 0, "callee sipp finished the call (rc=%s)" % rc_uas,
            detail=uas.errors())

    invites = uas.received(lambda m: m.method == "INVITE")
    oks = uac.received(lambda m: m.status == 200 and m.cseq_method == "INVITE")
    t.require(invites and oks, "callee got the INVITE and caller the 200")
    _, uas_dst = it.check_relay_sdp(t, invites[0], it.LOOPBACK, "callee")
    _, uac_dst = it.check_relay_sdp(t, oks[0], it.LOOPBACK, "caller")

    it.check_rtp_counts(t, cnt, "uac", MIN_PKTS)
    it.check_rtp_counts(t, cnt, "uas", MIN_PKTS)

    if t.has_module and sess:
        ports = it.local_ports(sess)
        t.check(uas_dst in ports and uac_dst in ports,
                "the SDP ports (%s, %s) are the session's local ports %s" %
                (uac_dst, uas_dst, ports))

    it.check_manage_rcs(t, kam, CALL_ID, [("INVITE", 1), ("200", 1)])
    it.check_session_gone(t, kam, CALL_ID)
    if t.needs_module("ice.stats counted the call"):
        st = kam.rpc("ice.stats")
        t.check(st.get("sessions_total", 0) >= 1 and
                st.get("packets_relayed", 0) >= 2 * MIN_PKTS,
                "ice.stats: sessions_total >= 1, packets_relayed >= %d" %
                (2 * MIN_PKTS), detail=json.dumps(st))
        # which media I/O the forwarder ran: epoll when the config says
        # io_uring 0 (call_basic_epoll), else io_uring unless refused
        want = ("epoll",) if os.environ.get("ICE_TEST_IO_URING") == "0" \
            else ("io_uring", "epoll")
        t.check(st.get("media_io") in want, "ice.stats media_io: %s" %
                st.get("media_io"), detail=json.dumps(st))
        # the forwarder keeps the call's two port pairs open for the next
        # call (socket_reuse, on by default); none of them is in use
        pr = kam.rpc("ice.ports")
        t.check(pr.get("held", 0) >= 2 and pr.get("in_use") == 0,
                "ice.ports: the call's pairs held open (held %s, in_use %s)"
                % (pr.get("held"), pr.get("in_use")), detail=json.dumps(pr))
    it.check_kamailio_healthy(t, kam)


if __name__ == "__main__":
    sys.exit(it.main(run, "call_basic"))
