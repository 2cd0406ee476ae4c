#!/usr/bin/env python3
"""ice_peer.py: a minimal SIP user agent with an aioice agent, for the ICE
integration tests of kamailio-ice. Runs inside a test namespace (ip netns
exec); standard library + Debian's python3-aioice only.

Commands:
  call      (default) a SIP UA, --role caller or callee:
              caller: INVITE with an SDP built from aioice's gathered
              candidates (a=ice-ufrag/pwd, a=candidate, a=end-of-candidates,
              c=/m= at the default candidate, m=audio RTP/AVP 0,
              a=rtcp-mux: one component), 100/180/200, ACK, feeds the
              answer's credentials and candidates to aioice (controlling),
              connects, exchanges numbered PCMU-sized RTP at 50 pps over the
              ICE connection for --duration seconds, then BYE. With
              --restart-after S it sends a re-INVITE with new ICE
              credentials (a new aioice Connection: ICE restart) after S
              seconds of media and goes on on the new connection.
              callee: waits for the INVITE, answers 180 then 200 with its
              own SDP (aioice controlled, or --controlling to provoke a role
              conflict), connects, sends media until the BYE; a re-INVITE
              with new credentials restarts its ICE, one with the same
              credentials keeps the connection.
            --no-ice: plain RTP instead (no ICE in the SDP; one UDP socket,
              symmetric: it sends to the SDP address from its SDP port).
            The result is one JSON object (--json-out and a last stdout line
            "RESULT {...}"): ice connected or not, selected pair, packets
            sent and received (per SSRC and per connection generation),
            the SDPs exchanged.
  stunprobe send a Binding request (USERNAME, PRIORITY, ICE-CONTROLLING,
            MESSAGE-INTEGRITY with --pwd, FINGERPRINT unless
            --no-fingerprint) from a fresh socket to --target, report the
            responses, then optionally spray RTP (--rtp N, --ssrc X) from
            the same socket to the same target.
  natcheck  Binding requests to two STUN servers from one socket: prints
            "MAPPED ip:port ip:port" and then waits --listen seconds for a
            "natprobe" datagram sent by the test from elsewhere (filtering).
  udpsend   send a few "natprobe" datagrams from a fresh socket to each
            of --target host:port[,host:port...].

Exit status: 0 when the run did what was asked (for call: SIP dialog
established and, with ICE, ICE connected), 1 otherwise, 2 on bad usage.
"""

import argparse
import asyncio
import json
import logging
import os
import random
import secrets
import socket
import struct
import sys
import time

try:
    from aioice import Candidate, Connection, stun
    from aioice.ice import CandidatePair
except ImportError:  # plain RTP and the probes still work without aioice
    Candidate = Connection = stun = CandidatePair = None

T1 = 0.5
T2 = 4.0
PPS = 50
RTP_PAYLOAD = 160
USER_AGENT = "kamailio-ice-test-peer"


def log(msg):
    sys.stderr.write("%.3f %s\n" % (time.time(), msg))
    sys.stderr.flush()


def rand_token(n=10):
    return secrets.token_hex(n)


def hostport(s, default_port):
    if ":" in s:
        h, p = s.rsplit(":", 1)
        return (h, int(p))
    return (s, default_port)


# --------------------------------------------------------------------------
# SIP messages

COMPACT = {"i": "call-id", "f": "from", "t": "to", "v": "via", "m": "contact",
           "c": "content-type", "l": "content-length", "k": "supported"}


class SipMessage:
    def __init__(self):
        self.first = ""
        self.method = None
        self.status = None
        self.reason = ""
        self.uri = None
        self.headers = []  # (lower-case name, value), in order
        self.body = b""

    @staticmethod
    def parse(data):
        head, sep, body = data.partition(b"\r\n\r\n")
        if not sep:
            head, sep, body = data.partition(b"\n\n")
        lines = head.decode("utf-8", "replace").replace("\r\n", "\n").split(
            "\n")
        if not lines or not lines[0].strip():
            return None
        m = SipMessage()
        m.first = lines[0]
        parts = m.first.split(" ", 2)
        if parts[0] == "SIP/2.0":
            if len(parts) < 2 or not parts[1].isdigit():
                return None
            m.status = int(parts[1])
            m.reason = parts[2] if len(parts) > 2 else ""
        else:
            if len(parts) < 3:
                return None
            m.method, m.uri = parts[0], parts[1]
        for ln in lines[1:]:
            if ln[:1] in (" ", "\t") and m.headers:
                k, v = m.headers[-1]
                m.headers[-1] = (k, v + " " + ln.strip())
            elif ":" in ln:
                k, v = ln.split(":", 1)
                k = k.strip().lower()
                m.headers.append((COMPACT.get(k, k), v.strip()))
        clen = m.header("content-length")
        if clen is not None and clen.isdigit():
            body = body[:int(clen)]
        m.body = body
        return m

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def all(self, name):
        return [v for k, v in self.headers if k == name]

    def cseq(self):
        v = (self.header("cseq") or "0 X").split()
        return (int(v[0]) if v[0].isdigit() else 0, v[-1].upper())

    def tag(self, hdr):
        v = self.header(hdr) or ""
        for p in v.split(";")[1:]:
            p = p.strip()
            if p.lower().startswith("tag="):
                return p[4:]
        return None

    def branch(self):
        v = self.header("via") or ""
        for p in v.split(";")[1:]:
            if p.strip().lower().startswith("branch="):
                return p.strip()[7:]
        return None

    def contact_uri(self):
        v = self.header("contact") or ""
        if "<" in v:
            return v[v.index("<") + 1:v.index(">")]
        return v.split(";")[0].strip()

    def record_routes(self):
        out = []
        for v in self.all("record-route"):
            for part in split_commas(v):
                out.append(part.strip())
        return out


