#!/usr/bin/env python3
"""webrtc_peer.py: SIP peers that send and check a tone, for the WebRTC <->
SIP bridging tests of kamailio-ice (DTLS-SRTP, SDES-SRTP, plain RTP).

Peer side (run inside a test namespace with ip netns exec):

  webrtc_peer.py call --kind KIND --role caller|callee --local-ip IP ...
    KIND webrtc  an aiortc RTCPeerConnection: UDP/TLS/RTP/SAVPF, ICE (host
                 candidates only: no STUN server), DTLS-SRTP, rtcp-mux,
                 PCMU preferred; an audio track playing a sine (--tone Hz,
                 8 kHz s16 av.AudioFrames paced in real time); what the
                 remote track delivers is decoded and analysed.
         plain   a plain RTP phone: m=audio RTP/AVP 0, one RTP socket
                 (--media-port, symmetric) and RTCP on port+1 (no
                 rtcp-mux), PCMU tone at 50 packets/s, an RTCP SR every
                 second; rejects (488) an offer whose m=audio proto is not
                 RTP/AVP or that has no PCMU.
         sdes    as plain, over SDES-SRTP: m=audio RTP/SAVP 0 with
                 a=crypto (AES_CM_128_HMAC_SHA1_80 and _32), libsrtp via
                 Debian's python3-pylibsrtp (aiortc's dependency).
    caller: offer in the INVITE, answer from the 200, media for --duration
    seconds after the media path is up (webrtc: connectionState
    "connected", i.e. ICE and DTLS done), then BYE. callee: prints
    "READY ip:port", answers 180/200 (or 488 when it cannot use the
    offer, with a Warning saying why), media until the BYE.
    The SIP layer is ice_peer.py's (Caller/Callee, imported, not copied).
    Tests of the relay's security:
      --tamper-fingerprint   webrtc: the a=fingerprint we send is not our
                             certificate's (last byte changed)
      --inject-tampered N    webrtc: 1 s into the media, each of the
                             next N SRTP packets goes out twice over our
                             ICE 5-tuple (the validated path): first a
                             copy with one encrypted payload byte flipped
                             (a fresh index: only the authentication tag
                             can stop it), then the real one
      --inject-stray N       webrtc: then the next N packets, unmodified
                             and valid, are also sent ahead of the real
                             ones from a fresh UDP socket to the relay's
                             address of the selected pair (a source no ICE
                             check validated)
      --inject-replay N      webrtc: then N of the first packets we sent,
                             again as they were, over the ICE 5-tuple
                             (replays: far behind the replay window)
    --fix-answer-mid (webrtc caller, diagnostics): copy the offer's a=mid
    into an answer that has none before aiortc sees it (aiortc refuses an
    answer whose media sections do not match the offer's).
    Result: one JSON object (--json-out, and a last stdout line "RESULT
    {...}"): SIP outcome, SDPs sent and received, media path state, what
    was sent, and what was received: packets, dominant frequency, purity,
    RMS (tone.py), RTCP packets (plain/sdes), SRTP failures (sdes).

  webrtc_peer.py sdp --local-ip IP   print the offer aiortc makes and exit.

Harness side (imported by test_webrtc_*.py and test_baresip_*.py):
BridgeLab (natlab's topology with one un-NATed caller and callee),
dir_kamailio() (icetest's kamailio with one ice_manage flag string for
SDP going toward the callee and another for SDP going toward the caller),
place_call() and the ice.session helpers.
"""

import argparse
import asyncio
import base64
import json
import os
import random
import re
import secrets
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import tone  # noqa: E402
from ice_peer import Caller, Callee, response_to, log  # noqa: E402

PPS = 50
PROTO = {"webrtc": "UDP/TLS/RTP/SAVPF", "plain": "RTP/AVP",
         "sdes": "RTP/SAVP"}


# --------------------------------------------------------------------------
# SDP helpers

def sdp_audio(text):
    """The first m=audio of an SDP: {"proto", "port", "fmts", "addr",
    "attrs": [a= lines without "a="], "session_attrs"} or None."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    sess_addr = None
    sess_attrs = []
    cur = None
    seen_m = False
    for ln in text.replace("\r\n", "\n").split("\n"):
        ln = ln.strip()
        if ln.startswith("m="):
            if cur is not None:
                break
            parts = ln[2:].split()
            seen_m = True
            if parts and parts[0] == "audio" and len(parts) >= 3:
                cur = {"port": int(parts[1].split("/")[0])
                       if parts[1].split("/")[0].isdigit() else None,
                       "proto": parts[2], "fmts": parts[3:],
                       "addr": None, "attrs": []}
            continue
        if cur is None:
            if not seen_m:
                if ln.startswith("c="):
                    p = ln[2:].split()
                    sess_addr = p[2].split("/")[0] if len(p) >= 3 else None
                elif ln.startswith("a="):
                    sess_attrs.append(ln[2:])
            continue
        if ln.startswith("c="):
            p = ln[2:].split()
            cur["addr"] = p[2].split("/")[0] if len(p) >= 3 else None
        elif ln.startswith("a="):
            cur["attrs"].append(ln[2:])
    if cur is None:
        return None
    cur["addr"] = cur["addr"] or sess_addr
    cur["session_attrs"] = sess_attrs
    return cur


def attr_values(m, name):
    """Values of a=name[:value] at media and session level."""
    out = []
    for a in m["attrs"] + m["session_attrs"]:
        k, _, v = a.partition(":")
        if k == name:
            out.append(v)
    return out


def rtcp_dest(m):
    """Where the SDP's sender wants RTCP: a=rtcp (RFC 3605) or port+1."""
    for v in attr_values(m, "rtcp"):
        p = v.split()
        if p and p[0].isdigit():
            addr = p[3] if len(p) >= 4 else m["addr"]
            return (addr, int(p[0]))
    return (m["addr"], (m["port"] or 0) + 1)


