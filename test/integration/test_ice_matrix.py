#!/usr/bin/env python3
"""ice_matrix: ICE modes x NAT types. For each mode (force, relay, remove)
and each cell caller NAT x callee NAT in {none, cone, symmetric}^2, one call
caller -> callee through kamailio with ice_manage("<mode>"), ~3 s of media.

Peers (ice_peer.py, see natlab.py for the topology and the NAT rules):
  force, relay: aioice agents (caller controlling), srflx candidates from
                coturn, numbered RTP at 50 pps over the ICE connection
  remove:       plain RTP peers (no ICE in their SDP: with remove the
                relay's SDP has none anyway), symmetric, sending to the SDP
                address

One line per cell, and a table at the end: media caller->callee and
callee->caller ok (the receiver got >= a third of what the other side
sent, and at least 25 packets: see media_ok), and the path: "relay" when the relay's
ice.session counters show it carried the media, "p2p" when it carried
(almost) none; the peers' selected pairs are shown too.

Expectations (asserted):
  force:  relay path, two-way media, ICE completed on both relay legs,
          the SDP each peer got carries the relay's own credentials and
          one typ host candidate per component at the relay, and
          a=end-of-candidates
  relay:  two-way media everywhere; p2p when both sides are none/cone,
          through the relay when both are symmetric; with one symmetric
          side either is fine (ICE may find the peer-to-peer path through
          a peer-reflexive candidate, since the other side's NAT filters
          nothing); both SDPs keep the endpoint's candidates and add the
          relay's typ relay candidate. If the module refuses the mode
          (ice_manage -1, "not available" in the log) the cells are "n/a"
          and do not fail unless ICE_REQUIRE_RELAY=1.
  remove: no ICE attribute in either SDP, relay path, two-way media
          (latching) in every cell.
  lite:   ice_manage("force lite") in three cells (none/none,
          cone/symmetric, symmetric/symmetric): as force, and both SDPs
          declare a=ice-lite (the aioice callee then takes the controlling
          role, RFC 8445 section 6.1.1).
Env: ICE_MATRIX_MODES (default "force relay remove lite"), ICE_MATRIX_CELLS
(e.g. "none:cone symmetric:symmetric"), ICE_MATRIX_DURATION (default 3),
ICE_MATRIX_RELAY_FLAGS (default "relay"), ICE_REQUIRE_RELAY=1.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import icetest as it  # noqa: E402
import natlab as nl  # noqa: E402

MODES = os.environ.get("ICE_MATRIX_MODES", "force relay remove lite").split()
# mode -> ice_manage flags (default: the mode's name). ICE_MATRIX_RELAY_FLAGS
# exists to exercise the n/a path, e.g. "relay DTLS=passive", which a build
# without DTLS refuses with "... not available ..."
FLAGS = {"lite": "force lite",
         "relay": os.environ.get("ICE_MATRIX_RELAY_FLAGS", "relay")}
LITE_CELLS = [("none", "none"), ("cone", "symmetric"),
              ("symmetric", "symmetric")]
DURATION = float(os.environ.get("ICE_MATRIX_DURATION", "3"))
REQUIRE_RELAY = os.environ.get("ICE_REQUIRE_RELAY") == "1"
MIN_PKTS = 25
P2P_MAX = 20  # the relay may see a few STUN or early packets on a p2p call


def cells():
    env = os.environ.get("ICE_MATRIX_CELLS")
    if env:
        return [tuple(c.split(":")) for c in env.split()]
    return [(a, b) for a in nl.NAT_TYPES for b in nl.NAT_TYPES]


def media_ok(tx, rx):
    """The receiver got at least a third of what the sender sent (and 25
    packets), and media was still arriving in the sender's last second:
    ICE setup may eat the first second or so (force mode nominates up to
    1 s after its first valid pair), a dead path would not recover."""
    sent = tx.get("sent", 0)
    got = rx.get("received", 0)
    last_rx, last_tx = rx.get("last_rx_wall"), tx.get("last_tx_wall")
    alive = last_rx is not None and last_tx is not None and \
        last_rx >= last_tx - 1.0
    return (got >= max(MIN_PKTS, sent // 3) and alive,
            "%d/%d" % (got, sent))


def peer_path(res):
    """From the peers' selected pairs: relay if both talk to the relay."""
    sel = [res[k].get("selected") or {} for k in ("caller", "callee")]
    ips = [nl.ip_of(s.get("remote")) for s in sel]
    if not all(ips):
        return "?"
    at_relay = [ip == nl.KAM_IP for ip in ips]
    if all(at_relay):
        return "relay"
    if not any(at_relay):
        return "p2p"
    return "mixed"


