#!/usr/bin/env python3
"""baresip_bridge: a real SIP softphone with DTLS-SRTP or SDES-SRTP
(Debian's baresip-core 1.0.0: modules dtls_srtp, srtp, ice, g711, ausine,
sndfile) bridged by the relay to webrtc_peer.py's plain RTP phone.

  (f1) baresip caller, DTLS-SRTP + ICE + rtcp-mux (mediaenc=dtls_srtp,
       medianat=ice, rtcp_mux yes) -> plain RTP callee
         toward the callee: ice_manage("RTP/AVP remove")
         toward the caller: ice_manage("UDP/TLS/RTP/SAVPF force")
  (f2) baresip caller, SDES-SRTP (mediaenc=srtp-mand: RTP/SAVP + a=crypto)
       -> plain RTP callee
         toward the callee: ice_manage("RTP/AVP remove")
         toward the caller: ice_manage("RTP/SAVP sdes remove")
  (f3) plain RTP caller -> baresip callee, DTLS-SRTP + ICE (auto answer)
         toward the callee: ice_manage("UDP/TLS/RTP/SAVPF force")
         toward the caller: ice_manage("RTP/AVP remove")
  (f4) plain RTP caller -> baresip callee, SDES-SRTP (auto answer)
         toward the callee: ice_manage("RTP/SAVP sdes remove")
         toward the caller: ice_manage("RTP/AVP remove")

baresip runs headless with its config dir in the test's directory: it
sends a 440 Hz (caller) or 1000 Hz (callee) sine from ausine, plays into
aubridge (nowhere), and its sndfile module records what it decodes to a
WAV file that the test analyses (tone.py). A caller baresip dials with -e
"/dial ..." and quits after -t seconds (its BYE ends the call); a callee
baresip answers by itself (answermode=auto) and is stopped after the
plain caller's BYE. ICE needs a STUN server in baresip: natlab's coturn.

Checked: ice_manage returns 1 for every SDP (baresip's ICE sends a
re-INVITE once ICE completes); the SDP baresip gets (RTP/SAVP + the
relay's a=crypto, or UDP/TLS/RTP/SAVPF + the relay's ICE + a sha-256
fingerprint) and the one the plain phone gets (RTP/AVP, none of those);
the tone each side hears (within 5%); baresip's log says its SRTP is up
("DTLS-SRTP complete" / "SRTP is Enabled"); ice.session shows the baresip
leg with crypto dtls-srtp (dtls connected) or sdes-srtp, an SRTP profile
and no auth failures.
Skipped, with the reason, when baresip or one of its modules is missing.
Env: BARESIP_CASES (default "f1 f2 f3 f4"), BARESIP (binary).
"""
import glob
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import icetest as it  # noqa: E402
import tone  # noqa: E402
import test_webrtc_bridge as wb  # noqa: E402
import test_webrtc_sdes as ws  # noqa: E402
import webrtc_peer as wp  # noqa: E402

BARESIP = os.environ.get("BARESIP", "/usr/bin/baresip")
MODDIR = "/usr/lib/baresip/modules"
CASES = os.environ.get("BARESIP_CASES", "f1 f2 f3 f4").split()
CALL_S = 6          # baresip caller: -t (setup + media)
MEDIA_S = 4         # plain caller: seconds of media
NEEDED = {"dtls": ["g711", "ausine", "aubridge", "sndfile", "account",
                   "menu", "dtls_srtp", "ice"],
          "sdes": ["g711", "ausine", "aubridge", "sndfile", "account",
                   "menu", "srtp"]}
PLAN = {
    # case: (baresip role, crypto, flags toward callee, toward caller)
    "f1": ("caller", "dtls", "RTP/AVP remove", "UDP/TLS/RTP/SAVPF force"),
    "f2": ("caller", "sdes", "RTP/AVP remove", "RTP/SAVP sdes remove"),
    "f3": ("callee", "dtls", "UDP/TLS/RTP/SAVPF force", "RTP/AVP remove"),
    "f4": ("callee", "sdes", "RTP/SAVP sdes remove", "RTP/AVP remove"),
}
TONE = {"caller": 440.0, "callee": 1000.0}

CONFIG = """# baresip config written by test_baresip_bridge.py
poll_method		epoll
sip_listen		%(ip)s:%(sip_port)d
call_local_timeout	30
audio_player		aubridge,nil
audio_alert		aubridge,nil
audio_source		ausine,%(tone)d
ausrc_srate		48000
ausrc_channels		2
auplay_srate		48000
auplay_channels		2
rtp_ports		20000-20999
rtcp_mux		%(mux)s
rtp_timeout		0
net_interface		pub0
snd_path		%(snd)s
module_path		%(mods)s
%(modules)s
module_app		account.so
module_app		menu.so
"""


