#!/usr/bin/env python3
"""ice_security: the relay's ICE agent (ice_manage("force")) against bad
or odd peers. Caller and callee on the public segment (natlab, NAT type
none), an attacker at 198.51.100.66 that knows what an eavesdropper of the
SDP would know. Four calls:

1. probes + ICE restart. While a normal call is up, the attacker, from
   fresh sockets, sends to the relay's caller-facing port:
     A  a check with the right USERNAME but signed with a wrong password
     B  a check with the right USERNAME and password but no FINGERPRINT
     C  no check at all
   and after each, 50 RTP packets (SSRC 0xbad0000A/B/C) from the same
   socket; D sprays RTP (0xbad0000D) at the callee-facing port; E, a
   control, sends a correct check from its own socket at the same time (it
   must get a success response: the probe itself works). Expected: no success response to A or B, the
   caller leg's ice_auth_failures and ice.stats stun_auth_failures grow,
   no sprayed packet reaches the caller or the callee, none comes back.
   Then the caller re-INVITEs with new ICE credentials (a new aioice
   agent): the relay's answer carries new credentials, the new agent
   connects, and media flows both ways on it.
2. wrong password both ways (aioice with a tampered remote password and
   an SDP password it does not use), sending media anyway: the caller's
   ICE fails, auth failures are counted, no media is relayed either way;
   the callee's side still completes.
3. role conflict: the callee's agent is controlling too (the relay
   controls toward the offer's recipient): the conflict is repaired (487 /
   tie-breaker) and media flows.
4. role conflict the other way: the caller's agent is controlled, like the
   relay toward the offerer.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import icetest as it  # noqa: E402
import natlab as nl  # noqa: E402

MIN_PKTS = 25
SPRAY = 50
SSRC = {"A": 0xBAD0000A, "B": 0xBAD0000B, "C": 0xBAD0000C, "D": 0xBAD0000D}
BAD_SSRCS = {"%08x" % v for v in SSRC.values()}


def leg_stream(sess, role):
    for leg in (sess or {}).get("legs", []) or []:
        if leg.get("role") == role:
            for st in leg.get("streams", []) or []:
                return st
    return {}


def comp1(st):
    for c in st.get("components", []) or []:
        if c.get("component") == 1:
            return c
    return {}


def relay_candidate(sdp_text):
    for c in nl.parse_sdp(sdp_text)["candidates"]:
        f = c.split()
        if len(f) >= 8 and f[1] == "1" and f[4] == nl.KAM_IP:
            return "%s:%s" % (f[4], f[5])
    return None


def bad_rx(peer):
    return {k: v for k, v in (peer.get("received_by_ssrc") or {}).items()
            if k in BAD_SSRCS}


def probes(t, lab, kam, state, call_id):
    """Runs once, when the caller's state file says ICE connected."""
    if state.get("probed") or not os.path.exists(state["file"]):
        return
    try:
        with open(state["file"]) as f:
            st = json.load(f)
    except (OSError, ValueError):
        return
    if st.get("state") != "connected":
        return
    state["probed"] = True
    relay_sdp = st["sdp_received"][0]
    rs = nl.parse_sdp(relay_sdp)
    target = relay_candidate(relay_sdp)
    caller_ufrag = st["legs"][0]["local_ufrag"]
    before = t.ice_session(kam, call_id)
    stats0 = kam.rpc("ice.stats")
    callee_port = leg_stream(before, "callee").get("relay_port")
    state["before"], state["stats0"] = before, stats0
    t.log("probing the relay's caller-facing %s (ufrag %s) and "
          "callee-facing port %s from %s" % (target, rs["ufrag"],
                                             callee_port, nl.ATTACKER_IP))
    user = "%s:%s" % (rs["ufrag"], caller_ufrag)
    base = ["stunprobe", "--local-ip", nl.ATTACKER_IP, "--target", target]
    spray = ["--rtp", str(SPRAY), "--pps", "100"]
    runs = [
        base + ["--username", user, "--pwd", "wrong" + rs["pwd"][5:] + "x",
                "--count", "1"] + spray + ["--ssrc", hex(SSRC["A"])],
        base + ["--username", user, "--pwd", rs["pwd"], "--no-fingerprint",
                "--count", "1"] + spray + ["--ssrc", hex(SSRC["B"])],
        base + ["--count", "0"] + spray + ["--ssrc", hex(SSRC["C"])],
        ["stunprobe", "--local-ip", nl.ATTACKER_IP, "--target",
         "%s:%s" % (nl.KAM_IP, callee_port), "--count", "0"] + spray +
        ["--ssrc", hex(SSRC["D"])],
    ]
    # E, the control, from its own socket, at the same time (the caller's
    # ICE restart must not come before it)
    runs.append(base + ["--username", user, "--pwd", rs["pwd"],
                        "--count", "1"])
    out = nl.run_tools(t, lab.attacker.ns, runs)
    state["probes"], state["control"] = out[:4], out[4]
    time.sleep(0.3)
    state["after"] = t.ice_session(kam, call_id)
    state["stats1"] = kam.rpc("ice.stats")