def tamper_fingerprint(sdp):
    """Change the last hex byte of every a=fingerprint line."""
    def flip(mo):
        val = mo.group(2)
        last = int(val[-2:], 16) ^ 0x5A
        return mo.group(1) + val[:-2] + "%02X" % last
    return re.sub(r"(a=fingerprint:\S+ )([0-9A-Fa-f:]+)", flip, sdp)


def add_missing_mid(answer, offer):
    """Diagnostics only (--fix-answer-mid): copy the offer's a=mid into
    an answer whose m=audio has none."""
    mo, ma = sdp_audio(offer), sdp_audio(answer)
    mids = attr_values(mo, "mid") if mo else []
    if not mids or not ma or attr_values(ma, "mid"):
        return answer
    out, done = [], False
    for ln in answer.replace("\r\n", "\n").split("\n"):
        out.append(ln)
        if ln.startswith("m=audio") and not done:
            out.append("a=mid:%s" % mids[0])
            done = True
    return "\r\n".join(out)


# --------------------------------------------------------------------------
# media: WebRTC (aiortc)

class WebRtcMedia:
    kind = "webrtc"

    def __init__(self, args):
        # aiortc is imported here: the plain peers start faster without it
        import aiortc
        from aiortc import mediastreams
        self.aiortc = aiortc
        self.args = args
        self.pc = aiortc.RTCPeerConnection()
        self.track = self._tone_track(mediastreams)
        self.states = []
        self.t0 = time.monotonic()
        self.connected = asyncio.Event()
        self.failed = asyncio.Event()
        self.connect_s = None
        self.rx_samples = []
        self.rx_rate = None
        self.rx_frames = 0
        self.rx_task = None
        self.captured = []
        self.injected = 0
        self.stray_sent = 0
        self.replayed = 0
        self.pending = []
        self.stray_sock = None
        self.stray_to = None
        self.orig_send = None
        self.error = None

        @self.pc.on("connectionstatechange")
        def _cs():
            st = self.pc.connectionState
            self.states.append((round(time.monotonic() - self.t0, 3),
                                "connection", st))
            log("connectionState %s" % st)
            if st == "connected":
                if self.connect_s is None:
                    self.connect_s = round(time.monotonic() - self.t0, 3)
                self.connected.set()
            elif st in ("failed", "closed"):
                self.failed.set()

        @self.pc.on("iceconnectionstatechange")
        def _ics():
            self.states.append((round(time.monotonic() - self.t0, 3), "ice",
                                self.pc.iceConnectionState))

        @self.pc.on("track")
        def _track(track):
            if track.kind == "audio" and self.rx_task is None:
                self.rx_task = asyncio.ensure_future(self._record(track))

    def _tone_track(self, mediastreams):
        import fractions
        import av
        freq = self.args.tone

        class ToneTrack(mediastreams.MediaStreamTrack):
            kind = "audio"

            def __init__(self):
                super().__init__()
                self.gen = tone.ToneGen(freq)
                self.start = None
                self.pts = 0

            async def recv(self):
                if self.readyState != "live":
                    raise mediastreams.MediaStreamError
                if self.start is None:
                    self.start = time.monotonic()
                else:
                    self.pts += tone.FRAME_SAMPLES
                    wait = self.start + self.pts / float(tone.RATE) - \
                        time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                frame = av.AudioFrame(format="s16", layout="mono",
                                      samples=tone.FRAME_SAMPLES)
                frame.planes[0].update(self.gen.pcm16(tone.FRAME_SAMPLES))
                frame.pts = self.pts
                frame.sample_rate = tone.RATE
                frame.time_base = fractions.Fraction(1, tone.RATE)
                return frame
        return ToneTrack()

    async def _record(self, track):
        import struct
        while True:
            try:
                frame = await track.recv()
            except Exception:  # noqa: BLE001 (MediaStreamError at the end)
                return
            self.rx_frames += 1
            self.rx_rate = frame.sample_rate
            ch = len(frame.layout.channels)
            data = bytes(frame.planes[0])
            n = len(data) // 2
            s = struct.unpack("=%dh" % n, data[:2 * n])
            self.rx_samples.extend(s[::ch] if ch > 1 else s)

    def _prefer_codecs(self, transceiver):
        from aiortc import RTCRtpSender
        want = [c.strip().upper() for c in self.args.codecs.split(",")]
        caps = RTCRtpSender.getCapabilities("audio").codecs
        prefs = []
        for w in want:
            prefs += [c for c in caps if c.mimeType.upper() == "AUDIO/" + w]
        if prefs:
            transceiver.setCodecPreferences(prefs)

    def _hook_send(self):
        """Keep copies of the SRTP packets aiortc sends (for the tamper
        tests): wrap the ICE transport's _send."""
        if self.orig_send is not None:
            return
        tr = [t for t in self.pc.getTransceivers() if t.kind == "audio"]
        if not tr or tr[0].sender.transport is None:
            return
        ice = tr[0].sender.transport.transport
        orig = ice._send
        self.orig_send = orig
        self.ice = ice

        async def hooked(data):
            rtp = len(data) > 40 and 128 <= data[0] <= 191 and \
                not tone.is_rtcp(data)
            if rtp and len(self.captured) < 50:
                self.captured.append(bytes(data))
            if rtp and self.pending:
                what = self.pending.pop(0)
                if what == "tamper":
                    # a copy with one byte of the encrypted payload flipped,
                    # ahead of the real packet: a fresh index, so only the
                    # authentication tag can catch it
                    p = bytearray(data)
                    p[len(p) - 10 - 1 - (self.injected % 8)] ^= 0x55
                    await orig(bytes(p))
                    self.injected += 1
                elif what == "stray" and self.stray_sock is not None:
                    # a valid packet with a fresh index, from a source no
                    # ICE check validated, ahead of the real one
                    self.stray_sock.sendto(bytes(data), self.stray_to)
                    self.stray_sent += 1
            await orig(data)
        ice._send = hooked

    async def offer(self):
        tr = self.pc.addTransceiver(self.track, direction="sendrecv")
        self._prefer_codecs(tr)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self._hook_send()
        sdp = self.pc.localDescription.sdp
        if self.args.tamper_fingerprint:
            sdp = tamper_fingerprint(sdp)
        return sdp

    async def accept_answer(self, sdp):
        from aiortc import RTCSessionDescription
        if self.args.fix_answer_mid:
            sdp = add_missing_mid(sdp, self.pc.localDescription.sdp)
        try:
            await self.pc.setRemoteDescription(
                RTCSessionDescription(sdp=sdp, type="answer"))
            return None
        except Exception as e:  # noqa: BLE001
            return "aiortc refused the answer: %s: %s" % (type(e).__name__,
                                                          e)

    async def answer(self, offer_sdp):
        from aiortc import RTCSessionDescription
        m = sdp_audio(offer_sdp)
        if m is None or m["proto"] != PROTO["webrtc"]:
            return None, "offer's m=audio proto is %s, need %s" % (
                m and m["proto"], PROTO["webrtc"])
        try:
            await self.pc.setRemoteDescription(
                RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as e:  # noqa: BLE001
            return None, "aiortc refused the offer: %s: %s" % (
                type(e).__name__, e)
        tr = [t for t in self.pc.getTransceivers() if t.kind == "audio"]
        if not tr:
            return None, "no audio transceiver after the offer"
        tr[0].direction = "sendrecv"
        tr[0].sender.replaceTrack(self.track)
        try:
            self._prefer_codecs(tr[0])
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except Exception as e:  # noqa: BLE001
            return None, "aiortc cannot answer: %s: %s" % (type(e).__name__,
                                                           e)
        self._hook_send()
        sdp = self.pc.localDescription.sdp
        if self.args.tamper_fingerprint:
            sdp = tamper_fingerprint(sdp)
        return sdp, None

    async def wait_up(self, timeout):
        done = asyncio.ensure_future(self.connected.wait())
        bad = asyncio.ensure_future(self.failed.wait())
        try:
            await asyncio.wait([done, bad], timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            done.cancel()
            bad.cancel()
        return self.connected.is_set()

    def start(self):
        pass  # aiortc sends on its own once DTLS is up

    async def inject(self):
        """--inject-tampered / --inject-stray / --inject-replay, 1 s into
        the media: tampered and stray copies ride along with the next
        outgoing packets (see _hook_send), replays are old packets sent
        again as they were."""
        a = self.args
        if not (a.inject_tampered or a.inject_stray or a.inject_replay):
            return
        await asyncio.sleep(1.0)
        if not self.captured or self.orig_send is None:
            self.error = "nothing captured to inject"
            return
        if a.inject_stray:
            sel = self.selected()
            if sel:
                h, p = sel["remote"].rsplit(":", 1)
                self.stray_to = (h, int(p))
                self.stray_sock = socket.socket(socket.AF_INET,
                                                socket.SOCK_DGRAM)
                self.stray_sock.bind((a.local_ip, 0))
            else:
                self.error = "no selected pair: no stray packets"
        self.pending = ["tamper"] * a.inject_tampered + \
            ["stray"] * (a.inject_stray if self.stray_sock else 0)
        end = time.monotonic() + 5
        while self.pending and time.monotonic() < end:
            await asyncio.sleep(0.05)
        if self.pending:
            self.error = "%d injections not sent" % len(self.pending)
            self.pending = []
        for i in range(a.inject_replay):
            # unmodified, long after the relay saw them: replays
            await self.orig_send(self.captured[i % len(self.captured)])
            self.replayed += 1
            await asyncio.sleep(0.01)
        if self.stray_sock is not None:
            self.stray_sock.close()
            self.stray_sock = None

    def selected(self):
        try:
            tr = [t for t in self.pc.getTransceivers() if t.kind == "audio"]
            conn = tr[0].sender.transport.transport._connection
            p = conn._nominated.get(1)  # aioice 0.8: no public accessor
            if p is None:
                return None
            lc = p.protocol.local_candidate
            return {"local": "%s:%d" % (lc.host, lc.port),
                    "remote": "%s:%d" % tuple(p.remote_addr[:2])}
        except Exception:  # noqa: BLE001
            return None

    async def stats(self):
        out = {}
        try:
            rep = await asyncio.wait_for(self.pc.getStats(), 3)
            for s in rep.values():
                if s.type == "inbound-rtp":
                    out["packets_received"] = s.packetsReceived
                elif s.type == "outbound-rtp":
                    out["packets_sent"] = s.packetsSent
                elif s.type == "transport":
                    out["dtls_state"] = getattr(s, "dtlsState", None)
        except Exception as e:  # noqa: BLE001
            out["stats_error"] = str(e)
        return out

    async def info(self):
        st = await self.stats()
        rx = tone.analyse(self.rx_samples, self.rx_rate or tone.RATE)
        rx.update({"frames": self.rx_frames, "rate": self.rx_rate,
                   "packets": st.get("packets_received", 0)})
        dtls = None
        try:
            tr = [t for t in self.pc.getTransceivers() if t.kind == "audio"]
            dtls = tr[0].sender.transport.state
        except Exception:  # noqa: BLE001
            pass
        return {"connected": self.connected.is_set(),
                "connect_s": self.connect_s, "states": self.states,
                "dtls": dtls, "selected": self.selected(),
                "tx": {"packets": st.get("packets_sent", 0),
                       "tone": self.args.tone},
                "rx": rx, "captured": len(self.captured),
                "injected": self.injected, "stray_sent": self.stray_sent,
                "replayed": self.replayed,
                "error": self.error}

    async def close(self):
        if self.rx_task:
            self.rx_task.cancel()
        try:
            await asyncio.wait_for(self.pc.close(), 5)
        except Exception:  # noqa: BLE001
            pass


# --------------------------------------------------------------------------
# media: plain RTP and SDES-SRTP

SDES_SUITES = (("AES_CM_128_HMAC_SHA1_80", "SRTP_PROFILE_AES128_CM_SHA1_80"),
               ("AES_CM_128_HMAC_SHA1_32", "SRTP_PROFILE_AES128_CM_SHA1_32"))


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, cb):
        self.cb = cb

    def datagram_received(self, data, addr):
        self.cb(data, addr)


class PlainMedia:
    """RTP on --media-port, RTCP on --media-port + 1 (symmetric: each sent
    from the port it is received on); kind sdes adds SRTP."""

    def __init__(self, args, kind):
        self.args = args
        self.kind = kind
        self.proto = PROTO[kind]
        self.rtp_tr = self.rtcp_tr = None
        self.remote = None          # sdp_audio() of the other side
        self.dest = self.rtcp_to = None
        self.mux = False
        self.rec = tone.RtpRecorder()
        self.rx_sources = {}
        self.rtcp_rx = 0
        self.rtcp_rx_sources = {}
        self.rtcp_on_rtp_port = 0
        self.srtp_fail = 0
        self.srtcp_fail = 0
        self.sender = tone.RtpToneSender(args.tone,
                                         random.getrandbits(32) | 1)
        self.tx = 0
        self.tx_octets = 0
        self.rtcp_tx = 0
        self.task = None
        self.first_rx = None
        self.t0 = time.monotonic()
        self.tx_srtp = self.rx_srtp = None
        self.crypto_tag = None
        self.my_key = secrets.token_bytes(30)
        self.suite = None
        self.offer_info = None

    async def open(self):
        loop = asyncio.get_event_loop()
        port = self.args.media_port
        self.rtp_tr, _ = await loop.create_datagram_endpoint(
            lambda: _Proto(self._rx_rtp), local_addr=(self.args.local_ip,
                                                      port))
        port = self.rtp_tr.get_extra_info("sockname")[1]
        self.port = port
        self.rtcp_tr, _ = await loop.create_datagram_endpoint(
            lambda: _Proto(self._rx_rtcp), local_addr=(self.args.local_ip,
                                                       port + 1))

    # -- receive
    def _rx_rtp(self, data, addr):
        k = "%s:%d" % addr[:2]
        self.rx_sources[k] = self.rx_sources.get(k, 0) + 1
        if tone.is_rtcp(data):
            self.rtcp_on_rtp_port += 1
            return
        if self.rx_srtp is not None:
            try:
                data = self.rx_srtp.unprotect(data)
            except Exception:  # noqa: BLE001
                self.srtp_fail += 1
                return
        if self.rec.add(data) is not None and self.first_rx is None:
            self.first_rx = round(time.monotonic() - self.t0, 3)

    def _rx_rtcp(self, data, addr):
        k = "%s:%d" % addr[:2]
        self.rtcp_rx_sources[k] = self.rtcp_rx_sources.get(k, 0) + 1
        if self.rx_srtp is not None:
            try:
                data = self.rx_srtp.unprotect_rtcp(data)
            except Exception:  # noqa: BLE001
                self.srtcp_fail += 1
                return
        if tone.is_rtcp(data):
            self.rtcp_rx += 1

    # -- SDP
    def _sdp(self, crypto=None):
        ip = self.args.local_ip
        sid = random.randint(10 ** 6, 10 ** 9)
        lines = ["v=0", "o=- %d 1 IN IP4 %s" % (sid, ip), "s=-",
                 "c=IN IP4 %s" % ip, "t=0 0",
                 "m=audio %d %s 0" % (self.port, self.proto),
                 "a=rtpmap:0 PCMU/8000", "a=ptime:20", "a=sendrecv"]
        for c in crypto or []:
            lines.append("a=crypto:%s" % c)
        return "\r\n".join(lines) + "\r\n"

    def _key_b64(self):
        return base64.b64encode(self.my_key).decode()

    def _policy(self, key, profile_name, outbound):
        import pylibsrtp
        P = pylibsrtp.Policy
        return pylibsrtp.Session(P(
            key=key, ssrc_type=(P.SSRC_ANY_OUTBOUND if outbound
                                else P.SSRC_ANY_INBOUND),
            srtp_profile=getattr(P, profile_name)))

    @staticmethod
    def _parse_crypto(v):
        """'1 AES_CM_128_HMAC_SHA1_80 inline:KEY|2^31|1:1' -> (tag, suite,
        key bytes) or None."""
        p = v.split()
        if len(p) < 3 or not p[2].startswith("inline:"):
            return None
        key = p[2][7:].split("|")[0]
        try:
            raw = base64.b64decode(key + "=" * (-len(key) % 4))
        except ValueError:
            return None
        return (p[0], p[1], raw)

    async def offer(self):
        if self.kind != "sdes":
            return self._sdp()
        crypto = ["%d %s inline:%s" % (i + 1, s, self._key_b64())
                  for i, (s, _) in enumerate(SDES_SUITES)]
        return self._sdp(crypto)

    def _check_remote(self, sdp, is_offer):
        m = sdp_audio(sdp)
        if m is None:
            return "no m=audio"
        if m["proto"] != self.proto:
            return "m=audio proto is %s, this %s peer needs %s" % (
                m["proto"], self.kind, self.proto)
        if "0" not in m["fmts"]:
            return "no PCMU (payload type 0) in m=audio %s" % " ".join(
                m["fmts"])
        if not m["port"]:
            return "m=audio port 0"
        self.remote = m
        self.dest = (m["addr"], m["port"])
        self.mux = "rtcp-mux" in [a.split(":")[0] for a in m["attrs"]] \
            and not is_offer  # as an old phone, we never accept mux
        self.rtcp_to = self.dest if self.mux else rtcp_dest(m)
        return None

    async def accept_answer(self, sdp):
        why = self._check_remote(sdp, False)
        if why:
            return why
        if self.kind == "sdes":
            cr = [self._parse_crypto(v) for v in attr_values(self.remote,
                                                            "crypto")]
            cr = [c for c in cr if c]
            if not cr:
                return "answer has no usable a=crypto"
            tag, suite, key = cr[0]
            prof = dict(SDES_SUITES).get(suite)
            if prof is None or len(key) != 30:
                return "answer's a=crypto suite %s / key length %d not " \
                    "supported" % (suite, len(key))
            self.suite = suite
            self.tx_srtp = self._policy(self.my_key, prof, True)
            self.rx_srtp = self._policy(key, prof, False)
        return None

    async def answer(self, offer_sdp):
        why = self._check_remote(offer_sdp, True)
        if why:
            return None, why
        if self.kind != "sdes":
            return self._sdp(), None
        for v in attr_values(self.remote, "crypto"):
            c = self._parse_crypto(v)
            if c and c[1] in dict(SDES_SUITES) and len(c[2]) == 30:
                tag, suite, key = c
                prof = dict(SDES_SUITES)[suite]
                self.suite = suite
                self.rx_srtp = self._policy(key, prof, False)
                self.tx_srtp = self._policy(self.my_key, prof, True)
                return self._sdp(["%s %s inline:%s" % (
                    tag, suite, self._key_b64())]), None
        return None, "no supported a=crypto in the offer (%s)" % (
            attr_values(self.remote, "crypto") or "none")

    async def wait_up(self, timeout):
        return True

    def start(self):
        if self.task is None:
            self.task = asyncio.ensure_future(self._send_loop())

    async def _send_loop(self):
        nxt = time.monotonic()
        next_rtcp = nxt + 1.0
        while True:
            pkt = self.sender.next()
            self.tx_octets += len(pkt) - 12
            if self.tx_srtp is not None:
                pkt = self.tx_srtp.protect(pkt)
            self.rtp_tr.sendto(pkt, self.dest)
            self.tx += 1
            now = time.monotonic()
            if now >= next_rtcp and self.rtcp_to and self.rtcp_to[1]:
                sr = tone.rtcp_sr(self.sender.ssrc, self.tx, self.tx_octets,
                                  self.sender.ts)
                if self.tx_srtp is not None:
                    sr = self.tx_srtp.protect_rtcp(sr)
                (self.rtp_tr if self.mux else self.rtcp_tr).sendto(
                    sr, self.rtcp_to)
                self.rtcp_tx += 1
                next_rtcp = now + 1.0
            nxt += 1.0 / PPS
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))

    async def inject(self):
        return

    async def info(self):
        rx = self.rec.summary()
        rx.update({"sources": self.rx_sources, "first_rx_s": self.first_rx,
                   "rtcp": self.rtcp_rx, "rtcp_sources": self.rtcp_rx_sources,
                   "rtcp_on_rtp_port": self.rtcp_on_rtp_port,
                   "srtp_unprotect_failures": self.srtp_fail,
                   "srtcp_unprotect_failures": self.srtcp_fail})
        return {"connected": True, "rtp_port": getattr(self, "port", None),
                "dest": self.dest and "%s:%s" % self.dest,
                "rtcp_dest": self.rtcp_to and "%s:%s" % self.rtcp_to,
                "rtcp_mux": self.mux, "sdes_suite": self.suite,
                "tx": {"packets": self.tx, "rtcp": self.rtcp_tx,
                       "tone": self.args.tone},
                "rx": rx}

    async def close(self):
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        for tr in (self.rtp_tr, self.rtcp_tr):
            if tr:
                tr.close()


