#!/usr/bin/env python3
"""bad_input: malformed SDPs and SIP bodies sent through kamailio + ice.

The corpus is test/data/bad-sdp/ (cases.json describes each file; see
make_corpus.py there). Every case is sent twice through kamailio
(127.0.0.1:5060, every INVITE and every 1xx/2xx reply goes through
ice_manage("remove"), with or without a body):
  - as an offer: an INVITE carrying the body; the callee answers 488;
  - as an answer: a good INVITE, then the callee sends a 183 carrying the
    body, then 488 (the 488 makes failure_route call ice_delete()).
A small raw SIP UA in this file sends and receives the exact bytes (sipp
rewrites line endings, strips leading blanks, cannot send NUL bytes or a
wrong Content-Length, so it cannot carry this corpus); the good call at the
end uses sipp with media as the other tests do.

Checks per case:
  - kamailio is still running;
  - the script saw the ice_manage() return code the manifest expects (-1
    refused, 1 rewritten, 2 nothing to do);
  - a refused case has exactly one module log line "ice_manage: <reason>"
    for its Call-ID, matching the manifest's reason, and that line names the
    Call-ID itself (not only through the test config's log_prefix);
  - a refused case reaches the other side with its body byte for byte and
    Content-Length unchanged; a rewritten case reaches it pointing at the
    relay with a Content-Length that matches the new body;
  - the caller gets a final reply (the callee's 488).
At the end: no session, ice.ports in_use 0, ice.stats sessions_active 0, the
shared memory used before and after (reported), and a good call with RTP both
ways through the relay still works.
"""
import json
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import icetest as it  # noqa: E402

CORPUS = os.path.join(it.REPO, "test", "data", "bad-sdp")
UAC_PORT = 5072          # the raw UA's caller socket (sipp uses 5070)
GOOD_CALL_MS = 3000
SHM_SLACK = 64 * 1024     # allowed shm noise (bytes)
SHM_SETTLE_S = 12
GOOD_CALL_ID = "icet-bad-good-1@test"
GOOD_SDP = (b"v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"
            b"c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"
            b"a=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")


# --------------------------------------------------------------------------
# a raw SIP UA: exact bytes in, exact bytes out