def call_probes_restart(t, lab, kam):
    call_id = "icet-sec-probe@test"
    sfile = os.path.join(t.dir, "peers", "probe-caller-state.json")
    os.makedirs(os.path.dirname(sfile), exist_ok=True)
    caller = lab.endpoints[("caller", "none")]
    callee = lab.endpoints[("callee", "none")]
    holder = {}

    def during(state):
        state.setdefault("file", sfile)
        holder["state"] = state
        probes(t, lab, kam, state, call_id)

    res = lab.call(kam, caller, callee, call_id, duration=3.0,
                   caller_args=["--state-file", sfile, "--restart-after",
                                "3.5"], during=during, timeout=30)
    st = holder.get("state", {})
    a, b = res["caller"], res["callee"]
    t.require(st.get("probed"), "the attacker probed while the call was up "
              "(caller reached ICE connected: %s)" % a.get("ice_connected"),
              detail=json.dumps({k: a.get(k) for k in ("errors",
                                                       "ice_error")}))
    pr = st.get("probes") or [None] * 4
    names = ("A wrong password", "B no FINGERPRINT")
    for name, r in zip(names, pr[:2]):
        cls = [x.get("class") for x in (r or {}).get("responses", [])]
        t.check(r is not None and "success" not in cls,
                "probe %s: no success response (got %s)" % (
                    name, (r or {}).get("responses")))
    ctl = st.get("control") or {}
    t.check([x.get("class") for x in ctl.get("responses", [])] ==
            ["success"], "probe E control (right password, FINGERPRINT): "
            "success response, so the probe is sound (%s)" %
            ctl.get("responses"))
    s0 = leg_stream(st.get("before"), "caller")
    s1 = leg_stream(st.get("after"), "caller")
    t.check((s1.get("ice_auth_failures") or 0) >
            (s0.get("ice_auth_failures") or 0),
            "caller leg ice_auth_failures grew (%s -> %s)" % (
                s0.get("ice_auth_failures"), s1.get("ice_auth_failures")))
    f0 = (st.get("stats0") or {}).get("stun_auth_failures") or 0
    f1 = (st.get("stats1") or {}).get("stun_auth_failures") or 0
    t.check(f1 > f0, "ice.stats stun_auth_failures grew (%s -> %s)" %
            (f0, f1))
    t.log("stun_requests %s -> %s; caller leg dropped %s -> %s, callee leg "
          "dropped %s -> %s" % (
              (st.get("stats0") or {}).get("stun_requests"),
              (st.get("stats1") or {}).get("stun_requests"),
              comp1(s0).get("dropped"), comp1(s1).get("dropped"),
              comp1(leg_stream(st.get("before"), "callee")).get("dropped"),
              comp1(leg_stream(st.get("after"), "callee")).get("dropped")))
    t.check(all(r is not None and r.get("rtp_sent") == SPRAY for r in pr),
            "the attacker sprayed %d RTP packets from each of 4 sockets" %
            SPRAY)
    t.check(not bad_rx(b), "no sprayed packet reached the callee (%s)" %
            bad_rx(b))
    t.check(not bad_rx(a), "no sprayed packet reached the caller (%s)" %
            bad_rx(a))
    t.check(all(r is None or r.get("rtp_received", 0) == 0 for r in pr),
            "nothing was sent back to the attacker's sockets")
    # the call itself and the ICE restart
    t.check(a.get("ice_connected") and b.get("ice_connected"),
            "both peers' ICE connected before the restart")
    t.check(a.get("restart_remote_credentials_changed"),
            "re-INVITE with new ICE credentials: the relay's answer carries "
            "new ufrag and pwd", detail="\n---\n".join(
                a.get("sdp_received") or []))
    t.check(a.get("restart_connected"), "the caller's new agent connected "
            "after the restart (%s)" % (a.get("legs") or [{}])[-1].get(
                "error"))
    ssrcs = list((a.get("sent_by_ssrc") or {}).keys())
    new = ssrcs[-1] if len(ssrcs) > 1 else None
    got_new = (b.get("received_by_ssrc") or {}).get(new, 0) if new else 0
    t.check(new and got_new >= MIN_PKTS,
            "after the restart the callee gets the caller's new stream "
            "(%s: %d packets)" % (new, got_new))
    gen1 = (a.get("received_by_generation") or {}).get("1", 0)
    t.check(gen1 >= MIN_PKTS, "after the restart the caller gets the "
            "callee's media on its new connection (%d packets)" % gen1)
    sess = nl.last_session(res)
    sel = comp1(leg_stream(sess, "caller")).get("ice_selected")
    new_local = ((a.get("legs") or [{}])[-1].get("selected") or {}).get(
        "local")
    t.check(sel and sel == new_local, "the relay's selected pair toward the "
            "caller moved to the new agent's address (%s, caller %s)" %
            (sel, new_local), detail=nl.session_brief(sess))
    bs = b.get("sdp_received") or []
    if len(bs) > 1:
        same = nl.parse_sdp(bs[0])["ufrag"] == nl.parse_sdp(bs[1])["ufrag"]
        t.log("re-INVITE toward the callee: relay credentials %s; the "
              "callee kept its agent: %s" % (
                  "unchanged" if same else "changed",
                  len(b.get("legs") or []) == 1))
    t.check(res["rc_caller"] == 0 and res["rc_callee"] == 0,
            "both peers finished the call (rc %s/%s, errors %s / %s)" % (
                res["rc_caller"], res["rc_callee"], a.get("errors"),
                b.get("errors")))
    return res


