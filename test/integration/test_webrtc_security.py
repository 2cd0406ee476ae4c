#!/usr/bin/env python3
"""webrtc_security: the relay's DTLS-SRTP checks, with aiortc on the
WebRTC leg and a plain RTP phone on the other (webrtc_peer.py, natlab's
namespaces, no NAT).

  (c1) WebRTC caller -> plain callee; the a=fingerprint in aiortc's
       OFFER is not its certificate's (last byte changed after
       createOffer). The relay must refuse the DTLS handshake: ice.session
       shows dtls "failed" on that leg, and no media crosses either way:
       the plain callee gets no RTP from the relay (so no 440 Hz tone),
       aiortc gets no audio.
  (c2) plain caller -> WebRTC callee; the same with the fingerprint in
       aiortc's ANSWER.
  (d)  WebRTC caller -> plain callee, a good call; 1 s into the media
       aiortc's peer sends, over its validated ICE 5-tuple, a copy of each
       of its next 20 SRTP packets with one encrypted byte flipped, ahead
       of the real one (a fresh index: only the auth tag catches it);
       then valid copies of the next 20 packets from a fresh UDP socket
       (a source no ICE check validated), ahead of the real ones; then 20
       of its first packets again, unmodified (replays). The plain callee
       must still hear a clean 440 Hz tone, with no duplicated sequence
       numbers (every injected packet repeats a real one's); ice.session's
       WebRTC leg: srtp_auth_failures >= 20 (the tampered ones),
       srtp_replays == 20 exactly (more would mean that a stray copy was
       accepted and its real packet then refused as a replay), and its
       components' "dropped" >= 60 (README: dropped counts packets "from
       an address no ICE check validated" too); ice:srtp_auth_failures
       grew >= 20.

The relay's answer toward aiortc currently lacks a=mid (which
test_webrtc_bridge checks); these cases let aiortc's peer add it
(--fix-answer-mid) so that they test the DTLS/SRTP checks, not the SDP.
Env: WEBRTC_SEC_CASES (default "c1 c2 d").
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import icetest as it  # noqa: E402
import tone  # noqa: E402
import webrtc_peer as wp  # noqa: E402

CASES = os.environ.get("WEBRTC_SEC_CASES", "c1 c2 d").split()
CALLER_TONE, CALLEE_TONE = 440.0, 1000.0
N_TAMPER = N_REPLAY = N_STRAY = 20
FIX = ["--fix-answer-mid"]


def max_field(snaps, role, key):
    best = None
    for s in snaps:
        st = wp.leg_stream(s, role) or {}
        v = st.get(key)
        if isinstance(v, int) and (best is None or v > best):
            best = v
    return best


def dtls_states(snaps, role):
    out = []
    for s in snaps:
        v = (wp.leg_stream(s, role) or {}).get(wp.SESSION_DTLS)
        if not out or out[-1] != v:
            out.append(v)
    return out


def comp_dropped(session, role):
    st = wp.leg_stream(session, role) or {}
    return sum(int(c.get("dropped", 0) or 0)
               for c in st.get("components", []) or [])


def stats_matching(stats, *words):
    return {k: v for k, v in (stats or {}).items()
            if all(w in k for w in words)}


def check_rcs(t, res, label):
    rcs = res["rcs"]
    t.check(rcs[:1] == [("INVITE", 1)] and ("200", 1) in rcs and
            all(rc == 1 for _, rc in rcs),
            "%s: ice_manage returned 1 for the INVITE and the 200: %s" %
            (label, rcs), detail="\n".join(wp.module_why(res)) or None)


def case_c(t, lab, which):
    webrtc_caller = which == "c1"
    label = "(%s) bad fingerprint in the WebRTC %s" % (
        which, "offer" if webrtc_caller else "answer")
    if webrtc_caller:
        flags = ("RTP/AVP remove", "UDP/TLS/RTP/SAVPF force")
        kinds, wrole, prole = ("webrtc", "plain"), "caller", "callee"
        cargs, eargs = FIX + ["--tamper-fingerprint", "--connect-timeout",
                              "4"], []
    else:
        flags = ("UDP/TLS/RTP/SAVPF force", "RTP/AVP remove")
        kinds, wrole, prole = ("plain", "webrtc"), "callee", "caller"
        cargs, eargs = [], ["--tamper-fingerprint", "--connect-timeout", "4"]
    kam = lab.kamailio(flags[0], flags[1], "kam-" + which)
    try:
        st0 = wp.ice_stats(kam)
        cid = "w%s-%s@webrtc" % (which, os.urandom(4).hex())
        res = wp.place_call(t, lab, kam, kinds[0], kinds[1], cid,
                            duration=4.0, caller_tone=CALLER_TONE,
                            callee_tone=CALLEE_TONE, caller_args=cargs,
                            callee_args=eargs)
        w, p = res[wrole], res[prole]
        wm, pm = w.get("media") or {}, p.get("media") or {}
        t.log("%s: WebRTC side: sip_ok=%s errors=%s connected=%s dtls=%s "
              "states=%s" % (label, w.get("sip_ok"), w.get("errors"),
                             wm.get("connected"), wm.get("dtls"),
                             wm.get("states")))
        t.log("%s: plain side: sip_ok=%s errors=%s rx=%s" % (
            label, p.get("sip_ok"), p.get("errors"),
            {k: (pm.get("rx") or {}).get(k) for k in ("packets", "freq",
                                                       "sources")}))
        check_rcs(t, res, label)
        t.check(res["caller"].get("invite_status") == 200,
                "%s: the call is set up (200 OK; the SDP is fine, only the "
                "certificate is not)" % label,
                detail=res["caller"].get("errors"))
        states = dtls_states(res["sessions"], wrole)
        t.log("%s: ice.session %s leg dtls states: %s" % (label, wrole,
                                                          states))
        t.check("failed" in states and "connected" not in states,
                "%s: the relay refuses the DTLS handshake (ice.session %s "
                "leg dtls %s)" % (label, wrole, states),
                detail=res["sessions"][-1] if res["sessions"] else None)
        prx = pm.get("rx") or {}
        t.check(prx.get("packets", -1) == 0,
                "%s: the plain %s gets no RTP from the relay (%s packets, "
                "tone %s Hz)" % (label, prole, prx.get("packets"),
                                 prx.get("freq")))
        wrx = wm.get("rx") or {}
        t.check(not wm.get("connected") and not wrx.get("frames"),
                "%s: aiortc never gets a DTLS connection nor audio "
                "(connected=%s, %s frames, tone %s Hz)" % (
                    label, wm.get("connected"), wrx.get("frames"),
                    wrx.get("freq")))
        st1 = res["stats"]
        fails = stats_matching(st1, "dtls", "fail")
        t.log("%s: ice: statistics about DTLS: %s (before: %s)" % (
            label, stats_matching(st1, "dtls"), stats_matching(st0,
                                                               "dtls")))
        t.check(fails and any(v > (st0.get(k) or 0) for k, v in
                              fails.items() if isinstance(v, int)),
                "%s: an ice:*dtls*fail* statistic counted it: %s" % (
                    label, fails or "no such statistic"),
                detail=json.dumps(st1))
        it.check_session_gone(t, kam, cid)
        it.check_kamailio_healthy(t, kam)
    finally:
        kam.stop()


def case_d(t, lab):
    label = "(d) tampered, replayed and stray SRTP"
    kam = lab.kamailio("RTP/AVP remove", "UDP/TLS/RTP/SAVPF force", "kam-d")
    try:
        st0 = wp.ice_stats(kam)
        cid = "wd-%s@webrtc" % os.urandom(4).hex()
        res = wp.place_call(t, lab, kam, "webrtc", "plain", cid,
                            duration=4.5, caller_tone=CALLER_TONE,
                            callee_tone=CALLEE_TONE,
                            caller_args=FIX + [
                                "--inject-tampered", str(N_TAMPER),
                                "--inject-replay", str(N_REPLAY),
                                "--inject-stray", str(N_STRAY)])
        w, p = res["caller"], res["callee"]
        wm, pm = w.get("media") or {}, p.get("media") or {}
        prx = pm.get("rx") or {}
        t.log("%s: aiortc: connected=%s sent %s, captured %s, injected %s "
              "tampered, %s replays, %s stray; errors %s" % (
                  label, wm.get("connected"), wm.get("tx"),
                  wm.get("captured"), wm.get("injected"),
                  wm.get("replayed"), wm.get("stray_sent"), w.get("errors")))
        check_rcs(t, res, label)
        t.check(wm.get("connected"), "%s: aiortc connected" % label,
                detail=wm.get("states"))
        t.check(wm.get("injected") == N_TAMPER and
                wm.get("replayed") == N_REPLAY and
                wm.get("stray_sent") == N_STRAY,
                "%s: the peer sent %d tampered, %d replayed, %d stray "
                "packets (%s, %s, %s)" % (label, N_TAMPER, N_REPLAY, N_STRAY,
                                          wm.get("injected"),
                                          wm.get("replayed"),
                                          wm.get("stray_sent")),
                detail=wm.get("error"))
        t.check(tone.freq_ok(prx.get("freq"), CALLER_TONE) and
                (prx.get("purity") or 0) >= 0.8,
                "%s: the plain callee still hears a clean %d Hz tone (%s Hz, "
                "purity %s)" % (label, CALLER_TONE, prx.get("freq"),
                                prx.get("purity")))
        sent = (wm.get("tx") or {}).get("packets") or 0
        # every injected packet repeats the sequence number of a real one:
        # one that got through shows up as a duplicate (aiortc's sent count
        # is read before the BYE, so the receiver may count a few more)
        t.check(prx.get("dups", -1) == 0 and
                0 < prx.get("packets", 0) <= sent + 10,
                "%s: nothing injected got through: no duplicated sequence "
                "numbers (%s), %s packets received, %s sent" % (
                    label, prx.get("dups"), prx.get("packets"), sent))
        snaps = res["sessions"]
        auth = max_field(snaps, "caller", wp.SESSION_AUTH_FAIL)
        repl = max_field(snaps, "caller", wp.SESSION_REPLAYS)
        dropped = max(comp_dropped(s, "caller") for s in snaps) \
            if snaps else None
        t.log("%s: ice.session caller leg: srtp_auth_failures %s, "
              "srtp_replays %s, dropped %s" % (label, auth, repl, dropped))
        t.check(auth is not None and auth >= N_TAMPER,
                "%s: srtp_auth_failures counts the %d tampered packets (%s)"
                % (label, N_TAMPER, auth),
                detail=snaps[-1] if snaps else None)
        t.check(repl == N_REPLAY,
                "%s: srtp_replays counts the %d replays, and no real packet "
                "was taken for a replay of an accepted stray copy (%s)" % (
                    label, N_REPLAY, repl))
        st1 = res["stats"]
        gdrop = (st1.get("packets_dropped") or 0) - \
            (st0.get("packets_dropped") or 0)
        t.check(dropped is not None and
                dropped >= N_TAMPER + N_REPLAY + N_STRAY,
                "%s: the WebRTC leg's \"dropped\" counts all %d refused "
                "packets (%d tampered + %d replays + %d stray): %s "
                "(ice:packets_dropped grew by %d)" % (
                    label, N_TAMPER + N_REPLAY + N_STRAY, N_TAMPER, N_REPLAY,
                    N_STRAY, dropped, gdrop))
        sa = stats_matching(st1, "srtp", "auth")
        t.log("%s: ice: statistics about SRTP: %s (before: %s)" % (
            label, stats_matching(st1, "srtp"), stats_matching(st0, "srtp")))
        t.check(sa and any(isinstance(v, int) and v - (st0.get(k) or 0) >=
                           N_TAMPER for k, v in sa.items()),
                "%s: an ice:*srtp*auth* statistic grew by >= %d: %s" % (
                    label, N_TAMPER, sa or "no such statistic"),
                detail=json.dumps(st1))
        it.check_session_gone(t, kam, cid)
        it.check_kamailio_healthy(t, kam)
    finally:
        kam.stop()


def run(t):
    if not t.needs_module("WebRTC DTLS-SRTP checks (needs the relay)"):
        return
    lab = wp.BridgeLab(t)
    for c in CASES:
        if c in ("c1", "c2"):
            case_c(t, lab, c)
        elif c == "d":
            case_d(t, lab)
        else:
            raise it.TestError("unknown case %r (WEBRTC_SEC_CASES)" % c)


if __name__ == "__main__":
    sys.exit(it.main(run, "webrtc_security"))