def make_media(args):
    if args.kind == "webrtc":
        return WebRtcMedia(args)
    return PlainMedia(args, args.kind)


# --------------------------------------------------------------------------
# SIP roles on top of ice_peer's UA

def _ua_args(a):
    """What ice_peer's UA classes read from their args."""
    return argparse.Namespace(
        role=a.role, local_ip=a.local_ip, sip_port=a.sip_port,
        call_id=a.call_id, proxy=a.proxy, ruri=a.ruri,
        sip_timeout=a.sip_timeout, no_ice=True, media_port=a.media_port,
        stun=None, tamper_pwd=False, send_anyway=False, controlling=False,
        controlled=False, restart_after=0, state_file=None,
        ice_timeout=a.connect_timeout, duration=a.duration, linger=0.3)


class MediaCaller(Caller):
    def __init__(self, args, media):
        super().__init__(_ua_args(args))
        self.a = args
        self.media = media

    async def run(self):
        a = self.a
        await self.open()
        pump = asyncio.ensure_future(self.pump())
        try:
            if isinstance(self.media, PlainMedia):
                await self.media.open()
            offer = await self.media.offer()
            self.result["sdp_sent"].append(offer)
            # like Caller.invite, but keeping the final status
            resp = await self.transaction("INVITE", offer.encode(),
                                          timeout=a.sip_timeout)
            self.result["invite_status"] = resp.status if resp else None
            if resp is None:
                return False
            if not 200 <= resp.status < 300:
                self.err("INVITE answered %d %s%s" % (
                    resp.status, resp.reason,
                    " (Warning: %s)" % resp.header("warning")
                    if resp.header("warning") else ""))
                return False
            self.remote_tag = resp.tag("to")
            self.route_set = list(reversed(resp.record_routes()))
            self.remote_target = resp.contact_uri() or self.ruri
            self.ack(resp)
            self.result["sip_ok"] = True
            body = resp.body.decode("utf-8", "replace")
            self.result["sdp_received"].append(body)
            why = await self.media.accept_answer(body)
            if why:
                self.err(why)
                self.result["answer_rejected"] = why
            else:
                up = await self.media.wait_up(a.connect_timeout)
                if not up:
                    self.err("media path not up after %.0fs" %
                             a.connect_timeout)
                self.media.start()
                inj = asyncio.ensure_future(self.media.inject())
                await asyncio.sleep(a.duration)
                if not inj.done():
                    inj.cancel()
            self.result["media"] = await self.media.info()
            bye = await self.transaction("BYE", in_dialog=True, timeout=6)
            self.result["bye_status"] = bye.status if bye else None
            return bye is not None and bye.status == 200 and not why
        finally:
            pump.cancel()