def call_wrong_password(t, lab, kam):
    call_id = "icet-sec-badpwd@test"
    stats0 = kam.rpc("ice.stats")
    res = lab.call(kam, lab.endpoints[("caller", "none")],
                   lab.endpoints[("callee", "none")], call_id, duration=2.5,
                   caller_args=["--tamper-pwd", "--send-anyway",
                                "--ice-timeout", "4"], timeout=25)
    stats1 = kam.rpc("ice.stats")
    a, b = res["caller"], res["callee"]
    sess = nl.last_session(res)
    t.log("wrong password: %s" % nl.session_brief(sess))
    t.check(a.get("sip_ok"), "wrong password: the call was set up")
    t.check(not a.get("ice_connected"), "wrong password: the caller's ICE "
            "does not connect (%s)" % a.get("ice_error"))
    t.check(a.get("sent", 0) >= MIN_PKTS, "wrong password: the caller sent "
            "media anyway (%d packets)" % a.get("sent", 0))
    t.check(b.get("received", 0) == 0, "wrong password: no caller media "
            "relayed to the callee (%d packets)" % b.get("received", 0))
    t.check(a.get("received", 0) == 0, "wrong password: no callee media "
            "relayed to the caller (%d packets)" % a.get("received", 0))
    st = leg_stream(sess, "caller")
    t.check((st.get("ice_auth_failures") or 0) > 0,
            "wrong password: caller leg ice_auth_failures > 0 (%s)" %
            st.get("ice_auth_failures"))
    t.check(st.get("ice") != "completed", "wrong password: the relay's "
            "agent toward the caller did not complete (%s)" % st.get("ice"))
    t.check((stats1.get("stun_auth_failures") or 0) >
            (stats0.get("stun_auth_failures") or 0),
            "wrong password: ice.stats stun_auth_failures grew (%s -> %s)" %
            (stats0.get("stun_auth_failures"),
             stats1.get("stun_auth_failures")))
    t.check(b.get("ice_connected"), "wrong password: the callee's side "
            "still completes (%s)" % b.get("ice_error"))
    return res


def call_role_conflict(t, lab, kam, which):
    call_id = "icet-sec-role-%s@test" % which
    args = {"caller_args": [], "callee_args": []}
    if which == "callee":
        args["callee_args"] = ["--controlling"]
    else:
        args["caller_args"] = ["--controlled"]
    res = lab.call(kam, lab.endpoints[("caller", "none")],
                   lab.endpoints[("callee", "none")], call_id, duration=2.5,
                   timeout=25, **args)
    a, b = res["caller"], res["callee"]
    sess = nl.last_session(res)
    label = "role conflict (%s %s)" % (
        which, "controlling like the relay" if which == "callee" else
        "controlled like the relay")
    t.log("%s: %s" % (label, nl.session_brief(sess)))
    peer = b if which == "callee" else a
    lg = (peer.get("legs") or [{}])[0]
    t.log("%s: the %s's agent started %s, ended %s" % (
        label, which, "controlling" if lg.get("controlling_initial") else
        "controlled", "controlling" if lg.get("controlling_final") else
        "controlled"))
    t.check(a.get("ice_connected") and b.get("ice_connected"),
            "%s: both peers' ICE connected (caller %s, callee %s)" % (
                label, a.get("ice_error") or "ok", b.get("ice_error") or
                "ok"))
    for tx, rx, d in ((a, b, "caller->callee"), (b, a, "callee->caller")):
        t.check(rx.get("received", 0) >= max(MIN_PKTS, tx.get("sent", 0) // 3),
                "%s: media %s (%d/%d)" % (label, d, rx.get("received", 0),
                                          tx.get("sent", 0)))
    return res


def run(t):
    if not t.needs_module("ICE security checks"):
        return
    lab = nl.NatLab(t, callers=("none",), callees=("none",), attacker=True)
    lab.start_stun()
    kam = lab.kamailio("force", "kam-force")
    call_probes_restart(t, lab, kam)
    call_wrong_password(t, lab, kam)
    call_role_conflict(t, lab, kam, "callee")
    call_role_conflict(t, lab, kam, "caller")
    it.check_kamailio_healthy(t, kam)


if __name__ == "__main__":
    sys.exit(it.main(run, "ice_security"))
