#!/usr/bin/env python3
"""webrtc_sdes: SDES-SRTP (RTP/SAVP with a=crypto, RFC 4568) legs through
the relay, with webrtc_peer.py's peers sending and checking tones
(caller 440 Hz, callee 1000 Hz):

  (e1) WebRTC caller -> SDES callee
         INVITE: ice_manage("RTP/SAVP sdes remove")
         200:    ice_manage("UDP/TLS/RTP/SAVPF force")
  (e2) SDES caller -> plain RTP callee
         INVITE: ice_manage("RTP/AVP remove")
         200:    ice_manage("RTP/SAVP sdes remove")
  (e3) plain RTP caller -> SDES callee
         INVITE: ice_manage("RTP/SAVP sdes remove")
         200:    ice_manage("RTP/AVP remove")

The SDES peer offers AES_CM_128_HMAC_SHA1_80 and _32 (libsrtp through
python3-pylibsrtp) and answers with the first of those it is offered.
Checked: ice_manage returns 1 twice; the SDES peer's SDP is RTP/SAVP at
the relay with an a=crypto whose key is the relay's own (not the peer's),
and no DTLS/ICE attributes; the plain peer's SDP is RTP/AVP without
a=crypto; the WebRTC peer's as in test_webrtc_bridge; tones both ways; no
SRTP unprotect failures at the SDES peer; ice.session: the SDES leg has
crypto sdes-srtp, an srtp_profile, no auth failures.
Env: WEBRTC_SDES_CASES (default "e1 e2 e3").
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import icetest as it  # noqa: E402
import test_webrtc_bridge as wb  # noqa: E402
import webrtc_peer as wp  # noqa: E402

CASES = os.environ.get("WEBRTC_SDES_CASES", "e1 e2 e3").split()
PLAN = {
    # case: (caller kind, callee kind, INVITE flags, 200 flags)
    "e1": ("webrtc", "sdes", "RTP/SAVP sdes remove",
           "UDP/TLS/RTP/SAVPF force"),
    "e2": ("sdes", "plain", "RTP/AVP remove", "RTP/SAVP sdes remove"),
    "e3": ("plain", "sdes", "RTP/SAVP sdes remove", "RTP/AVP remove"),
}
TONE = {"caller": wb.CALLER_TONE, "callee": wb.CALLEE_TONE}


def crypto_keys(text):
    m = wp.sdp_audio(text or "")
    return [v.split()[2] for v in (wp.attr_values(m, "crypto") if m else [])
            if len(v.split()) >= 3]


def check_sdes_sdp(t, who, text, relay_ip, own_sdp):
    m = wb.check_plain_sdp(t, who, text, relay_ip, proto="RTP/SAVP")
    if not m:
        return
    keys = crypto_keys(text)
    mine = crypto_keys(own_sdp)
    t.check(keys and not set(keys) & set(mine),
            "%s: a=crypto with the relay's own key (%d line(s), none of "
            "them the peer's own)" % (who, len(keys)), detail=text)


def run_case(t, lab, case):
    ck, ek, oflags, aflags = PLAN[case]
    label = "(%s) %s -> %s" % (case, ck, ek)
    kam = lab.kamailio(oflags, aflags, "kam-" + case)
    try:
        cid = "w%s-%s@webrtc" % (case, os.urandom(4).hex())
        res = wp.place_call(t, lab, kam, ck, ek, cid, duration=wb.DURATION,
                            caller_tone=TONE["caller"],
                            callee_tone=TONE["callee"],
                            caller_args=wb.WEBRTC_ARGS if ck == "webrtc"
                            else [])
        wb.report_peer(t, label, res)
        wb.check_rcs(t, res, label)
        t.check(res["caller"].get("invite_status") == 200,
                "%s: 200 OK to the caller (%s)" % (
                    label, res["caller"].get("invite_status")),
                detail=[res["caller"].get("errors"),
                        res["callee"].get("errors")])
        for role, kind in (("caller", ck), ("callee", ek)):
            r = res[role]
            got = (r.get("sdp_received") or [None])[0]
            own = (r.get("sdp_sent") or [""])[0]
            who = "%s: %s at the %s %s" % (
                label, "offer" if role == "callee" else "answer", kind,
                role)
            if got is None:
                t.check(False, "%s: got no SDP" % who)
                continue
            if kind == "sdes":
                check_sdes_sdp(t, who, got, lab.kam_ip, own)
            elif kind == "plain":
                wb.check_plain_sdp(t, who, got, lab.kam_ip)
            else:
                offer_mid = None
                if role == "caller":
                    mo = wp.sdp_audio(own)
                    offer_mid = (wp.attr_values(mo, "mid") or [None])[0] \
                        if mo else None
                wb.check_webrtc_sdp(t, who, got, lab.kam_ip,
                                    offer=(role == "callee"),
                                    offer_mid=offer_mid)
            t.check(not r.get("offer_rejected") and
                    not r.get("answer_rejected"),
                    "%s: the %s %s accepts it" % (label, kind, role),
                    detail=r.get("offer_rejected") or
                    r.get("answer_rejected"))
        for role, kind in (("caller", ck), ("callee", ek)):
            m = res[role].get("media") or {}
            other = "callee" if role == "caller" else "caller"
            if kind == "webrtc":
                t.check(m.get("connected"), "%s: aiortc connected" % label,
                        detail=m.get("states"))
            wb.check_tone(t, "%s: the %s %s" % (label, kind, role),
                          m.get("rx"), TONE[other])
            rx = m.get("rx") or {}
            if kind == "sdes":
                t.check(rx.get("srtp_unprotect_failures", 0) == 0 and
                        rx.get("srtcp_unprotect_failures", 0) == 0,
                        "%s: the SDES %s decrypts everything (SRTP failures "
                        "%s, SRTCP failures %s, suite %s)" % (
                            label, role, rx.get("srtp_unprotect_failures"),
                            rx.get("srtcp_unprotect_failures"),
                            m.get("sdes_suite")))
            if kind in ("sdes", "plain"):
                wb.check_plain_rx(t, label, "the %s %s" % (kind, role), rx,
                                  lab.kam_ip)
        snaps = res["sessions"]
        if t.check(snaps, "%s: ice.session answered during the call" %
                   label):
            for role, kind in (("caller", ck), ("callee", ek)):
                want = {"sdes": "sdes-srtp", "plain": "none",
                        "webrtc": "dtls-srtp"}[kind]
                s = wp.best_snapshot(snaps, role, lambda st: st.get(
                    wp.SESSION_CRYPTO) == want)
                st = wp.leg_stream(s, role) or {}
                t.check(st.get(wp.SESSION_CRYPTO) == want,
                        "%s: ice.session %s leg crypto %s (%s)" % (
                            label, role, want, st.get(wp.SESSION_CRYPTO)),
                        detail=s)
                if kind != "plain":
                    t.check(st.get(wp.SESSION_PROFILE) not in (None, "",
                                                               "none") and
                            st.get(wp.SESSION_AUTH_FAIL) == 0,
                            "%s: ice.session %s leg srtp_profile %r, "
                            "srtp_auth_failures %s" % (
                                label, role, st.get(wp.SESSION_PROFILE),
                                st.get(wp.SESSION_AUTH_FAIL)))
        it.check_session_gone(t, kam, cid)
        it.check_kamailio_healthy(t, kam)
    finally:
        kam.stop()


def run(t):
    if not t.needs_module("SDES-SRTP bridging (needs the relay)"):
        return
    try:
        import pylibsrtp  # noqa: F401
    except ImportError:
        t.skipped.append("sdes")
        t.log("SKIP  python3-pylibsrtp is not installed (it comes with "
              "python3-aiortc)")
        return
    lab = wp.BridgeLab(t)
    for c in CASES:
        if c not in PLAN:
            raise it.TestError("unknown case %r (WEBRTC_SDES_CASES)" % c)
        run_case(t, lab, c)


if __name__ == "__main__":
    sys.exit(it.main(run, "webrtc_sdes"))