class MediaCallee(Callee):
    def __init__(self, args, media):
        super().__init__(_ua_args(args))
        self.a = args
        self.media = media
        self.answer_sdp = None
        self.inj = None

    async def answer_invite(self, req, addr, first):
        extra = [("Contact", self.contact("callee"))]
        if first:
            self.call_id = req.header("call-id")
            self.result["call_id"] = self.call_id
        self.send(response_to(req, 100, "Trying", None), addr)
        body = req.body.decode("utf-8", "replace")
        self.result["sdp_received"].append(body)
        if not first and self.answer_sdp:
            sdp = self.answer_sdp   # re-INVITE: same answer, same media
        else:
            if isinstance(self.media, PlainMedia):
                await self.media.open()
            sdp, why = await self.media.answer(body)
            if sdp is None:
                self.err("rejecting the offer: " + why)
                self.result["offer_rejected"] = why
                rej = response_to(req, 488, "Not Acceptable Here",
                                  self.local_tag,
                                  [("Warning", '399 webrtc-peer "%s"' %
                                    why.replace('"', "'"))])
                self.last_resp[req.branch()] = rej
                self.send(rej, addr)
                self.done.set()
                return
            self.answer_sdp = sdp
            r180 = response_to(req, 180, "Ringing", self.local_tag, extra,
                               rr=True)
            self.send(r180, addr)
            await asyncio.sleep(0.1)
        self.result["sdp_sent"].append(sdp)
        r200 = response_to(req, 200, "OK", self.local_tag, extra,
                           body=sdp.encode(), rr=True)
        self.last_resp[req.branch()] = r200
        self.send(r200, addr)
        cseq = req.cseq()[0]
        self.pending[cseq] = asyncio.ensure_future(
            self.retransmit_200(r200, addr, cseq))
        self.result["sip_ok"] = True
        if first:
            self.connect_tasks.append(asyncio.ensure_future(self._media()))

    async def _media(self):
        up = await self.media.wait_up(self.a.connect_timeout)
        if not up:
            self.err("media path not up after %.0fs" % self.a.connect_timeout)
        self.media.start()
        await self.media.inject()


