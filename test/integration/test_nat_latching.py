#!/usr/bin/env python3
"""nat_latching: the callee sits behind a masquerading NAT; symmetric
latching makes two-way media work.

Topology (all namespaces made by the test; the host's network is untouched):

  icet-pub                        icet-nat                     icet-callee
  kamailio 198.51.100.1:5060      nat-pub 198.51.100.2         callee0 10.77.0.2
  relay    198.51.100.1:35000+    masquerade fully-random      sipp UAS :5091,
  caller   198.51.100.1:5070,     out of nat-pub; SIP port     media 7000;
           media 6000             5091 forwarded (DNAT) to     default route
  pub0 ---------veth----------- nat-pub   nat-priv --veth-- callee0
                                10.77.0.1

icet-pub has no route to 10.77.0.0/24 (nor any default route), like a
public server that cannot reach a private address. The callee advertises
10.77.0.2:7000 in its SDP. kamailio fixes the callee's Contact (nathelper
fix_nated_contact) so in-dialog requests reach it through the forwarded port.

With the module: the relay learns the callee's public address:port from its
first RTP packet (the NAT maps port 7000 to a random one) and sends there, so
both receivers count packets from the relay. Without the module (proxy-only
sanity check): callee -> caller works (through the NAT), caller -> callee
cannot (no route to 10.77.0.2): one-way audio.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import icetest as it  # noqa: E402

PUB_IP = "198.51.100.1"
NAT_PUB_IP = "198.51.100.2"
NAT_PRIV_IP = "10.77.0.1"
CALLEE_IP = "10.77.0.2"
CALL_ID = "icet-nat-1@test"
CALL_MS = 4000
MIN_PKTS = 50


def topology(t):
    pub = it.Netns(t, "pub")
    nat = it.Netns(t, "nat")
    callee = it.Netns(t, "callee")
    it.veth(pub, "pub0", PUB_IP + "/24", nat, "nat-pub", NAT_PUB_IP + "/24")
    it.veth(nat, "nat-priv", NAT_PRIV_IP + "/24",
            callee, "callee0", CALLEE_IP + "/24")
    callee.run(["ip", "route", "add", "default", "via", NAT_PRIV_IP])
    nat.sysctl("net.ipv4.ip_forward", 1)
    nat.nft("""
table ip icetest_nat {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "nat-pub" udp dport %(sip)d dnat to %(callee)s
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "nat-pub" masquerade fully-random
  }
}
table inet icetest_fw {
  chain forwarding {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ct status dnat accept
    iifname "nat-priv" oifname "nat-pub" accept
  }
}
""" % {"sip": it.UAS_SIP, "callee": CALLEE_IP})
    return pub, nat, callee


def run(t):
    pub, nat, callee = topology(t)
    r = pub.run(["ip", "route", "get", CALLEE_IP], check=False)
    t.require(r.returncode != 0, "icet-pub has no route to the private "
              "address %s" % CALLEE_IP, detail=r.stdout)
    uac_cnt = it.media_counters(pub, {"uac": it.UAC_MEDIA}, PUB_IP)
    uas_cnt = it.media_counters(callee, {"uas": it.UAS_MEDIA}, PUB_IP)

    kam = t.kamailio(pub, PUB_IP, "%s:%d" % (NAT_PUB_IP, it.UAS_SIP),
                     listen_port=it.KAM_SIP, relay_ip=PUB_IP)
    kam.start()
    uas = t.sipp(callee, "uas", "uas_call.xml", CALLEE_IP, it.UAS_SIP,
                 CALLEE_IP, it.UAS_MEDIA).start()
    uas.wait_listening(it.UAS_SIP)
    uac = t.sipp(pub, "uac", "uac_call.xml", PUB_IP, it.UAC_SIP,
                 PUB_IP, it.UAC_MEDIA, remote="%s:%d" % (PUB_IP, it.KAM_SIP),
                 args=["-d", str(CALL_MS), "-cid_str", "icet-nat-%u@test"]
                 ).start()

    sess = it.wait_relayed(t, kam, CALL_ID, 25, timeout=CALL_MS / 1000.0)
    if t.needs_module("relay latched the callee's NAT address"):
        t.log("ice.session mid-call: %s" % json.dumps(sess))
        callee_comps = [c for leg, st, c in it.session_components(sess)
                        if leg.get("role") == "callee" and
                        c.get("component") == 1]
        t.check(callee_comps, "session has a callee RTP component")
        for c in callee_comps:
            remote = it.addr_str(c.get("remote"))
            latched = it.addr_str(c.get("latched"))
            t.check(remote == "%s:%d" % (CALLEE_IP, it.UAS_MEDIA),
                    "callee's SDP address is the private one: %s" % remote)
            t.check(latched.startswith(NAT_PUB_IP + ":"),
                    "relay latched the NAT's public address: %s" % latched)
        for tag, role, tot in it.leg_totals(sess):
            t.check(tot["packets_in"] >= 25 and tot["packets_out"] >= 25,
                    "leg %s relayed both ways: %s" % (role, tot))

    rc_uac = uac.wait()
    rc_uas = uas.wait()
    t.check(rc_uac == 0, "caller sipp finished the call (rc=%s)" % rc_uac,
            detail=uac.errors())
    t.check(rc_uas == 0, "callee sipp finished the call, BYE reached it "
            "through the NAT (rc=%s)" % rc_uas, detail=uas.errors())

    oks = uac.received(lambda m: m.status == 200 and m.cseq_method == "INVITE")
    invites = uas.received(lambda m: m.method == "INVITE")
    t.require(oks and invites, "caller got the 200 and callee the INVITE")
    t.check(oks[0].sdp() and oks[0].sdp().audio_dest()[0] ==
            (PUB_IP if t.has_module else CALLEE_IP),
            "caller sees %s in the answer" %
            ("the relay" if t.has_module else "the callee's private address"),
            detail=oks[0].body)
    it.check_relay_sdp(t, oks[0], PUB_IP, "caller")
    it.check_relay_sdp(t, invites[0], PUB_IP, "callee")

    if t.has_module:
        it.check_rtp_counts(t, uac_cnt, "uac", MIN_PKTS)
        it.check_rtp_counts(t, uas_cnt, "uas", MIN_PKTS)
    else:
        a = uac_cnt.packets()
        b = uas_cnt.packets()
        t.log("proxy-only counters: caller %s, callee %s" % (a, b))
        t.check(a["uac_all"] >= MIN_PKTS, "proxy-only: callee -> caller "
                "media passes the NAT (%d packets)" % a["uac_all"])
        t.check(b["uas_all"] == 0, "proxy-only: caller -> callee media cannot "
                "reach the private address: one-way audio (%d packets)" %
                b["uas_all"])
        t.needs_module("two-way media through the relay")
    it.check_manage_rcs(t, kam, CALL_ID, [("INVITE", 1), ("200", 1)])
    it.check_session_gone(t, kam, CALL_ID)
    it.check_kamailio_healthy(t, kam)


if __name__ == "__main__":
    sys.exit(it.main(run, "nat_latching"))
