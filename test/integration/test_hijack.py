#!/usr/bin/env python3
"""hijack: RTP Bleed. An attacker sprays RTP at every port of the relay's
range during a call; the relay must neither hand the call's media to the
attacker nor pass the attacker's packets to the callers.

Topology (namespaces made by the test):

  <prefix>hj-pub 198.51.100.1            <prefix>hj-atk 198.51.100.66
  kamailio :5060, relay 35000-35999,     attacker: one UDP socket (:40000)
  caller sipp :5070 media 6000,          sending small RTP packets (SSRC
  callee sipp :5091 media 7000           0xDEADBEEF, payload "ATK!") to
  pub0 ------------------ veth ---------- atk0 every port of the range

The call (uac_call.xml / uas_call.xml, PCMU both ways with rtp_stream) runs
with modparam relatch_window = 1000 ms.

Phase A (informational, not asserted): one round right after the 200 OK,
inside the relatch window, where the module accepts a new source by design.
Phase B (asserted): once both endpoints' windows are over, 3 rounds over the
whole range. Checks for phase B:
  - every receiver keeps getting the relay's packets at the normal rate (the
    counters, sampled every 100 ms, never stall for more than 300 ms and the
    count during the spray is at least 80% of 50 pps);
  - no packet with the attacker's SSRC reaches a receiver (nft matches the
    SSRC bytes at the receivers' input hook);
  - the attacker receives nothing from the relay's ports;
  - ice.stats packets_dropped grew by the number of attacker packets that hit
    a bound port (3 rounds x 4 ports), and so did the components' dropped
    counters in ice.session;
  - the latched addresses of every component are the same as before.
The flags are ICE_TEST_FLAGS (default "remove"). `strict-source` (no
re-latching at all) is not part of this test; it leaves the first latch as
it is, so ICE_TEST_FLAGS="remove strict-source" gives the same phase B and
call 2 results (phase A then relays nothing to the attacker).

The file is also the attacker: "test_hijack.py spray DST PMIN PMAX ROUNDS
GAP_MS" (run inside the attacker namespace) prints a JSON summary.
"""
import json
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import icetest as it  # noqa: E402

PUB_IP = "198.51.100.1"
ATK_IP = "198.51.100.66"
ATK_PORT = 40000
ATK_SSRC = 0xDEADBEEF
RELATCH_MS = 1000
CALL_ID = "icet-hijack-1@test"
CALL_MS = 7000
CALL2_ID = "icet-hijack2-1@test"
CALL2_MS = 4500
PHASE_B_ROUNDS = 3
PHASE_B_GAP_MS = 400
# ICE_HIJACK_PHASE_A=0 skips the in-window round (to show what phase B alone
# does)
PHASE_A = os.environ.get("ICE_HIJACK_PHASE_A", "1") != "0"


# --------------------------------------------------------------------------
# the attacker

def spray_main(argv):
    dst, pmin, pmax, rounds, gap_ms = argv[0], int(argv[1]), int(argv[2]), \
        int(argv[3]), int(argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", ATK_PORT))
    seq = 0
    sent = 0
    errors = 0
    times = []
    for r in range(rounds):
        t0 = time.time()
        for p in range(pmin, pmax + 1):
            seq = (seq + 1) & 0xFFFF
            # RTP v2, PT 0, our SSRC, 16 bytes of "ATK!"
            pkt = struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ATK_SSRC) \
                + b"ATK!" * 4
            try:
                s.sendto(pkt, (dst, p))
                sent += 1
            except OSError:
                errors += 1
        times.append((t0, time.time()))
        if r + 1 < rounds:
            time.sleep(gap_ms / 1000.0)
    print(json.dumps({"sent": sent, "errors": errors, "rounds": times}))
    return 0


# --------------------------------------------------------------------------
# the test

def add_modparams(kam, params):
    """Add modparam("ice", ...) lines to a generated config before start()."""
    with open(kam.cfg) as f:
        cfg = f.read()
    anchor = 'modparam("ice", "media_timeout", 30)\n'
    if anchor not in cfg:
        raise it.TestError("cannot find %r in %s" % (anchor, kam.cfg))
    extra = "".join('modparam("ice", "%s", %s)\n' % (k, v)
                    for k, v in params.items())
    with open(kam.cfg, "w") as f:
        f.write(cfg.replace(anchor, anchor + extra))


def topology(t):
    pub = it.Netns(t, "hj-pub")
    atk = it.Netns(t, "hj-atk")
    it.veth(pub, "pub0", PUB_IP + "/24", atk, "atk0", ATK_IP + "/24")
    return pub, atk