async def run_call(args):
    media = make_media(args)
    ua = MediaCaller(args, media) if args.role == "caller" else \
        MediaCallee(args, media)
    ok = False
    try:
        ok = await asyncio.wait_for(ua.run(), args.timeout)
    except asyncio.TimeoutError:
        ua.err("timed out after %ss" % args.timeout)
    except Exception as e:  # noqa: BLE001
        ua.err("exception: %s: %s" % (type(e).__name__, e))
        import traceback
        traceback.print_exc()
    res = ua.result
    if "media" not in res:
        try:
            res["media"] = await asyncio.wait_for(media.info(), 5)
        except Exception as e:  # noqa: BLE001
            res["media"] = {"error": "info: %s" % e}
    res["kind"] = args.kind
    res["ok"] = bool(ok)
    res["sip_trace"] = ua.trace
    if args.wav_out:
        try:
            if isinstance(media, PlainMedia):
                tone.write_wav(args.wav_out, media.rec.pcm())
            elif media.rx_samples:
                tone.write_wav(args.wav_out, media.rx_samples,
                               media.rx_rate or tone.RATE)
        except Exception as e:  # noqa: BLE001
            log("wav: %s" % e)
    await media.close()
    if ua.transport:
        ua.transport.close()
    return res


async def print_offer(args):
    media = WebRtcMedia(args)
    try:
        return await asyncio.wait_for(media.offer(), 10)
    finally:
        await media.close()