def split_commas(v):
    out, cur, inq, inb = [], "", False, False
    for ch in v:
        if ch == '"':
            inq = not inq
        elif ch == "<" and not inq:
            inb = True
        elif ch == ">" and not inq:
            inb = False
        if ch == "," and not inq and not inb:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return out


def build(first, headers, body=b""):
    if isinstance(body, str):
        body = body.encode()
    out = first + "\r\n"
    for k, v in headers:
        out += "%s: %s\r\n" % (k, v)
    out += "Content-Length: %d\r\n\r\n" % len(body)
    return out.encode() + body


# --------------------------------------------------------------------------
# SDP

def parse_sdp(body):
    """What a peer needs from an SDP: ICE credentials (media level first),
    candidates of the first audio m-line, ice-lite, c=/m= address."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    res = {"ufrag": None, "pwd": None, "lite": False, "candidates": [],
           "addr": None, "port": None, "eoc": False, "rtcp_mux": False,
           "text": text}
    sess = {"ufrag": None, "pwd": None, "addr": None}
    in_audio = False
    seen_m = False
    for ln in text.replace("\r\n", "\n").split("\n"):
        ln = ln.strip()
        if ln.startswith("m="):
            parts = ln[2:].split()
            in_audio = (not seen_m and parts and parts[0] == "audio")
            seen_m = True
            if in_audio and len(parts) > 1:
                res["port"] = int(parts[1].split("/")[0])
            continue
        if seen_m and not in_audio:
            continue
        tgt = res if in_audio else sess
        if ln.startswith("c="):
            parts = ln[2:].split()
            if len(parts) >= 3:
                tgt["addr"] = parts[2].split("/")[0]
        elif ln.startswith("a=ice-ufrag:"):
            tgt["ufrag"] = ln[len("a=ice-ufrag:"):]
        elif ln.startswith("a=ice-pwd:"):
            tgt["pwd"] = ln[len("a=ice-pwd:"):]
        elif ln == "a=ice-lite":
            res["lite"] = True
        elif ln.startswith("a=candidate:") and in_audio:
            res["candidates"].append(ln[len("a=candidate:"):])
        elif ln == "a=end-of-candidates" and in_audio:
            res["eoc"] = True
        elif ln == "a=rtcp-mux" and in_audio:
            res["rtcp_mux"] = True
    for k in ("ufrag", "pwd", "addr"):
        if res[k] is None:
            res[k] = sess[k]
    return res


def make_sdp(addr, port, version, ice=None, sess_id=None, rtcp=None):
    """ice: (ufrag, pwd, [candidate sdp strings]) or None; rtcp: None for
    a=rtcp-mux, else (addr, port) of a separate RTCP component."""
    sess_id = sess_id or random.randint(10 ** 6, 10 ** 9)
    lines = ["v=0",
             "o=- %d %d IN IP4 %s" % (sess_id, version, addr),
             "s=-",
             "c=IN IP4 %s" % addr,
             "t=0 0",
             "m=audio %d RTP/AVP 0" % port,
             "a=rtpmap:0 PCMU/8000",
             "a=ptime:20",
             "a=sendrecv"]
    if rtcp is None:
        lines.append("a=rtcp-mux")
    else:
        lines.append("a=rtcp:%d IN IP4 %s" % (rtcp[1], rtcp[0]))
    if ice:
        ufrag, pwd, cands = ice
        lines += ["a=ice-ufrag:%s" % ufrag, "a=ice-pwd:%s" % pwd]
        lines += ["a=candidate:%s" % c for c in cands]
        lines.append("a=end-of-candidates")
    return "\r\n".join(lines) + "\r\n"


# --------------------------------------------------------------------------
# RTP

def rtp_packet(seq, ssrc):
    hdr = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF,
                      ssrc)
    return hdr + b"\xff" * RTP_PAYLOAD


def rtp_ssrc(data):
    if len(data) >= 12 and (data[0] & 0xC0) == 0x80:
        return struct.unpack("!I", data[8:12])[0]
    return None


class Counter:
    """Received media: total, per SSRC, per connection generation."""

    def __init__(self):
        self.total = 0
        self.by_ssrc = {}
        self.by_gen = {}
        self.first = None
        self.last = None
        self.sources = {}
        self.last_wall = None

    def add(self, data, gen, src=None):
        ssrc = rtp_ssrc(data)
        if ssrc is None:
            return
        self.total += 1
        k = "%08x" % ssrc
        self.by_ssrc[k] = self.by_ssrc.get(k, 0) + 1
        self.by_gen[str(gen)] = self.by_gen.get(str(gen), 0) + 1
        now = time.monotonic()
        if self.first is None:
            self.first = now
        self.last = now
        self.last_wall = time.time()
        if src is not None:
            s = "%s:%d" % (src[0], src[1])
            self.sources[s] = self.sources.get(s, 0) + 1

    def summary(self, t0):
        return {"received": self.total, "received_by_ssrc": self.by_ssrc,
                "received_by_generation": self.by_gen,
                "received_sources": self.sources,
                "first_rx_s": None if self.first is None else
                round(self.first - t0, 3),
                "last_rx_s": None if self.last is None else
                round(self.last - t0, 3),
                "last_rx_wall": self.last_wall}


# --------------------------------------------------------------------------
# media legs: an aioice connection or a plain UDP socket

class IceLeg:
    """One aioice Connection and its state: one component (rtcp-mux), or
    two when answering an offer without a=rtcp-mux (RFC 5761: the answer
    may only accept mux if offered); media always on component 1."""

    def __init__(self, args, controlling, gen, components=1):
        self.args = args
        self.gen = gen
        self.controlling = controlling
        self.components = components
        stun_srv = hostport(args.stun, 3478) if args.stun else None
        self.conn = Connection(ice_controlling=controlling,
                               components=components,
                               stun_server=stun_srv, use_ipv6=False)
        self.connected = False
        self.error = None
        self.remote = None
        self.connect_s = None
        self.sdp_pwd = None
        self.recv_task = None
        self.reselected = 0

    async def gather(self):
        await asyncio.wait_for(self.conn.gather_candidates(), 8)
        self.sdp_pwd = self.conn.local_password
        if self.args.tamper_pwd:
            # advertise a password aioice does not use: the peer's checks
            # toward us fail, and ours (signed below with a wrong remote
            # password) fail too
            self.sdp_pwd = rand_token(12)

    def default(self):
        c = self.conn.get_default_candidate(1)
        return (c.host, c.port)

    def sdp(self, version, sess_id):
        addr, port = self.default()
        # a server-reflexive candidate equal to a host one is redundant
        # (RFC 8445 section 5.1.3): public endpoints leave it out
        hosts = {(c.host, c.port) for c in self.conn.local_candidates
                 if c.type == "host"}
        cands = [c.to_sdp() for c in self.conn.local_candidates
                 if c.type == "host" or (c.host, c.port) not in hosts]
        rtcp = None
        if self.components == 2:
            c2 = self.conn.get_default_candidate(2)
            rtcp = (c2.host, c2.port)
        return make_sdp(addr, port, version,
                        ice=(self.conn.local_username, self.sdp_pwd, cands),
                        sess_id=sess_id, rtcp=rtcp)

    async def set_remote(self, rsdp):
        self.remote = rsdp
        self.conn.remote_username = rsdp["ufrag"]
        self.conn.remote_password = rsdp["pwd"]
        if self.args.tamper_pwd:
            self.conn.remote_password = "x" + (rsdp["pwd"] or "")[1:] + "bad"
        self.conn.remote_is_lite = bool(rsdp["lite"])
        if rsdp["lite"] and not self.conn.ice_controlling:
            # RFC 8445 section 6.1.1: a full agent facing a lite one
            # controls (and nominates)
            self.conn.ice_controlling = True
        for line in rsdp["candidates"]:
            try:
                c = Candidate.from_sdp(line)
            except ValueError as e:
                log("bad candidate %r: %s" % (line, e))
                continue
            if c.component > self.components or \
                    c.transport.lower() != "udp":
                continue
            await self.conn.add_remote_candidate(c)
        await self.conn.add_remote_candidate(None)

    async def connect(self, timeout, t0):
        try:
            await asyncio.wait_for(self.conn.connect(), timeout)
            self.reselect()
            self.connected = True
            self.connect_s = round(time.monotonic() - t0, 3)
            log("ICE gen %d connected: %s" % (self.gen, self.selected()))
        except Exception as e:  # noqa: BLE001
            self.error = "%s: %s" % (type(e).__name__, e)
            log("ICE gen %d failed: %s" % (self.gen, self.error))
        return self.connected

    def reselect(self):
        """aioice 0.8 uses the pair nominated last: with aggressive
        nomination a lower-priority check that succeeds a few ms after the
        first one (say through the relay) replaces it, even after connect()
        returned. RFC 8445 section 8.1.1 (RFC 5245 section 8.1.1 for
        aggressive nomination) selects the highest-priority nominated pair:
        do that (its check list is sorted by pair priority)."""
        for p in self.conn._check_list:
            if p.component == 1 and p.nominated and \
                    p.state == CandidatePair.State.SUCCEEDED:
                if self.conn._nominated.get(1) is not p:
                    self.conn._nominated[1] = p
                    self.reselected += 1
                return

    def selected(self):
        p = self.conn._nominated.get(1)  # aioice 0.8: no public accessor
        if p is None:
            return None
        lc = p.protocol.local_candidate
        return {"local": "%s:%d" % (lc.host, lc.port),
                "remote": "%s:%d" % tuple(p.remote_addr),
                "remote_type": p.remote_candidate.type}

    def send(self, data):
        if self.connected:
            self.reselect()  # late nominations, see reselect()
            p = self.conn._nominated.get(1)
            if p is not None:
                p.protocol.transport.sendto(data, p.remote_addr)
                return True
        elif self.args.send_anyway and self.remote and \
                self.conn._protocols:
            # ICE failed: send from our host socket to the SDP's default
            # address anyway (what an attacker or a broken agent would do)
            dst = (self.remote["addr"], self.remote["port"])
            self.conn._protocols[0].transport.sendto(data, dst)
            return True
        return False

    async def recv_loop(self, counter):
        q = self.conn._queue  # media reaches it whether or not connected
        while True:
            data, comp = await q.get()
            if data is None:
                return
            counter.add(data, self.gen)

    def start_recv(self, counter):
        self.recv_task = asyncio.ensure_future(self.recv_loop(counter))

    def info(self):
        return {"generation": self.gen, "components": self.components,
                "controlling_initial": self.controlling,
                "controlling_final": self.conn.ice_controlling,
                "connected": self.connected, "error": self.error,
                "connect_s": self.connect_s,
                "selected": self.selected(),
                "reselected": self.reselected,
                "local_ufrag": self.conn.local_username,
                "local_pwd_sdp": self.sdp_pwd,
                "local_candidates": [c.to_sdp()
                                     for c in self.conn.local_candidates],
                "remote_ufrag": self.remote and self.remote["ufrag"],
                "remote_pwd": self.remote and self.remote["pwd"],
                "remote_lite": bool(self.remote and self.remote["lite"]),
                "remote_candidates": self.remote and self.remote["candidates"]}

    async def close(self):
        if self.recv_task:
            self.recv_task.cancel()
        try:
            await asyncio.wait_for(self.conn.close(), 3)
        except Exception:  # noqa: BLE001
            pass


class PlainProto(asyncio.DatagramProtocol):
    def __init__(self, leg):
        self.leg = leg

    def datagram_received(self, data, addr):
        self.leg.counter.add(data, self.leg.gen, addr)


class PlainLeg:
    """Plain RTP from one UDP socket, symmetric (sends from its SDP port)."""

    def __init__(self, args, gen):
        self.args = args
        self.gen = gen
        self.transport = None
        self.remote = None
        self.counter = None
        self.connected = True
        self.error = None

    async def open(self, counter):
        self.counter = counter
        loop = asyncio.get_event_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: PlainProto(self), local_addr=(self.args.local_ip,
                                                  self.args.media_port))

    def sdp(self, version, sess_id):
        addr, port = self.transport.get_extra_info("sockname")[:2]
        return make_sdp(addr, port, version, sess_id=sess_id)

    async def set_remote(self, rsdp):
        self.remote = rsdp

    def send(self, data):
        if self.remote and self.remote["addr"] and self.remote["port"]:
            self.transport.sendto(data, (self.remote["addr"],
                                         self.remote["port"]))
            return True
        return False

    def info(self):
        sn = self.transport.get_extra_info("sockname") if self.transport \
            else None
        return {"generation": self.gen, "plain": True,
                "local": sn and "%s:%d" % tuple(sn[:2]),
                "remote": self.remote and "%s:%s" % (self.remote["addr"],
                                                     self.remote["port"])}

    async def close(self):
        if self.transport:
            self.transport.close()


class Sender:
    """50 packets/s of numbered RTP over the current leg."""

    def __init__(self, ssrc):
        self.ssrc = ssrc
        self.seq = 0
        self.sent = 0
        self.failed = 0
        self.by_ssrc = {}
        self.leg = None
        self.task = None
        self.last_wall = None

    def start(self, leg):
        self.leg = leg
        if self.task is None:
            self.task = asyncio.ensure_future(self.loop())

    def switch(self, leg, ssrc):
        self.leg = leg
        self.ssrc = ssrc

    async def loop(self):
        nxt = time.monotonic()
        while True:
            leg = self.leg
            if leg is not None:
                if leg.send(rtp_packet(self.seq, self.ssrc)):
                    self.sent += 1
                    self.last_wall = time.time()
                    k = "%08x" % self.ssrc
                    self.by_ssrc[k] = self.by_ssrc.get(k, 0) + 1
                else:
                    self.failed += 1
                self.seq += 1
            nxt += 1.0 / PPS
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))

    async def stop(self):
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
            self.task = None


# --------------------------------------------------------------------------
# SIP transport and the two roles

class SipProto(asyncio.DatagramProtocol):
    def __init__(self, ua):
        self.ua = ua

    def datagram_received(self, data, addr):
        m = SipMessage.parse(data)
        if m is None:
            return
        self.ua.trace.append({"t": round(time.monotonic() - self.ua.t0, 3),
                              "dir": "in", "first": m.first,
                              "cseq": m.header("cseq")})
        self.ua.inbox.put_nowait((m, addr))


class UA:
    def __init__(self, args):
        self.args = args
        self.t0 = time.monotonic()
        self.inbox = asyncio.Queue()
        self.trace = []
        self.transport = None
        self.local = (args.local_ip, args.sip_port)
        self.call_id = args.call_id or "%s@icetest" % rand_token(8)
        self.local_tag = rand_token(6)
        self.remote_tag = None
        self.route_set = []
        self.remote_target = None
        self.cseq = 0
        self.sess_id = random.randint(10 ** 6, 10 ** 9)
        self.sdp_version = 0
        self.result = {"role": args.role, "call_id": self.call_id,
                       "sip_ok": False, "errors": [], "sdp_sent": [],
                       "sdp_received": [], "legs": []}
        self.counter = Counter()
        self.sender = Sender(random.getrandbits(32) | 1)
        self.legs = []
        self.leg = None
        self.acked = {}  # INVITE cseq -> ACK bytes, to answer 200 rexmits

    async def open(self):
        loop = asyncio.get_event_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: SipProto(self), local_addr=self.local)

    def send(self, data, addr):
        self.transport.sendto(data, addr)
        first = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
        self.trace.append({"t": round(time.monotonic() - self.t0, 3),
                           "dir": "out", "first": first})

    def err(self, msg):
        log("ERROR " + msg)
        self.result["errors"].append(msg)

    # -- media legs
    async def new_leg(self, controlling, components=1):
        gen = len(self.legs)
        if self.args.no_ice:
            leg = PlainLeg(self.args, gen)
            await leg.open(self.counter)
        else:
            leg = IceLeg(self.args, controlling, gen, components)
            await leg.gather()
            leg.start_recv(self.counter)
        self.legs.append(leg)
        return leg

    def next_sdp(self, leg):
        self.sdp_version += 1
        sdp = leg.sdp(self.sdp_version, self.sess_id)
        self.result["sdp_sent"].append(sdp)
        return sdp

    def finish(self):
        r = self.result
        r["legs"] = [leg.info() for leg in self.legs]
        first = self.legs[0] if self.legs else None
        if first is not None and not self.args.no_ice:
            r["ice_connected"] = first.connected
            r["ice_error"] = first.error
            r["selected"] = first.selected()
        last = self.legs[-1] if self.legs else None
        if last is not None and not self.args.no_ice and len(self.legs) > 1:
            r["restart_connected"] = last.connected
            r["restart_selected"] = last.selected()
        r["sent"] = self.sender.sent
        r["send_failed"] = self.sender.failed
        r["sent_by_ssrc"] = self.sender.by_ssrc
        r["last_tx_wall"] = self.sender.last_wall
        r.update(self.counter.summary(self.t0))
        r["sip_trace"] = self.trace
        return r

    # -- request building
    def via(self, branch):
        return "SIP/2.0/UDP %s:%d;branch=%s;rport" % (self.local[0],
                                                     self.local[1], branch)

    def contact(self, user):
        return "<sip:%s@%s:%d>" % (user, self.local[0], self.local[1])


class Caller(UA):
    def __init__(self, args):
        super().__init__(args)
        self.proxy = hostport(args.proxy, 5060)
        self.ruri = args.ruri
        self.responses = {}  # (cseq, method) -> Queue

    def request(self, method, cseq, branch, body=b"", in_dialog=False,
                to_tag=None, ruri=None):
        hdrs = [("Via", self.via(branch)), ("Max-Forwards", "70")]
        if in_dialog:
            for r in self.route_set:
                hdrs.append(("Route", r))
        to = "<%s>" % self.ruri
        tag = to_tag or (self.remote_tag if in_dialog else None)
        if tag:
            to += ";tag=" + tag
        hdrs += [("From", "<sip:caller@%s>;tag=%s" % (self.local[0],
                                                      self.local_tag)),
                 ("To", to), ("Call-ID", self.call_id),
                 ("CSeq", "%d %s" % (cseq, method)),
                 ("Contact", self.contact("caller")),
                 ("User-Agent", USER_AGENT)]
        if body:
            hdrs.append(("Content-Type", "application/sdp"))
        uri = ruri or (self.remote_target if in_dialog else self.ruri)
        return build("%s %s SIP/2.0" % (method, uri), hdrs, body)

    async def pump(self):
        """Route what arrives: responses to their transaction, 200
        retransmissions to a new ACK, BYE from the far end."""
        while True:
            m, addr = await self.inbox.get()
            if m.status is not None:
                key = m.cseq()
                if key[1] == "INVITE" and key[0] in self.acked and \
                        200 <= m.status < 300:
                    self.send(self.acked[key[0]], self.proxy)
                    continue
                q = self.responses.get(key)
                if q is not None:
                    q.put_nowait(m)
            elif m.method == "BYE":
                self.send(response_to(m, 200, "OK", self.local_tag), addr)
                self.result["bye_from_callee"] = True
            elif m.method not in ("ACK",):
                self.send(response_to(m, 501, "Not Implemented",
                                      self.local_tag), addr)

    async def transaction(self, method, body=b"", in_dialog=False,
                          timeout=10.0):
        """Send a request with retransmissions; return the final response
        (INVITE: 2xx or the failure, after ACKing it) or None."""
        self.cseq += 1
        cseq = self.cseq
        branch = "z9hG4bK" + rand_token(8)
        data = self.request(method, cseq, branch, body, in_dialog)
        q = asyncio.Queue()
        self.responses[(cseq, method)] = q
        deadline = time.monotonic() + timeout
        rto = T1
        provisional = False
        self.send(data, self.proxy)
        next_tx = time.monotonic() + rto
        try:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    self.err("%s: no final response in %.0fs" % (method,
                                                                 timeout))
                    return None
                wait = deadline - now
                if not provisional:
                    wait = min(wait, max(0.0, next_tx - now))
                try:
                    m = await asyncio.wait_for(q.get(), wait)
                except asyncio.TimeoutError:
                    if not provisional and time.monotonic() >= next_tx:
                        self.send(data, self.proxy)
                        rto = min(rto * 2, T2)
                        next_tx = time.monotonic() + rto
                    continue
                if m.status < 200:
                    provisional = provisional or method == "INVITE"
                    continue
                if method == "INVITE" and m.status >= 300:
                    # ACK for a non-2xx final response: same branch
                    ack = self.request("ACK", cseq, branch, b"", False,
                                       to_tag=m.tag("to"), ruri=self.ruri)
                    self.send(ack, self.proxy)
                return m
        finally:
            if method != "INVITE":
                self.responses.pop((cseq, method), None)

    def ack(self, resp):
        cseq = resp.cseq()[0]
        data = self.request("ACK", cseq, "z9hG4bK" + rand_token(8), b"",
                            in_dialog=True)
        self.acked[cseq] = data
        self.send(data, self.proxy)

    async def invite(self, sdp, first):
        resp = await self.transaction("INVITE", sdp, in_dialog=not first,
                                      timeout=self.args.sip_timeout)
        if resp is None:
            return None
        if not 200 <= resp.status < 300:
            self.err("INVITE answered %d %s" % (resp.status, resp.reason))
            return None
        if first:
            self.remote_tag = resp.tag("to")
            self.route_set = list(reversed(resp.record_routes()))
            self.remote_target = resp.contact_uri() or self.ruri
        self.ack(resp)
        self.result["sdp_received"].append(resp.body.decode("utf-8",
                                                            "replace"))
        if not resp.body.strip():
            self.err("200 OK without SDP")
            return None
        return parse_sdp(resp.body)

    async def run(self):
        a = self.args
        await self.open()
        pump = asyncio.ensure_future(self.pump())
        try:
            leg = await self.new_leg(controlling=not a.controlled)
            rsdp = await self.invite(self.next_sdp(leg), first=True)
            if rsdp is None:
                return False
            self.result["sip_ok"] = True
            await leg.set_remote(rsdp)
            ok = True
            if isinstance(leg, IceLeg):
                ok = await leg.connect(a.ice_timeout, self.t0)
            self.write_state("connected" if ok else "ice-failed")
            if ok or a.send_anyway:
                self.sender.start(leg)
            if a.restart_after and ok:
                await asyncio.sleep(a.restart_after)
                ok = await self.restart() and ok
            await asyncio.sleep(a.duration)
            await self.sender.stop()
            await asyncio.sleep(a.linger)
            bye = await self.transaction("BYE", in_dialog=True, timeout=6)
            self.result["bye_status"] = bye.status if bye else None
            if bye is None or bye.status != 200:
                self.err("BYE not answered with 200")
            return ok and bye is not None and bye.status == 200
        finally:
            await self.sender.stop()
            pump.cancel()

    async def restart(self):
        """re-INVITE with a new ICE agent (new ufrag/pwd and candidates);
        keep sending on the old one until the new one connects."""
        old = self.legs[-1]
        leg = await self.new_leg(controlling=not self.args.controlled)
        rsdp = await self.invite(self.next_sdp(leg), first=False)
        if rsdp is None:
            self.err("re-INVITE failed")
            return False
        prev = old.remote or {}
        self.result["restart_remote_credentials_changed"] = (
            rsdp["ufrag"] != prev.get("ufrag") and
            rsdp["pwd"] != prev.get("pwd"))
        await leg.set_remote(rsdp)
        ok = await leg.connect(self.args.ice_timeout, self.t0)
        self.write_state("restarted" if ok else "restart-failed")
        if ok:
            self.sender.switch(leg, random.getrandbits(32) | 1)
            await old.close()
        return ok

    def write_state(self, what):
        if not self.args.state_file:
            return
        st = {"state": what, "legs": [leg.info() for leg in self.legs],
              "sdp_received": self.result["sdp_received"]}
        tmp = self.args.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(st, f)
        os.rename(tmp, self.args.state_file)


def response_to(req, code, reason, tag, extra=(), body=b"", rr=False):
    hdrs = [("Via", v) for v in req.all("via")]
    if rr:
        hdrs += [("Record-Route", v) for v in req.all("record-route")]
    to = req.header("to") or ""
    if tag and ";tag=" not in to.replace(" ", ""):
        to += ";tag=" + tag
    hdrs += [("From", req.header("from") or ""), ("To", to),
             ("Call-ID", req.header("call-id") or ""),
             ("CSeq", req.header("cseq") or "")]
    hdrs += list(extra)
    hdrs.append(("User-Agent", USER_AGENT))
    if body:
        hdrs.append(("Content-Type", "application/sdp"))
    return build("SIP/2.0 %d %s" % (code, reason), hdrs, body)


class Callee(UA):
    def __init__(self, args):
        super().__init__(args)
        self.last_resp = {}  # INVITE branch -> last response bytes
        self.pending = {}    # INVITE cseq -> task retransmitting the 200
        self.done = asyncio.Event()
        self.connect_tasks = []

    async def answer_invite(self, req, addr, first):
        a = self.args
        extra = [("Contact", self.contact("callee"))]
        branch = req.branch()
        if first:
            self.call_id = req.header("call-id")
            self.result["call_id"] = self.call_id
        r100 = response_to(req, 100, "Trying", None)
        self.send(r100, addr)
        self.last_resp[branch] = r100
        body = req.body
        self.result["sdp_received"].append(body.decode("utf-8", "replace"))
        if not body.strip():
            self.err("INVITE without SDP")
            self.send(response_to(req, 488, "Not Acceptable Here",
                                  self.local_tag), addr)
            return
        rsdp = parse_sdp(body)
        cur = self.legs[-1] if self.legs else None
        restart = first or (isinstance(cur, IceLeg) and (
            rsdp["ufrag"] != cur.remote["ufrag"] or
            rsdp["pwd"] != cur.remote["pwd"]))
        if not first and not restart:
            # same credentials: no ICE restart, the connection stays
            if isinstance(cur, PlainLeg):
                cur.remote = rsdp
            leg = cur
        else:
            leg = await self.new_leg(controlling=a.controlling,
                                     components=1 if rsdp["rtcp_mux"] else 2)
            await leg.set_remote(rsdp)
        if first:
            r180 = response_to(req, 180, "Ringing", self.local_tag, extra,
                               rr=True)
            self.send(r180, addr)
            self.last_resp[branch] = r180
            await asyncio.sleep(0.1)  # keep the 180 ahead of the 200
        sdp = self.next_sdp(leg)
        r200 = response_to(req, 200, "OK", self.local_tag, extra,
                           body=sdp, rr=True)
        self.last_resp[branch] = r200
        self.send(r200, addr)
        cseq = req.cseq()[0]
        self.pending[cseq] = asyncio.ensure_future(
            self.retransmit_200(r200, addr, cseq))
        self.result["sip_ok"] = True
        if leg is not cur or first:
            self.connect_tasks.append(asyncio.ensure_future(
                self.connect_leg(leg, switch=not first)))

    async def retransmit_200(self, data, addr, cseq):
        rto = T1
        end = time.monotonic() + 32 * T1
        while time.monotonic() < end:
            await asyncio.sleep(rto)
            self.send(data, addr)
            rto = min(rto * 2, T2)
        self.err("no ACK for the 200 to INVITE cseq %d" % cseq)

    async def connect_leg(self, leg, switch):
        ok = True
        if isinstance(leg, IceLeg):
            ok = await leg.connect(self.args.ice_timeout, self.t0)
        if ok or self.args.send_anyway:
            if switch:
                old = self.sender.leg
                self.sender.switch(leg, random.getrandbits(32) | 1)
                if old is not None and old is not leg:
                    await old.close()
            else:
                self.sender.start(leg)

    async def run(self):
        await self.open()
        print("READY %s:%d" % self.local, flush=True)
        try:
            while not self.done.is_set():
                m, addr = await self.inbox.get()
                if m.status is not None:
                    continue
                if m.method == "INVITE":
                    br = m.branch()
                    if br in self.last_resp:  # retransmission
                        self.send(self.last_resp[br], addr)
                        continue
                    first = self.remote_tag is None and not self.legs
                    if first:
                        self.remote_tag = m.tag("from")
                    self.last_resp[br] = response_to(m, 100, "Trying", None)
                    await self.answer_invite(m, addr, first)
                elif m.method == "ACK":
                    t = self.pending.pop(m.cseq()[0], None)
                    if t:
                        t.cancel()
                    self.result["acked"] = True
                elif m.method == "BYE":
                    self.send(response_to(m, 200, "OK", self.local_tag), addr)
                    self.result["bye_received"] = True
                    self.done.set()
                elif m.method == "CANCEL":
                    self.send(response_to(m, 200, "OK", self.local_tag), addr)
                else:
                    self.send(response_to(m, 501, "Not Implemented",
                                          self.local_tag), addr)
            ok = self.result.get("bye_received", False)
            if self.legs and isinstance(self.legs[0], IceLeg):
                ok = ok and self.legs[0].connected
            return ok
        finally:
            await self.sender.stop()
            for t in list(self.pending.values()) + self.connect_tasks:
                t.cancel()


async def run_call(args):
    ua = Caller(args) if args.role == "caller" else Callee(args)
    ok = False
    try:
        ok = await asyncio.wait_for(ua.run(), args.timeout)
    except asyncio.TimeoutError:
        ua.err("timed out after %ss" % args.timeout)
    except Exception as e:  # noqa: BLE001
        ua.err("exception: %s: %s" % (type(e).__name__, e))
        import traceback
        traceback.print_exc()
    res = ua.finish()
    res["ok"] = bool(ok)
    for leg in ua.legs:
        await leg.close()
    if ua.transport:
        ua.transport.close()
    return res


# --------------------------------------------------------------------------
# probes

class RawProto(asyncio.DatagramProtocol):
    def __init__(self):
        self.q = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.q.put_nowait((data, addr))


async def open_raw(local_ip, port=0):
    loop = asyncio.get_event_loop()
    tr, pr = await loop.create_datagram_endpoint(
        RawProto, local_addr=(local_ip, port))
    return tr, pr


async def binding(tr, pr, target, msg_bytes, tid, tries=3, rto=0.3):
    """Send a request up to tries times; return (response Message or raw
    bytes, addr) or (None, None)."""
    for _ in range(tries):
        tr.sendto(msg_bytes, target)
        end = time.monotonic() + rto
        while time.monotonic() < end:
            try:
                data, addr = await asyncio.wait_for(
                    pr.q.get(), max(0.01, end - time.monotonic()))
            except asyncio.TimeoutError:
                break
            try:
                m = stun.parse_message(data)
            except ValueError:
                continue
            if m.transaction_id == tid:
                return m, addr
    return None, None


async def run_stunprobe(args):
    tr, pr = await open_raw(args.local_ip)
    local = tr.get_extra_info("sockname")[:2]
    target = hostport(args.target, 3478)
    res = {"local": "%s:%d" % local, "target": "%s:%d" % target,
           "responses": []}
    for _ in range(args.count):
        req = stun.Message(message_method=stun.Method.BINDING,
                           message_class=stun.Class.REQUEST)
        if args.username:
            req.attributes["USERNAME"] = args.username
        req.attributes["PRIORITY"] = 1853824767
        req.attributes["ICE-CONTROLLING"] = random.getrandbits(64)
        if args.pwd is not None:
            req.add_message_integrity(args.pwd.encode())  # + FINGERPRINT
        else:
            req.attributes["FINGERPRINT"] = stun.message_fingerprint(
                bytes(req))
        if args.no_fingerprint:
            req.attributes.pop("FINGERPRINT", None)
        data = bytes(req)
        m, addr = await binding(tr, pr, target, data, req.transaction_id)
        if m is None:
            res["responses"].append({"class": "none"})
        elif m.message_class == stun.Class.RESPONSE:
            res["responses"].append({"class": "success", "from": "%s:%d" %
                                     tuple(addr[:2])})
        else:
            ec = m.attributes.get("ERROR-CODE", (None, ""))
            res["responses"].append({"class": "error", "code": ec[0],
                                     "reason": ec[1]})
    sent = 0
    for i in range(args.rtp):
        tr.sendto(rtp_packet(i, args.ssrc), target)
        sent += 1
        await asyncio.sleep(1.0 / args.pps)
    res["rtp_sent"] = sent
    # anything the relay sent back to this socket (it must not: the
    # address never passed a check)
    got = 0
    while not pr.q.empty():
        data, _ = pr.q.get_nowait()
        if rtp_ssrc(data) is not None:
            got += 1
    res["rtp_received"] = got
    tr.close()
    return res


async def run_natcheck(args):
    tr, pr = await open_raw(args.local_ip)
    local = tr.get_extra_info("sockname")[:2]
    res = {"local": "%s:%d" % local, "mapped": []}
    for srv in (args.stun, args.stun2):
        req = stun.Message(message_method=stun.Method.BINDING,
                           message_class=stun.Class.REQUEST)
        m, _ = await binding(tr, pr, hostport(srv, 3478), bytes(req),
                             req.transaction_id, tries=4)
        if m is None or "XOR-MAPPED-ADDRESS" not in m.attributes:
            res["mapped"].append(None)
        else:
            res["mapped"].append("%s:%d" % tuple(
                m.attributes["XOR-MAPPED-ADDRESS"][:2]))
    print("MAPPED %s" % " ".join(x or "-" for x in res["mapped"]), flush=True)
    res["probe_from"] = None
    end = time.monotonic() + args.listen
    while time.monotonic() < end:
        try:
            data, addr = await asyncio.wait_for(
                pr.q.get(), max(0.01, end - time.monotonic()))
        except asyncio.TimeoutError:
            break
        if data == b"natprobe":
            res["probe_from"] = "%s:%d" % tuple(addr[:2])
            break
    tr.close()
    return res


def run_udpsend(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((args.local_ip, 0))
    targets = [hostport(x, 0) for x in args.target.split(",")]
    for _ in range(3):
        for dst in targets:
            s.sendto(b"natprobe", dst)
        time.sleep(0.05)
    s.close()
    return {"sent": 3 * len(targets)}


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", nargs="?", default="call",
                    choices=("call", "stunprobe", "natcheck", "udpsend"))
    ap.add_argument("--role", choices=("caller", "callee"), default="caller")
    ap.add_argument("--local-ip", required=True)
    ap.add_argument("--sip-port", type=int, default=5070)
    ap.add_argument("--proxy", help="caller: kamailio host:port")
    ap.add_argument("--ruri", help="caller: Request-URI of the INVITE")
    ap.add_argument("--call-id")
    ap.add_argument("--stun", help="STUN server host:port (srflx candidates)")
    ap.add_argument("--stun2", help="natcheck: second STUN server")
    ap.add_argument("--no-ice", action="store_true",
                    help="plain RTP peer (no ICE in the SDP)")
    ap.add_argument("--media-port", type=int, default=0,
                    help="--no-ice: local RTP port (0: any)")
    ap.add_argument("--duration", type=float, default=3.0,
                    help="caller: seconds of media after ICE connects")
    ap.add_argument("--linger", type=float, default=0.5,
                    help="caller: seconds between the last packet and BYE")
    ap.add_argument("--ice-timeout", type=float, default=8.0)
    ap.add_argument("--sip-timeout", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="the whole run")
    ap.add_argument("--controlling", action="store_true",
                    help="callee: run aioice as controlling (role conflict)")
    ap.add_argument("--controlled", action="store_true",
                    help="caller: run aioice as controlled (role conflict)")
    ap.add_argument("--tamper-pwd", action="store_true",
                    help="wrong ICE passwords both ways (security test)")
    ap.add_argument("--send-anyway", action="store_true",
                    help="send media to the SDP address even if ICE failed")
    ap.add_argument("--restart-after", type=float, default=0.0,
                    help="caller: ICE restart by re-INVITE after S seconds")
    ap.add_argument("--state-file", help="caller: JSON written when ICE "
                    "connects (credentials, SDPs), for mid-call probes")
    ap.add_argument("--json-out")
    ap.add_argument("--verbose", action="store_true",
                    help="aioice's own log (INFO) on stderr")
    # probes
    ap.add_argument("--target", help="stunprobe/udpsend: host:port")
    ap.add_argument("--username")
    ap.add_argument("--pwd")
    ap.add_argument("--no-fingerprint", action="store_true")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--rtp", type=int, default=0)
    ap.add_argument("--pps", type=float, default=100.0)
    ap.add_argument("--ssrc", type=lambda s: int(s, 0), default=0xBADC0DE)
    ap.add_argument("--listen", type=float, default=2.0)
    args = ap.parse_args()

    logging.basicConfig(level=logging.INFO if args.verbose else
                        logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    if args.command != "udpsend" and Connection is None:
        print("python3-aioice is not installed", file=sys.stderr)
        return 2
    if args.command == "call":
        if args.role == "caller" and not (args.proxy and args.ruri):
            ap.error("caller needs --proxy and --ruri")
        res = asyncio.run(run_call(args))
        ok = res["ok"]
    elif args.command == "stunprobe":
        if not args.target:
            ap.error("stunprobe needs --target")
        res = asyncio.run(asyncio.wait_for(run_stunprobe(args), 30))
        ok = True
    elif args.command == "natcheck":
        if not (args.stun and args.stun2):
            ap.error("natcheck needs --stun and --stun2")
        res = asyncio.run(asyncio.wait_for(run_natcheck(args), 20))
        ok = all(res["mapped"])
    else:
        res = run_udpsend(args)
        ok = True
    js = json.dumps(res)
    if args.json_out:
        tmp = args.json_out + ".tmp"
        with open(tmp, "w") as f:
            f.write(js)
        os.rename(tmp, args.json_out)
    print("RESULT " + js, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