def relay_refused(kam, res, call_id):
    rcs = res["rcs"]
    if not any(rc == -1 for _, rc in rcs):
        return False
    return bool(kam.lines_for(call_id, r"not available") or
                [ln for ln in kam.log_text().splitlines()
                 if "not available" in ln and call_id in ln])


def sdp_has_relay_creds(t, who, sdp_text, peer_ufrag, mode):
    """force: relay credentials, one host candidate per component at the
    relay, end-of-candidates. relay: the endpoint's own credentials and
    candidates kept, plus typ relay candidates at the relay."""
    s = nl.parse_sdp(sdp_text)
    cands = [c.split() for c in s["candidates"]]
    if mode == "force":
        ok = (s["ufrag"] and s["pwd"] and s["ufrag"] != peer_ufrag and
              s["eoc"] and cands and
              all(c[4] == nl.KAM_IP and c[7] == "host" for c in cands) and
              sorted(int(c[1]) for c in cands) in ([1], [1, 2]))
        return t.check(ok, "%s's SDP carries the relay's own ICE "
                       "(ufrag %s != %s, only typ host candidates at %s, "
                       "end-of-candidates)" % (who, s["ufrag"], peer_ufrag,
                                                nl.KAM_IP),
                       detail=sdp_text)
    ok = (s["ufrag"] == peer_ufrag and
          any(c[4] == nl.KAM_IP and c[7] == "relay" for c in cands) and
          any(c[7] != "relay" for c in cands))
    return t.check(ok, "%s's SDP keeps the endpoint's credentials and "
                   "candidates (ufrag %s) and adds typ relay candidates at %s"
                   % (who, peer_ufrag, nl.KAM_IP), detail=sdp_text)


def run_cell(t, lab, kam, mode, cn, ce, relay_na):
    call_id = "icet-%s-%s%s@test" % (mode, nl.SHORT[cn], nl.SHORT[ce])
    row = {"mode": mode, "caller": cn, "callee": ce, "a2b": "-",
           "b2a": "-", "path": "-", "peers": "-", "relay_pkts": "-",
           "status": "?", "notes": []}
    if mode == "relay" and relay_na[0]:
        row["status"] = "n/a"
        row["notes"].append("mode refused by the module (first relay call)")
        return row
    caller = lab.endpoints[("caller", cn)]
    callee = lab.endpoints[("callee", ce)]
    res = lab.call(kam, caller, callee, call_id, plain=(mode == "remove"),
                   duration=DURATION, timeout=25)
    if mode == "relay" and relay_refused(kam, res, call_id):
        relay_na[0] = True
        row["status"] = "n/a"
        row["notes"].append("ice_manage(\"%s\") refused: %s" % (
            kam.flags, "; ".join(
                ln.split("ice_manage:", 1)[-1].strip()
                for ln in kam.log_lines(r"ice_manage: .*not available")[:1])))
        return row
    a, b = res["caller"], res["callee"]
    ok_ab, row["a2b"] = media_ok(a, b)
    ok_ba, row["b2a"] = media_ok(b, a)
    sess = nl.last_session(res)
    pin, pout = nl.relay_media_counts(sess)
    row["relay_pkts"] = "%d/%d" % (pin, pout)
    row["path"] = "relay" if pout > P2P_MAX else "p2p"
    if not sess:
        row["path"] = "?"
        row["notes"].append("no ice.session snapshot")
    if mode != "remove":
        row["peers"] = peer_path(res)
        row["sel"] = "%s | %s" % ((a.get("selected") or {}).get("remote"),
                                  (b.get("selected") or {}).get("remote"))
    else:
        row["peers"] = "plain"
    row["ok_ab"], row["ok_ba"] = ok_ab, ok_ba
    row["res"] = res
    row["session"] = sess
    return row