# --------------------------------------------------------------------------
# harness side: imported by test_webrtc_*.py (runs on the host, as root)

WEBRTC_PEER = os.path.abspath(__file__)
PY = "/usr/bin/python3"


def _lab_modules():
    import icetest
    import natlab
    return icetest, natlab


def dir_kamailio(t, ns, ip, offer_flags, answer_flags, name="kamailio"):
    """natlab's kamailio (initial requests go to their Request-URI) with
    the ice_manage() flags chosen by the direction the SDP travels:
    offer_flags for SDP going toward the callee (the initial INVITE and
    other caller->callee requests, replies to callee->caller requests),
    answer_flags for SDP going toward the caller (replies to the INVITE,
    callee->caller requests such as a callee's re-INVITE). In-dialog
    direction: rr's is_direction() (append_fromtag); a reply goes the
    other way than its request (a reply route per direction). Started."""
    it, nl = _lab_modules()
    mark = "@@WEBRTC_FLAGS@@"
    k = nl.LabKamailio(t, ns, ip, mark, name)
    with open(k.cfg) as f:
        cfg = f.read()
    call = 'ice_manage("%s");\n\t\t$var(icerc) = $rc;' % mark

    def manage(up_flags, down_flags):
        return ('if (has_totag() && is_direction("upstream")) {\n'
                '\t\t\tice_manage("%s");\n\t\t\t$var(icerc) = $rc;\n'
                '\t\t} else {\n\t\t\tice_manage("%s");\n'
                '\t\t\t$var(icerc) = $rc;\n\t\t}' % (up_flags, down_flags))

    def reply_call(flags):
        return 'ice_manage("%s");\n\t\t$var(icerc) = $rc;' % flags

    edits = [
        ('modparam("rr", "enable_full_lr", 1)\n',
         'modparam("rr", "enable_full_lr", 1)\n'
         'modparam("rr", "append_fromtag", 1)\n'),
        ('\t\tt_on_reply("MREPLY");\n',
         '\t\tif (has_totag() && is_direction("upstream")) {\n'
         '\t\t\tt_on_reply("MREPLY_UP");\n\t\t} else {\n'
         '\t\t\tt_on_reply("MREPLY");\n\t\t}\n'),
    ]
    for old, new_ in edits:
        if cfg.count(old) != 1:
            raise it.TestError("webrtc_peer: %r not found once in icetest's "
                               "config template; update dir_kamailio" % old)
        cfg = cfg.replace(old, new_)
    if cfg.count(call) != 2:
        raise it.TestError("webrtc_peer: expected two ice_manage() calls "
                           "(request route, reply route) in icetest's "
                           "config template, found %d" % cfg.count(call))
    i = cfg.index(call)
    j = cfg.index(call, i + 1)
    r0 = cfg.index("onreply_route[MREPLY]")
    r1 = cfg.index("failure_route[")
    if not i < r0 < j < r1:
        raise it.TestError("webrtc_peer: the config template's route order "
                           "changed; update dir_kamailio")
    reply_down = cfg[r0:r1].replace(call, reply_call(answer_flags))
    reply_up = cfg[r0:r1].replace(call, reply_call(offer_flags)).replace(
        "onreply_route[MREPLY]", "onreply_route[MREPLY_UP]", 1)
    cfg = (cfg[:i] + manage(answer_flags, offer_flags) +
           cfg[i + len(call):r0] + reply_down + reply_up + cfg[r1:])
    with open(k.cfg, "w") as f:
        f.write(cfg)
    k.flags = "to callee: %s / to caller: %s" % (offer_flags, answer_flags)
    k.offer_flags, k.answer_flags = offer_flags, answer_flags
    t.kams.append(k)
    k.start()
    t.log("kamailio: ice_manage(\"%s\") on SDP toward the callee, "
          "ice_manage(\"%s\") toward the caller" % (offer_flags,
                                                    answer_flags))
    return k


