#!/usr/bin/env python3
"""malformed_sdp: an INVITE whose SDP is malformed goes through unchanged.

Three calls (sipp/malformed.csv), each with one defect: a non-numeric m= port,
an m= line with nothing after the media type, a c= line without an address.
The callee rejects with 488. Checks per call: the body the callee receives is
byte-for-byte the body the caller sent; the script logged
"ICETEST ice_manage rc=-1" for the INVITE; the module itself logged a line
containing "ice_manage" for that call (the log prefix carries the Call-ID).
After the calls: no session, no port in use.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import icetest as it  # noqa: E402

CALLS = 3


def run(t):
    ns, kam, cnt = it.loopback_setup(t)
    uas = t.sipp(ns, "uas", "uas_reject.xml", it.LOOPBACK, it.UAS_SIP,
                 it.LOOPBACK, it.UAS_MEDIA, calls=CALLS).start()
    uas.wait_listening(it.UAS_SIP)
    uac = t.sipp(ns, "uac", "uac_malformed.xml", it.LOOPBACK, it.UAC_SIP,
                 it.LOOPBACK, it.UAC_MEDIA, calls=CALLS,
                 remote="%s:%d" % (it.LOOPBACK, it.KAM_SIP),
                 args=["-inf", os.path.join(it.SCEN_DIR, "malformed.csv"),
                       "-l", "1", "-r", "5",
                       "-cid_str", "icet-malformed-%u@test"]).start()
    rc_uac = uac.wait()
    rc_uas = uas.wait()
    t.check(rc_uac == 0, "caller sipp completed %d calls (rc=%s)" %
            (CALLS, rc_uac), detail=uac.errors())
    t.check(rc_uas == 0, "callee sipp rejected %d calls (rc=%s)" %
            (CALLS, rc_uas), detail=uas.errors())

    sent = {m.header("call-id"): m for m in uac.sent(
        lambda m: m.method == "INVITE")}
    got = {m.header("call-id"): m for m in uas.received(
        lambda m: m.method == "INVITE")}
    t.require(len(sent) == CALLS, "caller sent %d INVITEs (%d)" %
              (CALLS, len(sent)))
    for cid in sorted(sent):
        s = sent[cid]
        r = got.get(cid)
        if not t.check(r is not None, "%s: callee received the INVITE" % cid):
            continue
        bad = [ln for ln in s.body.decode("utf-8", "replace").splitlines()
               if ln.startswith(("c=", "m="))]
        t.check(r.body == s.body,
                "%s (%s): body received byte-for-byte as sent (%d bytes)" %
                (cid, " | ".join(bad), len(s.body)),
                detail="sent:\n%r\nreceived:\n%r" % (s.body, r.body))
        t.check(r.header("content-length") == str(len(s.body)),
                "%s: Content-Length unchanged (%s)" %
                (cid, r.header("content-length")))
        if t.needs_module("%s: ice_manage returned -1 and logged why" % cid):
            rcs = kam.log_lines(r"ICETEST ice_manage rc=\S+ msg=INVITE cid=%s"
                                % cid.replace(".", r"\."))
            t.check(rcs and all("rc=-1 " in ln for ln in rcs),
                    "%s: script saw ice_manage rc=-1" % cid,
                    detail="\n".join(rcs) or "<no ICETEST ice_manage line>")
            mod = [ln for ln in kam.log_lines("ice_manage")
                   if cid in ln and "ICETEST" not in ln]
            t.check(mod, "%s: the module logged a line containing "
                    "'ice_manage'" % cid)
            if mod:
                t.log("module said: %s" % mod[0].strip())

    if t.needs_module("no session after malformed offers"):
        ss = t.ice_sessions(kam)
        t.check(not ss, "ice.sessions is empty", detail=json.dumps(ss))
        ports = kam.rpc("ice.ports")
        t.check(ports.get("in_use") == 0, "ice.ports in_use == 0",
                detail=json.dumps(ports))
    it.check_kamailio_healthy(t, kam)


if __name__ == "__main__":
    sys.exit(it.main(run, "malformed_sdp"))