def judge(t, row):
    """Assert the cell's expectations; sets row["status"]."""
    mode, cn, ce = row["mode"], row["caller"], row["callee"]
    label = "%s %s->%s" % (mode, cn, ce)
    if row["status"] == "n/a":
        if REQUIRE_RELAY:
            t.check(False, "%s: relay mode must be available "
                    "(ICE_REQUIRE_RELAY=1)" % label)
            row["status"] = "FAIL"
        return
    res = row["res"]
    a, b = res["caller"], res["callee"]
    nfail = len(t.failures)
    t.check(a.get("sip_ok") and b.get("sip_ok"), "%s: call set up (caller "
            "errors %s, callee errors %s)" % (label, a.get("errors"),
                                             b.get("errors")))
    t.check(row["ok_ab"], "%s: media caller->callee (%s received/sent)" %
            (label, row["a2b"]))
    t.check(row["ok_ba"], "%s: media callee->caller (%s received/sent)" %
            (label, row["b2a"]))
    sess = row["session"]
    if mode in ("force", "lite"):
        t.check(a.get("ice_connected") and b.get("ice_connected"),
                "%s: both peers' ICE connected (caller %s, callee %s)" %
                (label, a.get("ice_error") or "ok",
                 b.get("ice_error") or "ok"))
        t.check(row["path"] == "relay" and row["peers"] == "relay",
                "%s: media through the relay (counters %s, peers select %s)"
                % (label, row["relay_pkts"], row.get("sel")))
        sts = nl.streams(sess)
        t.check(len(sts) >= 2 and all(st.get("ice") == "completed"
                                      for st in sts),
                "%s: ice.session shows ICE completed on both legs" % label,
                detail=nl.session_brief(sess))
        # the relay selected each peer's public address (its NAT mapping)
        for role, ep in (("caller", cn), ("callee", ce)):
            pub = nl.PLAN[role][ep][0]
            sel = [c.get("ice_selected") for _, st, c in
                   it.session_components(sess)
                   if _.get("role") == role and c.get("component") == 1]
            t.check(sel and nl.ip_of(sel[0]) == pub,
                    "%s: the relay's selected pair toward the %s is at its "
                    "public address %s (%s)" % (label, role, pub, sel))
        if a.get("sdp_received") and b.get("sdp_received"):
            au = (a.get("legs") or [{}])[0].get("local_ufrag")
            bu = (b.get("legs") or [{}])[0].get("local_ufrag")
            sdp_has_relay_creds(t, "%s: caller" % label,
                                a["sdp_received"][0], bu, "force")
            sdp_has_relay_creds(t, "%s: callee" % label,
                                b["sdp_received"][0], au, "force")
            if mode == "lite":
                t.check(all(nl.parse_sdp(p["sdp_received"][0])["lite"]
                            for p in (a, b)),
                        "%s: both SDPs declare a=ice-lite" % label)
    elif mode == "relay":
        t.check(a.get("ice_connected") and b.get("ice_connected"),
                "%s: both peers' ICE connected (caller %s, callee %s)" %
                (label, a.get("ice_error") or "ok",
                 b.get("ice_error") or "ok"))
        if cn != "symmetric" and ce != "symmetric":
            t.check(row["path"] == "p2p" and row["peers"] == "p2p",
                    "%s: peer-to-peer wins (relay counters %s, peers select "
                    "%s)" % (label, row["relay_pkts"], row.get("sel")))
        elif cn == ce == "symmetric":
            t.check(row["path"] == "relay" and row["peers"] == "relay",
                    "%s: media through the relay (counters %s, peers select "
                    "%s)" % (label, row["relay_pkts"], row.get("sel")))
        else:
            t.check(row["path"] == row["peers"],
                    "%s: relay counters and peers agree on the path (%s / "
                    "%s)" % (label, row["path"], row["peers"]))
        if a.get("sdp_received") and b.get("sdp_received"):
            au = (a.get("legs") or [{}])[0].get("local_ufrag")
            bu = (b.get("legs") or [{}])[0].get("local_ufrag")
            sdp_has_relay_creds(t, "%s: caller" % label,
                                a["sdp_received"][0], bu, "relay")
            sdp_has_relay_creds(t, "%s: callee" % label,
                                b["sdp_received"][0], au, "relay")
    else:
        t.check(row["path"] == "relay", "%s: media through the relay "
                "(counters %s)" % (label, row["relay_pkts"]))
        for who, p in (("caller", a), ("callee", b)):
            txt = "".join(p.get("sdp_received") or [])
            t.check(txt and "a=ice-" not in txt and "a=candidate" not in txt
                    and nl.KAM_IP in txt,
                    "%s: the %s's SDP has no ICE and points at the relay" %
                    (label, who), detail=txt)
    t.check(res["rcs"][:2] == [("INVITE", 1), ("200", 1)],
            "%s: ice_manage returned 1 for the INVITE and the 200 (%s)" %
            (label, res["rcs"]))
    row["status"] = "ok" if len(t.failures) == nfail else "FAIL"
    if row["status"] == "FAIL":
        kam = res["state"]["kam"]
        t.log("%s evidence: ice.session (last, mid-call): %s" %
              (label, nl.session_brief(sess)))
        for who in ("uac", "uas"):
            p = res[who]
            t.log("%s %s log tail (%s):\n%s" % (label, who, p.logfile,
                                                 it.tail(p.logfile, 12)))
        ufrags = set()
        for p in (a, b):
            for sdp in p.get("sdp_received") or []:
                u = nl.parse_sdp(sdp)["ufrag"]
                if u:
                    ufrags.add(u)
        lines = [ln for ln in kam.log_text().splitlines()
                 if res["state"]["call_id"] in ln or
                 any(u in ln for u in ufrags)]
        t.log("%s kamailio lines:\n%s" % (label, "\n".join(lines[-25:])))