class BridgeLab:
    """natlab's topology with one caller and one callee, no NAT:
    <prefix>pub (kamailio + relay 198.51.100.1), <prefix>caller-none
    (198.51.100.11, SIP 5070), <prefix>callee-none (198.51.100.12, SIP
    5091)."""

    def __init__(self, t):
        it, nl = _lab_modules()
        self.t = t
        self.nl = nl
        self.lab = nl.NatLab(t, callers=("none",), callees=("none",))
        self.caller = self.lab.endpoints[("caller", "none")]
        self.callee = self.lab.endpoints[("callee", "none")]
        self.kam_ip = nl.KAM_IP
        self.pub = self.lab.pub

    def kamailio(self, offer_flags, answer_flags, name):
        return dir_kamailio(self.t, self.pub, self.kam_ip, offer_flags,
                            answer_flags, name)


def _peer_proc(t, ns, name, argv, timeout):
    it, nl = _lab_modules()
    p = nl.PeerProc(t, ns, name, [], timeout)
    p.argv = ["ip", "netns", "exec", ns.name, PY, WEBRTC_PEER] + \
        list(argv) + ["--json-out", p.json]
    return p


def place_call(t, lab, kam, caller_kind, callee_kind, call_id, duration=4.0,
             caller_args=(), callee_args=(), caller_tone=440.0,
             callee_tone=1000.0, timeout=25, during=None):
    """One call caller -> callee through kam. Returns {"caller", "callee"
    (peer JSON), "rc_caller", "rc_callee", "sessions" (ice.session
    snapshots while the call was up), "stats" (ice: statistics at the
    end), "rcs" (ice_manage return codes), "log" (kamailio lines of this
    call), "wav": {side: path}}."""
    it, nl = _lab_modules()
    name = call_id.split("@")[0]
    wav = {s: os.path.join(t.dir, "peers", "%s-%s.wav" % (name, s))
           for s in ("caller", "callee")}
    ce, cr = lab.callee, lab.caller
    uas = _peer_proc(t, ce.ns, name + "-callee",
                     ["call", "--kind", callee_kind, "--role", "callee",
                      "--local-ip", ce.ip, "--sip-port", str(ce.sip_port),
                      "--media-port", "7000", "--tone", str(callee_tone),
                      "--timeout", str(timeout + 5), "--wav-out",
                      wav["callee"]] + list(callee_args), timeout + 10)
    uas.start()
    uas.wait_ready(timeout=10)
    ruri = "sip:callee@%s:%d" % (ce.public_ip, ce.sip_port)
    uac = _peer_proc(t, cr.ns, name + "-caller",
                     ["call", "--kind", caller_kind, "--role", "caller",
                      "--local-ip", cr.ip, "--sip-port", str(cr.sip_port),
                      "--proxy", "%s:5060" % lab.kam_ip, "--ruri", ruri,
                      "--call-id", call_id, "--media-port", "6000",
                      "--tone", str(caller_tone), "--duration",
                      str(duration), "--timeout", str(timeout), "--wav-out",
                      wav["caller"]] + list(caller_args), timeout + 5)
    uac.start()
    snaps = []
    deadline = time.monotonic() + timeout + 5
    state = {"uac": uac, "uas": uas, "kam": kam, "call_id": call_id}
    while uac.running() and time.monotonic() < deadline:
        if t.has_module:
            try:
                s = t.ice_session(kam, call_id)
                if s:
                    snaps.append(s)
            except (it.RpcError, OSError):
                pass
        if during is not None:
            during(state)
        time.sleep(0.3)
    rc_uac = uac.wait(timeout=5)
    rc_uas = uas.wait(timeout=8)
    stats = {}
    if t.has_module:
        try:
            stats = ice_stats(kam)
        except Exception as e:  # noqa: BLE001
            stats = {"error": str(e)}
    res = {"caller": uac.result() or {}, "callee": uas.result() or {},
           "rc_caller": rc_uac, "rc_callee": rc_uas, "sessions": snaps,
           "stats": stats, "rcs": kam.manage_rcs(call_id),
           "log": kam.lines_for(call_id), "wav": wav,
           "logs": {"caller": uac.logfile, "callee": uas.logfile}}
    return res