def missing_modules(crypto):
    return [m for m in NEEDED[crypto]
            if not os.path.exists(os.path.join(MODDIR, m + ".so"))]


class Baresip:
    def __init__(self, t, ns, name, ip, sip_port, role, crypto, tone_hz,
                 kam_ip, stun):
        self.t = t
        self.ns = ns
        self.dir = os.path.join(t.dir, name)
        self.snd = os.path.join(self.dir, "snd")
        os.makedirs(self.snd, exist_ok=True)
        self.log = os.path.join(self.dir, "baresip.log")
        mods = [m for m in NEEDED[crypto] if m not in ("account", "menu")]
        if crypto == "dtls":
            mods.append("stun")
        mods = [m for m in mods if os.path.exists(os.path.join(
            MODDIR, m + ".so"))]
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write(CONFIG % {
                "ip": ip, "sip_port": sip_port, "tone": int(tone_hz),
                "mux": "yes" if crypto == "dtls" else "no",
                "snd": self.snd, "mods": MODDIR,
                "modules": "\n".join("module\t\t\t%s.so" % m for m in mods)})
        user = "callee" if role == "callee" else "baresip"
        params = ["regint=0", "audio_codecs=PCMU",
                  'outbound="sip:%s:5060;lr"' % kam_ip]
        if crypto == "dtls":
            params += ["mediaenc=dtls_srtp", "medianat=ice",
                       "stunserver=stun:%s" % stun]
        else:
            params += ["mediaenc=srtp-mand"]
        if role == "callee":
            params.append("answermode=auto")
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write("<sip:%s@%s:%d>;%s\n" % (user, ip, sip_port,
                                             ";".join(params)))
        for fn in ("contacts", "uuid"):
            open(os.path.join(self.dir, fn), "a").close()
        self.proc = None
        self.fh = None

    def start(self, *extra):
        self.fh = open(self.log, "wb")
        argv = ["ip", "netns", "exec", self.ns.name, BARESIP, "-f", self.dir,
                "-v", "-s"] + list(extra)
        self.proc = subprocess.Popen(argv, cwd=self.dir,
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.fh,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.t.defer(self.stop, "baresip %s" % self.dir)
        self.t.log("baresip started (pid %d): %s" % (self.proc.pid,
                                                     " ".join(extra)))
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=4)
            except subprocess.TimeoutExpired:
                continue
        try:
            self.fh.close()
        except Exception:  # noqa: BLE001
            pass

    def wait_listening(self, ip, port, timeout=8):
        def bound():
            if self.proc.poll() is not None:
                raise it.TestError("baresip exited early (rc=%s):\n%s" % (
                    self.proc.returncode, it.tail(self.log, 30)))
            r = self.ns.run(["ss", "-Huln", "sport = :%d" % port],
                            check=False)
            return ip in r.stdout
        if not it.wait_for(bound, timeout):
            raise it.TestError("baresip did not bind %s:%d:\n%s" % (
                ip, port, it.tail(self.log, 30)))

    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def received_sdps(self, me):
        """SDP bodies of the SIP messages baresip received (its -s trace:
        a line "UDP a -> b", the message, an escape line), for me =
        "ip:port"."""
        out = []
        cur = None
        for ln in self.log_text().splitlines():
            if ln.startswith("UDP ") and " -> " in ln:
                cur = [] if ln.split(" -> ", 1)[1].strip() == me else None
                continue
            if cur is None:
                continue
            if ln.startswith("\x1b[") or ln.startswith("[;m"):
                text = "\r\n".join(cur)
                if "\nm=audio" in text.replace("\r\n", "\n"):
                    first = cur[0] if cur else ""
                    body = text.split("\r\n\r\n", 1)[-1]
                    out.append((first, body))
                cur = None
                continue
            cur.append(ln)
        return out

    def heard(self):
        """tone.analyse() of the WAV sndfile wrote of what baresip
        decoded (the largest *dec*.wav), with its path."""
        files = sorted(glob.glob(os.path.join(self.snd, "*dec*.wav")),
                       key=os.path.getsize)
        if not files:
            return {"freq": None, "error": "no *dec*.wav in %s (%s)" % (
                self.snd, os.listdir(self.snd))}
        samples, rate = tone.read_wav(files[-1])
        r = tone.analyse(samples, rate)
        r["wav"] = files[-1]
        r["rate"] = rate
        return r