def split_msg(raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = []
    for ln in lines[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            hdrs.append((k.strip(), v.strip()))
    return lines[0], hdrs, body


def hdr(hdrs, name, short=None):
    for k, v in hdrs:
        if k.lower() == name.lower() or (short and k.lower() == short):
            return v
    return None


def status_of(first):
    m = re.match(r"SIP/2\.0 (\d{3})", first)
    return int(m.group(1)) if m else None


class RawUas(threading.Thread):
    """Callee on 127.0.0.1:5091/udp. For each INVITE: records the exact
    datagram, optionally sends a 183 with a given body, then a 488."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((it.LOOPBACK, it.UAS_SIP))
        self.sock.settimeout(0.2)
        self.invites = {}       # call-id -> raw bytes
        self.answers = {}       # call-id -> (ctype, body, cl_delta) for 183
        self.stop = False

    def reply(self, req_hdrs, addr, code, reason, extra=b"", body=b"",
              cl=None):
        out = ["SIP/2.0 %d %s" % (code, reason)]
        for k, v in req_hdrs:
            if k.lower() in ("via", "v", "record-route"):
                out.append("%s: %s" % (k, v))
        out.append("From: %s" % hdr(req_hdrs, "from", "f"))
        out.append("To: %s;tag=rawuas" % hdr(req_hdrs, "to", "t"))
        out.append("Call-ID: %s" % hdr(req_hdrs, "call-id", "i"))
        out.append("CSeq: %s" % hdr(req_hdrs, "cseq"))
        out.append("Contact: <sip:callee@%s:%d>" % (it.LOOPBACK, it.UAS_SIP))
        msg = ("\r\n".join(out) + "\r\n").encode() + extra
        msg += b"Content-Length: %d\r\n\r\n" % (len(body) if cl is None
                                                else cl)
        self.sock.sendto(msg + body, addr)

    def run(self):
        while not self.stop:
            try:
                raw, addr = self.sock.recvfrom(70000)
            except socket.timeout:
                continue
            except OSError:
                break
            first, hdrs, body = split_msg(raw)
            if not first.startswith("INVITE "):
                continue        # ACKs for the 488
            cid = hdr(hdrs, "call-id", "i")
            self.invites[cid] = raw
            ans = self.answers.get(cid)
            if ans:
                ctype, abody, delta = ans
                self.reply(hdrs, addr, 183, "Session Progress",
                           extra=b"Content-Type: %s\r\n" % ctype.encode(),
                           body=abody, cl=len(abody) + delta)
                time.sleep(0.05)
            self.reply(hdrs, addr, 488, "Not Acceptable Here")

    def close(self):
        self.stop = True
        self.join(2)
        self.sock.close()


class RawUac:
    """Caller: sends one INVITE (UDP or TCP) with an exact body, collects
    the replies until a final one, ACKs a non-2xx final reply."""

    def __init__(self, t):
        self.t = t
        self.n = 0

    def invite(self, call_id, body, ctype, cl_delta=0, transport="udp",
               timeout=8):
        self.n += 1
        proto = transport.upper()
        if transport == "tcp":
            sock = socket.create_connection((it.LOOPBACK, it.KAM_SIP), 5)
            lport = sock.getsockname()[1]
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((it.LOOPBACK, UAC_PORT))
            lport = UAC_PORT
        branch = "z9hG4bK-bad-%d-%d" % (os.getpid(), self.n)
        head = [
            "INVITE sip:callee@%s:%d SIP/2.0" % (it.LOOPBACK, it.KAM_SIP),
            "Via: SIP/2.0/%s %s:%d;branch=%s" % (proto, it.LOOPBACK, lport,
                                                branch),
            "From: caller <sip:caller@%s:%d>;tag=rawuac%d" % (
                it.LOOPBACK, lport, self.n),
            "To: callee <sip:callee@%s:%d>" % (it.LOOPBACK, it.KAM_SIP),
            "Call-ID: %s" % call_id,
            "CSeq: 1 INVITE",
            "Contact: <sip:caller@%s:%d>" % (it.LOOPBACK, lport),
            "Max-Forwards: 70",
            "Subject: icetest bad input",
            "Content-Type: %s" % ctype,
            "Content-Length: %d" % (len(body) + cl_delta),
        ]
        msg = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        replies = []
        buf = b""
        try:
            if transport == "tcp":
                sock.sendall(msg)
            else:
                sock.sendto(msg, (it.LOOPBACK, it.KAM_SIP))
            sock.settimeout(0.2)
            deadline = time.monotonic() + timeout
            final = None
            while final is None and time.monotonic() < deadline:
                try:
                    if transport == "tcp":
                        data = sock.recv(1 << 20)
                        if not data:
                            break
                        buf += data
                        while True:
                            m, buf = self._tcp_frame(buf)
                            if m is None:
                                break
                            replies.append(m)
                    else:
                        data, _ = sock.recvfrom(70000)
                        replies.append(data)
                except socket.timeout:
                    continue
                for r in replies:
                    st = status_of(split_msg(r)[0])
                    if st and st >= 200:
                        final = r
            if final is not None:
                st = status_of(split_msg(final)[0])
                if st >= 300:
                    to = hdr(split_msg(final)[1], "to", "t")
                    ack = [
                        "ACK sip:callee@%s:%d SIP/2.0" % (it.LOOPBACK,
                                                         it.KAM_SIP),
                        head[1], head[2], "To: %s" % to,
                        "Call-ID: %s" % call_id, "CSeq: 1 ACK",
                        "Max-Forwards: 70", "Content-Length: 0"]
                    a = ("\r\n".join(ack) + "\r\n\r\n").encode()
                    if transport == "tcp":
                        sock.sendall(a)
                    else:
                        sock.sendto(a, (it.LOOPBACK, it.KAM_SIP))
                    time.sleep(0.05)
        finally:
            sock.close()
        return msg, replies

    @staticmethod
    def _tcp_frame(buf):
        i = buf.find(b"\r\n\r\n")
        if i < 0:
            return None, buf
        _, hdrs, _ = split_msg(buf[:i + 4])
        cl = int(hdr(hdrs, "content-length", "l") or 0)
        end = i + 4 + cl
        if len(buf) < end:
            return None, buf
        return buf[:end], buf[end:]


# --------------------------------------------------------------------------
# the test

def patch_cfg(kam):
    """Call ice_manage() on every INVITE/ACK/UPDATE and every 1xx/2xx reply,
    body or not (the stock test script asks has_body() first, which would
    keep the empty-body case away from the module); enable TCP with a read
    buffer that takes the 300 KB case."""
    with open(kam.cfg) as f:
        cfg = f.read()
    subs = [
        ('if (is_method("INVITE|ACK|UPDATE") && has_body("application/sdp"))',
         'if (is_method("INVITE|ACK|UPDATE"))'),
        ('if (has_body("application/sdp") && ($rs =~ "^1[0-9][0-9]$" || '
         '$rs =~ "^2[0-9][0-9]$"))',
         'if ($rs =~ "^1[0-9][0-9]$" || $rs =~ "^2[0-9][0-9]$")'),
        ("disable_tcp=yes\n",
         "disable_tcp=no\ntcp_children=1\ntcp_rd_buf_size=524288\n"),
        ("listen=udp:127.0.0.1:5060\n",
         "listen=udp:127.0.0.1:5060\nlisten=tcp:127.0.0.1:5060\n"),
    ]
    for old, new in subs:
        if old not in cfg:
            raise it.TestError("cannot patch the config: %r not found" % old)
        cfg = cfg.replace(old, new)
    with open(kam.cfg, "w") as f:
        f.write(cfg)


def load_cases():
    with open(os.path.join(CORPUS, "cases.json")) as f:
        cases = json.load(f)
    for c in cases:
        with open(os.path.join(CORPUS, c["file"]), "rb") as f:
            c["body"] = f.read()
    only = os.environ.get("ICE_BAD_CASES")
    if only:
        cases = [c for c in cases if c["name"] in only.split(",")]
    return cases


def script_rcs(kam, call_id, what):
    rx = re.compile(r"ICETEST ice_manage rc=(-?\d+) msg=(\S+) cid=%s$" %
                    re.escape(call_id))
    out = []
    for ln in kam.log_lines(re.escape(call_id)):
        m = rx.search(ln)
        if m and m.group(2) == what:
            out.append(int(m.group(1)))
    return out


def module_lines(kam, call_id):
    return [ln for ln in kam.log_lines(r"ice_manage:")
            if call_id in ln and "ICETEST" not in ln]


def shm_used(kam):
    r = kam.rpc("core.shmmem")
    return int(r.get("used", 0)), int(r.get("real_used", 0))


def check_case(t, kam, c, kind, call_id, sent_body, delivered, rcs_for):
    """kind: offer/answer; delivered: the message the other side got."""
    name = "%s (%s)" % (c["name"], kind)
    t.check(kam.alive(), "%s: kamailio still running" % name,
            detail=it.tail(kam.logfile, 20))
    if not t.needs_module("%s: ice_manage result" % name):
        return
    want = c["offer_rc"]
    rcs = script_rcs(kam, call_id, rcs_for)
    mod = module_lines(kam, call_id)
    t.check(rcs == [want], "%s: ice_manage returned %s (%s)" % (
        name, rcs, c["what"]), detail="expected [%d]; module said:\n%s" % (
            want, "\n".join(mod)))
    if want == -1:
        t.check(len(mod) == 1, "%s: one module log line 'ice_manage: ...' "
                "(%d)" % (name, len(mod)), detail="\n".join(mod))
        if mod:
            line = mod[0].split("ice_manage:", 1)[1].strip()
            t.log("%s: module said: ice_manage: %s" % (name, line[:160]))
            t.check(re.search(c["reason"], line),
                    "%s: the reason matches /%s/" % (name, c["reason"]),
                    detail=line)
            t.check(call_id in line, "%s: the module's line names the "
                    "Call-ID itself" % name, detail=line)
    elif mod:
        t.log("%s: module said: %s" % (name, mod[0][:200]))
    if not c["delivered"] and kind == "offer":
        t.check(delivered is None, "%s: not forwarded (as documented: %s)" %
                (name, c["what"]))
        return
    if not t.check(delivered is not None, "%s: the message reached the "
                   "other side" % name):
        return
    first, hdrs, body = split_msg(delivered)
    cl = hdr(hdrs, "content-length", "l")
    if want in (-1, 2):
        t.check(body == sent_body, "%s: body delivered byte for byte (%d "
                "bytes)" % (name, len(sent_body)),
                detail="sent %r...\ngot  %r..." % (sent_body[:120],
                                                   body[:120]))
        t.check(cl == str(len(sent_body) + c["cl_delta"]),
                "%s: Content-Length unchanged (%s)" % (name, cl))
        return
    n = int(cl or 0)
    sdp = it.Sdp(body[:n])
    addr, port = sdp.audio_dest()
    t.check(addr == it.LOOPBACK and it.in_relay_range(port),
            "%s: the rewritten SDP points at the relay (%s:%s)" %
            (name, addr, port), detail=body[:400])
    t.check(n == len(body), "%s: Content-Length %s matches the body "
            "delivered (%d bytes)" % (name, cl, len(body)))
    if c.get("not_in_body"):
        t.check(c["not_in_body"].encode() not in body[:n],
                "%s: what followed the original Content-Length is not part "
                "of the new body (%r)" % (name, c["not_in_body"]),
                detail=body[:n].decode("latin-1"))


def run(t):
    ns = it.Netns(t, "bad")
    cnt = it.media_counters(ns, {"uac": it.UAC_MEDIA, "uas": it.UAS_MEDIA},
                            it.LOOPBACK)
    kam = t.kamailio(ns, it.LOOPBACK, "%s:%d" % (it.LOOPBACK, it.UAS_SIP),
                     listen_port=it.KAM_SIP)
    patch_cfg(kam)
    kam.start()
    cases = load_cases()
    t.log("%d corpus cases from %s" % (len(cases), CORPUS))
    shm0 = shm_used(kam) if t.has_module else None

    # the raw UAs live in the test namespace: run this file there
    r = ns.run(["/usr/bin/python3", os.path.abspath(__file__), "ua",
                os.path.join(t.dir, "ua.json")] +
               [c["name"] for c in cases], timeout=240)
    with open(os.path.join(t.dir, "ua.log"), "w") as f:
        f.write(r.stdout)
    with open(os.path.join(t.dir, "ua.json")) as f:
        res = {(x["case"], x["kind"]): x for x in json.load(f)}
    for c in cases:
        for kind in ("offer", "answer"):
            x = res.get((c["name"], kind))
            if x is None:
                continue
            finals = [s for s in x["statuses"] if s >= 200]
            want = c["final"] if kind == "offer" else 488
            t.check(finals[:1] == [want], "%s (%s): caller got final reply "
                    "%s (replies %s, expect %d)" % (c["name"], kind,
                                                    finals[:1],
                                                    x["statuses"], want))
            if kind == "offer":
                delivered = x["uas_invite"]
                check_case(t, kam, c, kind, x["call_id"], c["body"],
                           delivered and delivered.encode("latin-1"),
                           "INVITE")
            else:
                d = x["uac_183"]
                check_case(t, kam, c, kind, x["call_id"], c["body"],
                           d and d.encode("latin-1"), "183")
                # the good offer itself
                t.check(script_rcs(kam, x["call_id"], "INVITE") == [1],
                        "%s (answer): the good offer was anchored (rc 1)" %
                        c["name"])

    if t.needs_module("no session or port left after the corpus"):
        ok = it.wait_for(lambda: not t.ice_sessions(kam), 5)
        t.check(ok, "ice.sessions is empty after %d cases" % len(cases),
                detail=json.dumps(t.ice_sessions(kam))[:2000])
        ports = kam.rpc("ice.ports")
        t.check(ports.get("in_use") == 0, "ice.ports in_use 0 (%s)" %
                json.dumps(ports))
        st = kam.rpc("ice.stats")
        t.check(st.get("sessions_active") == 0, "ice.stats sessions_active "
                "0 (%s)" % json.dumps(st))
        # tm keeps finished transactions for its wait timer (5 s) and a
        # closed TCP connection's buffer is freed a little later: poll
        t_settle = time.monotonic()
        back = it.wait_for(lambda: shm_used(kam)[0] - shm0[0] <
                           SHM_SLACK, SHM_SETTLE_S, interval=0.5)
        shm1 = shm_used(kam)
        t.check(back, "core.shmmem used back to its level before the corpus "
                "within %.1f s: %d -> %d (%+d bytes, slack %d)" % (
                    time.monotonic() - t_settle, shm0[0], shm1[0],
                    shm1[0] - shm0[0], SHM_SLACK))

    # a good call with media still works
    uas = t.sipp(ns, "uas", "uas_call.xml", it.LOOPBACK, it.UAS_SIP,
                 it.LOOPBACK, it.UAS_MEDIA).start()
    uas.wait_listening(it.UAS_SIP)
    uac = t.sipp(ns, "uac", "uac_call.xml", it.LOOPBACK, it.UAC_SIP,
                 it.LOOPBACK, it.UAC_MEDIA,
                 remote="%s:%d" % (it.LOOPBACK, it.KAM_SIP),
                 args=["-d", str(GOOD_CALL_MS),
                       "-cid_str", "icet-bad-good-%u@test"]).start()
    rc_uac = uac.wait()
    rc_uas = uas.wait()
    t.check(rc_uac == 0 and rc_uas == 0, "a good call after the corpus "
            "completes (sipp rc %s, %s)" % (rc_uac, rc_uas),
            detail=uac.errors() + uas.errors())
    it.check_rtp_counts(t, cnt, "uac", 50)
    it.check_rtp_counts(t, cnt, "uas", 50)
    it.check_manage_rcs(t, kam, GOOD_CALL_ID,
                        [("INVITE", 1), ("180", 2), ("200", 1), ("ACK", 2)])
    it.check_session_gone(t, kam, GOOD_CALL_ID)
    it.check_kamailio_healthy(t, kam)


def ua_main(out_path, names):
    """Inside the test namespace: run every case as an offer and as an
    answer, write what was sent and received to out_path (JSON)."""
    by_name = {c["name"]: c for c in load_cases()}
    uas = RawUas()
    uas.start()
    uac = RawUac(None)
    res = []
    try:
        for name in names:
            c = by_name[name]
            for kind in ("offer", "answer"):
                if kind == "answer" and c["transport"] != "udp":
                    continue    # a 300 KB 183 cannot come back over UDP
                cid = "bad-%s-%s@test" % (c["name"], kind)
                if kind == "offer":
                    sent, replies = uac.invite(cid, c["body"], c["ctype"],
                                               c["cl_delta"], c["transport"])
                else:
                    uas.answers[cid] = (c["ctype"], c["body"], c["cl_delta"])
                    sent, replies = uac.invite(cid, GOOD_SDP,
                                               "application/sdp")
                r183 = [r for r in replies
                        if status_of(split_msg(r)[0]) == 183]
                inv = uas.invites.get(cid)
                res.append({
                    "case": name, "kind": kind, "call_id": cid,
                    "statuses": [status_of(split_msg(r)[0]) for r in replies],
                    "uas_invite": inv.decode("latin-1") if inv else None,
                    "uac_183": r183[0].decode("latin-1") if r183 else None,
                })
                print("%-22s %-6s replies %s, callee got the INVITE: %s" % (
                    name, kind, res[-1]["statuses"], inv is not None))
                sys.stdout.flush()
    finally:
        uas.close()
        with open(out_path, "w") as f:
            json.dump(res, f)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "ua":
        sys.exit(ua_main(sys.argv[2], sys.argv[3:]))
    sys.exit(it.main(run, "bad_input"))