def comp_table(sess):
    """{(role, stream index, component): component dict}"""
    out = {}
    for leg, st, c in it.session_components(sess):
        out[(leg.get("role"), st.get("index"), c.get("component"))] = c
    return out


def spray(t, atk, rounds, gap_ms):
    r = atk.run(["/usr/bin/python3", os.path.abspath(__file__), "spray",
                 PUB_IP, str(it.RELAY_PORT_MIN), str(it.RELAY_PORT_MAX),
                 str(rounds), str(gap_ms)], timeout=30)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    t.log("attacker: %d packets sent in %d round(s), %d send errors" %
          (res["sent"], rounds, res["errors"]))
    return res


def sample_until(cnt, stop, interval=0.1):
    """Sample the nft counters until stop() is true: [(t, {name: pkts})]."""
    samples = []
    while True:
        samples.append((time.monotonic(), cnt.packets()))
        if stop():
            break
        time.sleep(interval)
    return samples


def max_stall(samples, name):
    """Longest time (s) the counter `name` did not move between samples."""
    worst = 0.0
    last_t, last_v = samples[0][0], samples[0][1].get(name, 0)
    for ts, c in samples[1:]:
        v = c.get(name, 0)
        if v != last_v:
            last_t, last_v = ts, v
        worst = max(worst, ts - last_t)
    return worst