def fmt_row(r):
    return "%-6s %-9s %-9s %-9s %-9s %-6s %-6s %-11s %s" % (
        r["mode"], r["caller"], r["callee"], r["a2b"], r["b2a"], r["path"],
        r["peers"], r["relay_pkts"], r["status"])


HEADER = "%-6s %-9s %-9s %-9s %-9s %-6s %-6s %-11s %s" % (
    "mode", "caller", "callee", "a->b", "b->a", "path", "peers",
    "relay i/o", "result")


def run(t):
    if not t.needs_module("ICE mode matrix"):
        return
    lab = nl.NatLab(t)
    lab.start_stun()
    lab.check_nat_behaviour()
    rows = []
    relay_na = [False]
    for mode in MODES:
        kam = lab.kamailio(FLAGS.get(mode, mode), "kam-" + mode)
        try:
            for cn, ce in (LITE_CELLS if mode == "lite" else cells()):
                row = run_cell(t, lab, kam, mode, cn, ce, relay_na)
                judge(t, row)
                rows.append(row)
                t.log("CELL " + fmt_row(row) +
                      ("  [peers select %s]" % row["sel"]
                       if row.get("sel") else "") +
                      ("  (%s)" % "; ".join(row["notes"])
                       if row["notes"] else ""))
            it.check_kamailio_healthy(t, kam)
        finally:
            kam.stop()
    print("\nICE matrix (a->b: packets the callee received / the caller "
          "sent; path from the relay's counters; peers: from the selected "
          "pairs)")
    print(HEADER)
    for r in rows:
        print(fmt_row(r))
    print()
    if relay_na[0]:
        t.log("relay mode: n/a (the module refused it)%s" %
              (", and ICE_REQUIRE_RELAY=1 makes that a failure"
               if REQUIRE_RELAY else "; set ICE_REQUIRE_RELAY=1 to require "
               "it"))


if __name__ == "__main__":
    sys.exit(it.main(run, "ice_matrix"))