def ice_stats(kam):
    """ice:* statistics as {name: int} (kamcmd stats.get_statistics ice:)."""
    r = kam.rpc("stats.get_statistics", "ice:")
    out = {}
    for item in r or []:
        if isinstance(item, str) and "=" in item:
            k, v = item.split("=", 1)
            k = k.strip().split(":", 1)[-1]
            try:
                out[k] = int(v.strip())
            except ValueError:
                out[k] = v.strip()
    return out


# ice.session fields (modules/ice/ice_rpc.c): per leg, per stream
SESSION_DTLS = "dtls"  # none|new|handshaking|connected|failed|closed
SESSION_CRYPTO = "crypto"          # none|dtls-srtp|sdes-srtp
SESSION_PROFILE = "srtp_profile"
SESSION_AUTH_FAIL = "srtp_auth_failures"
SESSION_REPLAYS = "srtp_replays"


def leg_stream(session, role):
    """The first stream of the leg with this role ("caller"/"callee")."""
    for leg in (session or {}).get("legs", []) or []:
        if leg.get("role") == role:
            sts = leg.get("streams") or []
            return sts[0] if sts else {}
    return None


def best_snapshot(snaps, role, pred):
    """The last snapshot whose stream of role satisfies pred, else the
    last snapshot."""
    for s in reversed(snaps):
        st = leg_stream(s, role)
        if st is not None and pred(st):
            return s
    return snaps[-1] if snaps else None


def module_why(res):
    """The module's own ice_manage log lines for this call (why -1)."""
    return [ln for ln in res.get("log", []) if "ice_manage" in ln and
            "ICETEST" not in ln]


def sdp_brief(text):
    return "\n".join("        " + ln for ln in (text or "").splitlines())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", nargs="?", default="call",
                    choices=("call", "sdp"))
    ap.add_argument("--kind", choices=("webrtc", "plain", "sdes"),
                    default="webrtc")
    ap.add_argument("--role", choices=("caller", "callee"), default="caller")
    ap.add_argument("--local-ip", required=True)
    ap.add_argument("--sip-port", type=int, default=5070)
    ap.add_argument("--proxy", help="caller: kamailio host:port")
    ap.add_argument("--ruri", help="caller: Request-URI")
    ap.add_argument("--call-id")
    ap.add_argument("--media-port", type=int, default=0,
                    help="plain/sdes: RTP port (RTCP port + 1)")
    ap.add_argument("--tone", type=float, default=440.0)
    ap.add_argument("--codecs", default="PCMU",
                    help="webrtc: codec preference, e.g. PCMU,opus")
    ap.add_argument("--duration", type=float, default=4.0,
                    help="caller: seconds of media once the path is up")
    ap.add_argument("--connect-timeout", type=float, default=8.0)
    ap.add_argument("--sip-timeout", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--tamper-fingerprint", action="store_true")
    ap.add_argument("--inject-tampered", type=int, default=0)
    ap.add_argument("--inject-stray", type=int, default=0)
    ap.add_argument("--inject-replay", type=int, default=0)
    ap.add_argument("--fix-answer-mid", action="store_true",
                    help="diagnostics: add the offer's a=mid to an answer "
                    "that lacks it before aiortc sees it")
    ap.add_argument("--wav-out")
    ap.add_argument("--json-out")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    import logging
    logging.basicConfig(level=logging.DEBUG if args.verbose else
                        logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    if args.command == "sdp":
        print(asyncio.run(print_offer(args)), end="")
        return 0
    if args.role == "caller" and not (args.proxy and args.ruri):
        ap.error("caller needs --proxy and --ruri")
    res = asyncio.run(run_call(args))
    js = json.dumps(res)
    if args.json_out:
        tmp = args.json_out + ".tmp"
        with open(tmp, "w") as f:
            f.write(js)
        os.rename(tmp, args.json_out)
    print("RESULT " + js, flush=True)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