def run(t):
    pub, atk = topology(t)
    cnt = it.media_counters(pub, {"uac": it.UAC_MEDIA, "uas": it.UAS_MEDIA},
                            PUB_IP)
    for rx, port in (("uac", it.UAC_MEDIA), ("uas", it.UAS_MEDIA)):
        # the attacker's SSRC: RTP bytes 8..11, i.e. transport header bits
        # 128..159 (8 bytes of UDP header + 8)
        cnt.add(rx + "_atk", "udp dport %d @th,128,32 0x%08x" % (port,
                                                               ATK_SSRC))
    atk_cnt = it.NftCounters(atk)
    atk_cnt.add("atk_from_relay", "ip saddr %s udp sport %d-%d" %
                (PUB_IP, it.RELAY_PORT_MIN, it.RELAY_PORT_MAX))
    atk_cnt.add("atk_icmp", "ip protocol icmp")

    kam = t.kamailio(pub, PUB_IP, "%s:%d" % (PUB_IP, it.UAS_SIP),
                     listen_port=it.KAM_SIP, relay_ip=PUB_IP)
    if t.has_module:
        add_modparams(kam, {"relatch_window": RELATCH_MS})
    kam.start()
    uas = t.sipp(pub, "uas", "uas_call.xml", PUB_IP, it.UAS_SIP,
                 PUB_IP, it.UAS_MEDIA).start()
    uas.wait_listening(it.UAS_SIP)
    uac = t.sipp(pub, "uac", "uac_call.xml", PUB_IP, it.UAC_SIP,
                 PUB_IP, it.UAC_MEDIA, remote="%s:%d" % (PUB_IP, it.KAM_SIP),
                 args=["-d", str(CALL_MS), "-cid_str", "icet-hijack-%u@test"],
                 timeout=40).start()
    t0 = time.monotonic()
    if not t.needs_module("RTP Bleed checks"):
        uac.wait()
        uas.wait()
        return

    # ---- phase A: inside the relatch window (informational)
    def answered():
        try:
            s = t.ice_session(kam, CALL_ID)
        except it.RpcError:
            return None
        return s if s and s.get("state") == "answered" else None
    t.require(it.wait_for(answered, 5, interval=0.02),
              "session %s answered" % CALL_ID)
    t_answer = time.monotonic()
    c0 = cnt.packets()
    if PHASE_A:
        spray(t, atk, 1, 0)
        t.log("phase A: one round %.0f ms after the answer (relatch window "
              "%d ms)" % ((time.monotonic() - t_answer) * 1000, RELATCH_MS))
    else:
        t.log("phase A skipped (ICE_HIJACK_PHASE_A=0)")

    # ---- wait for both windows to be over and media to be steady
    sess_before = it.wait_relayed(t, kam, CALL_ID, 25, timeout=5)
    rest = t_answer + RELATCH_MS / 1000.0 + 1.0 - time.monotonic()
    if rest > 0:
        time.sleep(rest)
    c1 = cnt.packets()
    a1 = atk_cnt.packets()
    t.log("phase A (inside the window, by design not asserted): attacker "
          "packets at the receivers: caller %d, callee %d; relay -> attacker"
          " %d" % (c1["uac_atk"] - c0["uac_atk"],
                   c1["uas_atk"] - c0["uas_atk"], a1["atk_from_relay"]))
    sess_before = t.ice_session(kam, CALL_ID)
    st_before = kam.rpc("ice.stats")
    comps_before = comp_table(sess_before)
    t.log("before phase B: latched %s" % {
        "%s/%s/%s" % k: c.get("latched") for k, c in
        sorted(comps_before.items())})
    t.check(all(it.addr_str(c.get("latched")).startswith(PUB_IP + ":")
                for k, c in comps_before.items() if k[2] == 1),
            "before phase B every RTP component is latched to a legitimate "
            "endpoint (the window let it recover from phase A)",
            detail=json.dumps(sess_before))

    # ---- phase B: after the window, 3 rounds over the whole range
    res = {}

    def do_spray():
        res.update(spray(t, atk, PHASE_B_ROUNDS, PHASE_B_GAP_MS))
    import threading
    th = threading.Thread(target=do_spray)
    tb = time.monotonic()
    th.start()
    samples = sample_until(cnt, lambda: not th.is_alive())
    th.join()
    spray_s = time.monotonic() - tb
    # keep sampling a little after the spray
    end = time.monotonic() + 1.0
    samples += sample_until(cnt, lambda: time.monotonic() >= end)
    t.check(time.monotonic() - t0 < CALL_MS / 1000.0,
            "phase B ended before the call did (%.1f s of %.1f s)" %
            (time.monotonic() - t0, CALL_MS / 1000.0))
    c2 = samples[0][1]
    c3 = samples[-1][1]
    dur = samples[-1][0] - samples[0][0]
    a3 = atk_cnt.packets()
    sess_after = t.ice_session(kam, CALL_ID)
    st_after = kam.rpc("ice.stats")
    comps_after = comp_table(sess_after)

    per_round = it.RELAY_PORT_MAX - it.RELAY_PORT_MIN + 1
    t.check(res.get("sent") == PHASE_B_ROUNDS * per_round,
            "attacker sent %d packets (%d rounds x %d ports) in %.2f s" %
            (res.get("sent", 0), PHASE_B_ROUNDS, per_round, spray_s))
    for rx in ("uac", "uas"):
        got = c3[rx + "_relay"] - c2[rx + "_relay"]
        want = int(it.RTP_PPS * dur * 0.8)
        stall = max_stall(samples, rx + "_relay")
        t.check(got >= want, "%s kept receiving the relay's RTP during the "
                "spray: %d packets in %.2f s (need >= %d)" %
                (rx, got, dur, want))
        t.check(stall <= 0.3, "%s: no gap in the relayed RTP (longest stall "
                "%.0f ms)" % (rx, stall * 1000))
        direct = (c3[rx + "_all"] - c3[rx + "_relay"])
        t.check(direct == 0, "%s: every packet came from the relay (%d did "
                "not)" % (rx, direct))
        atkp = c3[rx + "_atk"] - c2[rx + "_atk"]
        t.check(atkp == 0, "%s received none of the attacker's packets after "
                "the relatch window (%d)" % (rx, atkp))
    leaked = a3["atk_from_relay"] - a1["atk_from_relay"]
    t.check(leaked == 0, "the attacker received nothing from the relay's "
            "ports after the window (%d packets)" % leaked)

    nbound = len(comps_after)
    want_drop = PHASE_B_ROUNDS * nbound
    dropped = st_after.get("packets_dropped", 0) - \
        st_before.get("packets_dropped", 0)
    t.check(want_drop <= dropped <= want_drop + 10,
            "ice.stats packets_dropped grew by the spray that hit the call's "
            "%d ports: %d (expect %d)" % (nbound, dropped, want_drop),
            detail="before %s\nafter %s" % (json.dumps(st_before),
                                            json.dumps(st_after)))
    for k in sorted(comps_after):
        cb, ca = comps_before.get(k, {}), comps_after[k]
        d = int(ca.get("dropped", 0)) - int(cb.get("dropped", 0))
        t.check(d == PHASE_B_ROUNDS, "%s stream %s component %s (relay port "
                "%s): dropped +%d (expect %d)" % (k + (ca.get("local_port"),
                                                       d, PHASE_B_ROUNDS)))
        t.check(it.addr_str(ca.get("latched")) ==
                it.addr_str(cb.get("latched")),
                "%s stream %s component %s: latched address unchanged "
                "(%s -> %s)" % (k + (cb.get("latched"), ca.get("latched"))))
    t.log("ice.session after phase B: %s" % json.dumps(sess_after))

    rc_uac = uac.wait()
    rc_uas = uas.wait()
    t.check(rc_uac == 0, "caller sipp finished the call (rc=%s)" % rc_uac,
            detail=uac.errors())
    t.check(rc_uas == 0, "callee sipp finished the call (rc=%s)" % rc_uas,
            detail=uas.errors())
    it.check_session_gone(t, kam, CALL_ID)
    silent_callee(t, pub, atk, kam, cnt, atk_cnt)
    it.check_kamailio_healthy(t, kam)