def find_call_id(t, kam, seen):
    for s in t.ice_sessions(kam):
        cid = s.get("call_id")
        if cid and cid not in seen:
            return cid
    return None


def poll_sessions(t, kam, cid_box, seen, snaps, alive, timeout):
    deadline = time.monotonic() + timeout
    while alive() and time.monotonic() < deadline:
        try:
            if cid_box[0] is None:
                cid_box[0] = find_call_id(t, kam, seen)
            if cid_box[0]:
                s = t.ice_session(kam, cid_box[0])
                if s:
                    snaps.append(s)
        except (it.RpcError, OSError):
            pass
        time.sleep(0.3)


def run_case(t, lab, case, seen):
    role, crypto, to_callee, to_caller = PLAN[case]
    label = "(%s) baresip %s %s" % (case, crypto.upper(), role)
    miss = missing_modules(crypto)
    if miss:
        t.skipped.append(case)
        t.log("SKIP  %s: baresip modules missing in %s: %s" % (
            label, MODDIR, ", ".join(miss)))
        return
    kam = lab.kamailio(to_callee, to_caller, "kam-" + case)
    stun = "%s:%d" % (lab.nl.STUN_IPS[0], lab.nl.STUN_PORT)
    try:
        snaps, cid = [], [None]
        plain_role = "callee" if role == "caller" else "caller"
        ep = lab.caller if role == "caller" else lab.callee
        bs = Baresip(t, ep.ns, "baresip-" + case, ep.ip, ep.sip_port, role,
                     crypto, TONE[role], lab.kam_ip, stun)
        pe = lab.callee if role == "caller" else lab.caller
        name = "%s-plain-%s" % (case, plain_role)
        args = ["call", "--kind", "plain", "--role", plain_role,
                "--local-ip", pe.ip, "--sip-port", str(pe.sip_port),
                "--media-port", "7000" if plain_role == "callee" else "6000",
                "--tone", str(TONE[plain_role]), "--timeout", "30",
                "--wav-out", os.path.join(t.dir, "peers", name + ".wav")]
        if role == "caller":
            peer = wp._peer_proc(t, pe.ns, name, args, 35)
            peer.start()
            peer.wait_ready(timeout=10)
            bs.start("-e", "/dial sip:callee@%s:%d" % (pe.ip, pe.sip_port),
                     "-t", str(CALL_S))
            poll_sessions(t, kam, cid, seen, snaps, bs.running, CALL_S + 10)
            bs.proc.wait(timeout=10) if bs.running() else None
            peer.wait(timeout=8)
        else:
            bs.start()
            bs.wait_listening(ep.ip, ep.sip_port)
            cid[0] = "%s-%s@webrtc" % (case, os.urandom(4).hex())
            peer = wp._peer_proc(t, pe.ns, name, args + [
                "--proxy", "%s:5060" % lab.kam_ip,
                "--ruri", "sip:callee@%s:%d" % (ep.ip, ep.sip_port),
                "--call-id", cid[0], "--duration", str(MEDIA_S)], 35)
            peer.start()
            poll_sessions(t, kam, cid, seen, snaps, peer.running, 30)
            peer.wait(timeout=8)
            time.sleep(0.5)
            bs.stop()
        bs.stop()
        if cid[0]:
            seen.add(cid[0])
        res = peer.result() or {}
        rcs = kam.manage_rcs(cid[0]) if cid[0] else []
        why = [ln for ln in kam.log_text().splitlines()
               if "ice_manage" in ln and "ICETEST" not in ln]
        t.log("%s: call-id %s, ice_manage %s" % (label, cid[0], rcs))
        t.check(cid[0] and rcs[:1] == [("INVITE", 1)] and ("200", 1) in rcs
                and all(rc == 1 for _, rc in rcs),
                "%s: ice_manage returned 1 for every SDP: %s" % (label, rcs),
                detail="\n".join(why[-5:]) or None)
        blog = bs.log_text()
        sdps = bs.received_sdps("%s:%d" % (ep.ip, ep.sip_port))
        who = "%s: SDP baresip got (%s)" % (
            label, sdps[0][0] if sdps else "none found in its -s trace")
        if t.check(sdps, "%s: baresip received an SDP" % label,
                   detail=it.tail(bs.log, 30)):
            if crypto == "dtls":
                wb.check_webrtc_sdp(t, who, sdps[0][1], lab.kam_ip,
                                    offer=(role == "callee"))
            else:
                ws.check_sdes_sdp(t, who, sdps[0][1], lab.kam_ip, "")
        # the SDP baresip got: the plain peer's result has the other one
        got_plain = (res.get("sdp_received") or [None])[0]
        t.check(not res.get("offer_rejected") and
                not res.get("answer_rejected"),
                "%s: the plain %s accepts the SDP it gets" % (label,
                                                               plain_role),
                detail=res.get("offer_rejected") or res.get(
                    "answer_rejected") or res.get("errors"))
        if got_plain:
            wb.check_plain_sdp(t, "%s: SDP at the plain %s" % (
                label, plain_role), got_plain, lab.kam_ip)
        pm = res.get("media") or {}
        wb.check_tone(t, "%s: the plain %s" % (label, plain_role),
                      pm.get("rx"), TONE[role])
        if pm.get("rx"):
            src = pm["rx"].get("sources") or {}
            t.check(src and all(k.startswith(lab.kam_ip + ":")
                                for k in src),
                    "%s: the plain %s gets RTP from the relay only (%s)" % (
                        label, plain_role, src))
        heard = bs.heard()
        t.check(tone.freq_ok(heard.get("freq"), TONE[plain_role]) and
                (heard.get("seconds") or 0) >= 2.0,
                "%s: baresip hears the %d Hz tone (got %s Hz, purity %s, "
                "%s s, %s)" % (label, TONE[plain_role], heard.get("freq"),
                               heard.get("purity"), heard.get("seconds"),
                               heard.get("wav") or heard.get("error")))
        ok_line = "DTLS-SRTP complete" if crypto == "dtls" else \
            "SRTP is Enabled"
        t.check(ok_line in blog, "%s: baresip's log says %r" % (
            label, ok_line), detail=it.tail(bs.log, 25))
        bad = [ln for ln in blog.splitlines() if "failed to decrypt" in ln or
               "fingerprint mismatch" in ln]
        t.check(not bad, "%s: baresip decrypts everything and trusts the "
                "relay's fingerprint (%d bad lines)" % (label, len(bad)),
                detail="\n".join(bad[:5]))
        want = "dtls-srtp" if crypto == "dtls" else "sdes-srtp"
        s = wp.best_snapshot(snaps, role, lambda st: st.get(
            wp.SESSION_CRYPTO) == want and (crypto != "dtls" or st.get(
                wp.SESSION_DTLS) == "connected"))
        st = wp.leg_stream(s, role) or {}
        t.log("%s: ice.session %s leg: %s" % (label, role, {
            k: st.get(k) for k in (wp.SESSION_CRYPTO, wp.SESSION_DTLS,
                                   wp.SESSION_PROFILE, wp.SESSION_AUTH_FAIL,
                                   "ice", "rtcp_mux")}))
        t.check(st.get(wp.SESSION_CRYPTO) == want and
                (crypto != "dtls" or st.get(wp.SESSION_DTLS) == "connected")
                and st.get(wp.SESSION_PROFILE) not in (None, "", "none") and
                st.get(wp.SESSION_AUTH_FAIL) == 0,
                "%s: ice.session %s leg: crypto %s%s, srtp_profile %r, "
                "srtp_auth_failures %s" % (
                    label, role, st.get(wp.SESSION_CRYPTO),
                    ", dtls %s" % st.get(wp.SESSION_DTLS)
                    if crypto == "dtls" else "", st.get(wp.SESSION_PROFILE),
                    st.get(wp.SESSION_AUTH_FAIL)), detail=s)
        if cid[0]:
            it.check_session_gone(t, kam, cid[0])
        it.check_kamailio_healthy(t, kam)
        if t.failures:
            t.log("%s: baresip log tail:\n%s" % (label, it.tail(bs.log, 40)))
    finally:
        kam.stop()


def run(t):
    if not os.path.exists(BARESIP):
        t.skipped.append("baresip")
        t.log("SKIP  baresip is not installed at %s (apt-get install "
              "baresip-core)" % BARESIP)
        return
    if not t.needs_module("baresip bridging (needs the relay)"):
        return
    lab = wp.BridgeLab(t)
    if any(PLAN[c][1] == "dtls" for c in CASES if c in PLAN):
        lab.lab.start_stun()
    seen = set()
    for c in CASES:
        if c not in PLAN:
            raise it.TestError("unknown case %r (BARESIP_CASES)" % c)
        run_case(t, lab, c, seen)


if __name__ == "__main__":
    sys.exit(it.main(run, "baresip_bridge"))