def silent_callee(t, pub, atk, kam, cnt, atk_cnt):
    """Call 2: the callee never sends RTP (hijack_uas_silent.xml), so its
    relay ports are never latched. After its relatch window the attacker
    sprays the range; the relay must not start sending the caller's audio to
    the attacker (the classic RTP Bleed) nor take its packets."""
    t.log("call 2: caller streams, callee silent")
    uas = t.sipp(pub, "uas2", "hijack_uas_silent.xml", PUB_IP, it.UAS_SIP,
                 PUB_IP, it.UAS_MEDIA).start()
    uas.wait_listening(it.UAS_SIP)
    uac = t.sipp(pub, "uac2", "uac_call.xml", PUB_IP, it.UAC_SIP,
                 PUB_IP, it.UAC_MEDIA, remote="%s:%d" % (PUB_IP, it.KAM_SIP),
                 args=["-d", str(CALL2_MS), "-cid_str",
                       "icet-hijack2-%u@test"], timeout=30).start()

    def answered():
        try:
            s = t.ice_session(kam, CALL2_ID)
        except it.RpcError:
            return None
        return s if s and s.get("state") == "answered" else None
    t.require(it.wait_for(answered, 5, interval=0.05),
              "session %s answered" % CALL2_ID)
    time.sleep(RELATCH_MS / 1000.0 + 1.0)
    sess_before = t.ice_session(kam, CALL2_ID)
    comps_before = comp_table(sess_before)
    st_before = kam.rpc("ice.stats")
    a0 = atk_cnt.packets()
    c0 = cnt.packets()
    t.log("call 2 before the spray: latched %s" % {
        "%s/%s/%s" % k: c.get("latched") for k, c in
        sorted(comps_before.items())})
    spray(t, atk, PHASE_B_ROUNDS, PHASE_B_GAP_MS)
    time.sleep(1.0)
    a1 = atk_cnt.packets()
    c1 = cnt.packets()
    sess_after = t.ice_session(kam, CALL2_ID)
    comps_after = comp_table(sess_after)
    st_after = kam.rpc("ice.stats")
    leaked = a1["atk_from_relay"] - a0["atk_from_relay"]
    t.check(leaked == 0, "call 2: the attacker received none of the caller's "
            "media from the relay (%d packets)" % leaked)
    for rx in ("uac", "uas"):
        atkp = c1[rx + "_atk"] - c0[rx + "_atk"]
        t.check(atkp == 0, "call 2: %s received none of the attacker's "
                "packets (%d)" % (rx, atkp))
    for k in sorted(comps_after):
        cb, ca = comps_before.get(k, {}), comps_after[k]
        t.check(it.addr_str(ca.get("latched")) ==
                it.addr_str(cb.get("latched")),
                "call 2: %s stream %s component %s (relay port %s): latched "
                "address unchanged (%s -> %s)" % (
                    k + (ca.get("local_port"), cb.get("latched"),
                         ca.get("latched"))))
    dropped = st_after.get("packets_dropped", 0) - \
        st_before.get("packets_dropped", 0)
    want = PHASE_B_ROUNDS * len(comps_after)
    t.check(want <= dropped <= want + 10, "call 2: packets_dropped grew by "
            "the spray that hit the call's %d ports: %d (expect %d)" %
            (len(comps_after), dropped, want))
    t.log("call 2 ice.session after the spray: %s" % json.dumps(sess_after))
    rc_uac = uac.wait()
    rc_uas = uas.wait()
    t.check(rc_uac == 0 and rc_uas == 0, "call 2: both sipps finished the "
            "call (rc=%s, %s)" % (rc_uac, rc_uas),
            detail=uac.errors() + uas.errors())
    it.check_session_gone(t, kam, CALL2_ID)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "spray":
        sys.exit(spray_main(sys.argv[2:]))
    sys.exit(it.main(run, "hijack"))
