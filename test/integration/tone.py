"""tone.py: test tones over PCMU (G.711 mu-law) for the media bridging tests.

Send side: ToneGen makes a continuous sine (phase kept across frames) as
16-bit linear PCM; RtpToneSender wraps 20 ms of it per packet as PCMU in
an RTP header (RFC 3550: V=2, marker on the first packet, sequence and
timestamp from random starts, timestamp += 160 per packet).

Receive side: RtpRecorder keeps the payloads of the RTP packets it is fed
(ordered by sequence number, duplicates ignored), decodes PCMU to linear,
and analyse() finds the dominant frequency (numpy's FFT when python3-numpy
is installed, else a pure-Python Goertzel scan), the fraction of the
power near that frequency ("purity") and the RMS level, so a test can
assert WHICH tone arrived, not just that packets did.

Standard library only (numpy optional). Usable as a module or as a CLI:
  python3 tone.py selftest
  python3 tone.py analyse file.wav
"""

import math
import struct
import sys
import wave

try:
    import numpy as _np
except ImportError:  # pure-Python fallback below
    _np = None

RATE = 8000
FRAME_SAMPLES = 160          # 20 ms at 8 kHz
PT_PCMU = 0
AMPLITUDE = 12000            # peak, of 32767: well inside mu-law's range


# --------------------------------------------------------------------------
# G.711 mu-law (ITU-T G.711, section 3: segment/quantisation as a 8-bit
# sign/exponent/mantissa code, stored inverted)

_BIAS = 0x84
_CLIP = 32635


def _ulaw_encode_one(s):
    sign = 0
    if s < 0:
        s = -s
        sign = 0x80
    if s > _CLIP:
        s = _CLIP
    s += _BIAS
    exp = 7
    while exp > 0 and not (s >> (exp + 7)) & 1:
        exp -= 1
    mant = (s >> (exp + 3)) & 0x0F
    return (~(sign | (exp << 4) | mant)) & 0xFF


def _ulaw_decode_one(b):
    u = (~b) & 0xFF
    exp = (u >> 4) & 0x07
    mant = u & 0x0F
    mag = (((mant << 3) + _BIAS) << exp) - _BIAS
    return -mag if u & 0x80 else mag


ULAW_DECODE = tuple(_ulaw_decode_one(b) for b in range(256))


def ulaw_encode(samples):
    """Linear 16-bit samples (ints) -> mu-law bytes."""
    return bytes(_ulaw_encode_one(int(s)) for s in samples)


def ulaw_decode(data):
    """mu-law bytes -> list of linear 16-bit samples."""
    tab = ULAW_DECODE
    return [tab[b] for b in data]


# --------------------------------------------------------------------------
# tone generation

class ToneGen:
    """A continuous sine at freq Hz, rate samples/s."""

    def __init__(self, freq, rate=RATE, amplitude=AMPLITUDE):
        self.freq = float(freq)
        self.rate = rate
        self.amplitude = amplitude
        self.n = 0

    def samples(self, count):
        w = 2.0 * math.pi * self.freq / self.rate
        a = self.amplitude
        out = [int(round(a * math.sin(w * (self.n + i)))) for i in
               range(count)]
        self.n += count
        return out

    def pcm16(self, count):
        """count samples as native-endian signed 16-bit bytes (what an
        av.AudioFrame in format s16 holds)."""
        s = self.samples(count)
        return struct.pack("=%dh" % len(s), *s)

    def ulaw(self, count=FRAME_SAMPLES):
        return ulaw_encode(self.samples(count))


# --------------------------------------------------------------------------
# RTP

def rtp_header(pt, seq, ts, ssrc, marker=False):
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | (pt & 0x7F),
                       seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc & 0xFFFFFFFF)


def rtp_parse(data):
    """An RTP packet -> dict(pt, marker, seq, ts, ssrc, payload), or None
    for anything else (RTCP by payload type 192..223 with the marker bit,
    STUN, DTLS, short or version != 2)."""
    if len(data) < 12 or (data[0] >> 6) != 2:
        return None
    if 192 <= data[1] <= 223:   # RTCP (RFC 5761 section 4)
        return None
    cc = data[0] & 0x0F
    off = 12 + 4 * cc
    if data[0] & 0x10:          # header extension
        if len(data) < off + 4:
            return None
        ext_words = struct.unpack("!H", data[off + 2:off + 4])[0]
        off += 4 + 4 * ext_words
    end = len(data)
    if data[0] & 0x20:          # padding
        end -= data[-1]
    if off > end:
        return None
    seq, ts, ssrc = struct.unpack("!HII", data[2:12])
    return {"pt": data[1] & 0x7F, "marker": bool(data[1] & 0x80),
            "seq": seq, "ts": ts, "ssrc": ssrc, "payload": data[off:end]}


def is_rtcp(data):
    return len(data) >= 8 and (data[0] >> 6) == 2 and 192 <= data[1] <= 223


class RtpToneSender:
    """20 ms PCMU packets of a tone, one per next()."""

    def __init__(self, freq, ssrc, pt=PT_PCMU, seq=None, ts=None):
        import random
        self.gen = ToneGen(freq)
        self.ssrc = ssrc
        self.pt = pt
        self.seq = random.getrandbits(15) if seq is None else seq
        self.ts = random.getrandbits(31) if ts is None else ts
        self.count = 0

    def next(self):
        hdr = rtp_header(self.pt, self.seq, self.ts, self.ssrc,
                         marker=(self.count == 0))
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + FRAME_SAMPLES) & 0xFFFFFFFF
        self.count += 1
        return hdr + self.gen.ulaw(FRAME_SAMPLES)


def rtcp_sr(ssrc, packets, octets, rtp_ts):
    """A minimal RTCP sender report (no report blocks), RFC 3550 6.4.1."""
    import time
    now = time.time() + 2208988800  # NTP epoch
    sec = int(now)
    frac = int((now - sec) * (1 << 32)) & 0xFFFFFFFF
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, sec & 0xFFFFFFFF,
                       frac, rtp_ts & 0xFFFFFFFF, packets & 0xFFFFFFFF,
                       octets & 0xFFFFFFFF)


# --------------------------------------------------------------------------
# receive and analyse

class RtpRecorder:
    """Collects received RTP (PCMU payloads) in sequence order."""

    def __init__(self):
        self.packets = 0
        self.non_rtp = 0
        self.by_pt = {}
        self.by_ssrc = {}
        self.frames = {}     # extended seq -> payload
        self._ext = {}       # ssrc -> highest extended seq
        self.main_ssrc = None
        self.dups = 0        # same SSRC and sequence number again

    def _extend(self, ssrc, seq):
        """16-bit sequence number -> extended (signed distance from the
        highest one seen, so wraps and late packets land right)."""
        hi = self._ext.get(ssrc)
        if hi is None:
            ext = seq + 65536
        else:
            ext = hi + ((seq - (hi & 0xFFFF) + 0x8000) & 0xFFFF) - 0x8000
        if hi is None or ext > hi:
            self._ext[ssrc] = ext
        return ext

    def add(self, data):
        p = rtp_parse(data)
        if p is None:
            self.non_rtp += 1
            return None
        self.packets += 1
        self.by_pt[p["pt"]] = self.by_pt.get(p["pt"], 0) + 1
        k = "%08x" % p["ssrc"]
        self.by_ssrc[k] = self.by_ssrc.get(k, 0) + 1
        if p["pt"] == PT_PCMU:
            if self.main_ssrc is None:
                self.main_ssrc = p["ssrc"]
            if p["ssrc"] == self.main_ssrc:
                k = self._extend(p["ssrc"], p["seq"])
                if k in self.frames:
                    self.dups += 1
                else:
                    self.frames[k] = p["payload"]
        return p

    def pcm(self):
        out = []
        for k in sorted(self.frames):
            out.extend(ulaw_decode(self.frames[k]))
        return out

    def summary(self):
        res = {"packets": self.packets, "non_rtp": self.non_rtp,
               "by_pt": {str(k): v for k, v in self.by_pt.items()},
               "by_ssrc": self.by_ssrc, "pcmu_frames": len(self.frames),
               "dups": self.dups}
        res.update(analyse(self.pcm(), RATE))
        return res


def _goertzel_power(samples, rate, freq):
    w = 2.0 * math.pi * freq / rate
    coeff = 2.0 * math.cos(w)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + coeff * s1 - s2
        s2 = s1
        s1 = s0
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def analyse(samples, rate=RATE, skip_s=0.2, max_s=4.0):
    """Dominant frequency of linear samples: {"seconds", "freq", "purity",
    "rms"}; freq None if there is less than 0.1 s of audio or it is silent
    (rms < 50). purity: share of the power within +-5% (at least +-20 Hz)
    of freq, of the power from 50 Hz to rate/2."""
    n_all = len(samples)
    res = {"seconds": round(n_all / float(rate), 3), "freq": None,
           "purity": None, "rms": 0.0}
    skip = int(skip_s * rate)
    if n_all - skip < rate // 10:
        skip = 0
    x = samples[skip:skip + int(max_s * rate)]
    if len(x) < rate // 10:
        return res
    mean = sum(x) / float(len(x))
    x = [v - mean for v in x]
    rms = math.sqrt(sum(v * v for v in x) / len(x))
    res["rms"] = round(rms, 1)
    if rms < 50:
        return res
    if _np is not None:
        a = _np.asarray(x, dtype=float) * _np.hanning(len(x))
        spec = _np.abs(_np.fft.rfft(a)) ** 2
        freqs = _np.fft.rfftfreq(len(a), 1.0 / rate)
        band = freqs >= 50
        i = int(_np.argmax(spec * band))
        # parabolic interpolation of the peak bin
        f = freqs[i]
        if 0 < i < len(spec) - 1:
            a0, a1, a2 = spec[i - 1], spec[i], spec[i + 1]
            den = a0 - 2 * a1 + a2
            if den != 0:
                f += 0.5 * (a0 - a2) / den * (freqs[1] - freqs[0])
        bw = max(20.0, 0.05 * f)
        near = (freqs >= f - bw) & (freqs <= f + bw)
        total = float(spec[band].sum())
        res["freq"] = round(float(f), 1)
        res["purity"] = round(float(spec[near].sum()) / total, 3) \
            if total else None
        return res
    # pure Python: Goertzel on <= 0.5 s, coarse 10 Hz grid then 1 Hz
    x = x[:rate // 2]
    grid = {f: _goertzel_power(x, rate, f) for f in range(50, rate // 2, 10)}
    best = max(grid, key=grid.get)
    fine = {f: _goertzel_power(x, rate, f) for f in range(best - 10,
                                                          best + 11)}
    f = max(fine, key=fine.get)
    bw = max(20.0, 0.05 * f)
    total = sum(grid.values())
    near = sum(v for k, v in grid.items() if abs(k - f) <= bw)
    res["freq"] = float(f)
    res["purity"] = round(near / total, 3) if total else None
    return res


def freq_ok(measured, expected, tol=0.05):
    return measured is not None and abs(measured - expected) <= tol * expected


# --------------------------------------------------------------------------
# WAV helpers (16-bit linear mono, for debugging and baresip's aufile)

def write_wav(path, samples, rate=RATE):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack("<%dh" % len(samples),
                                  *[max(-32768, min(32767, int(s)))
                                    for s in samples]))


def read_wav(path):
    """(samples of the first channel, rate) of a 16-bit PCM WAV."""
    with wave.open(path, "rb") as w:
        ch, width, rate = w.getnchannels(), w.getsampwidth(), \
            w.getframerate()
        data = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError("%s: %d-byte samples, want 16-bit" % (path, width))
    s = struct.unpack("<%dh" % (len(data) // 2), data)
    return list(s[::ch]), rate


def tone_wav(path, freq, seconds, rate=RATE):
    write_wav(path, ToneGen(freq, rate).samples(int(seconds * rate)), rate)


# --------------------------------------------------------------------------

def _selftest():
    ok = True
    # mu-law round trip: decode(encode(x)) within the segment's step
    for s in (0, 1, -1, 100, -100, 1000, -1000, 8000, -8000, 32000, -32768):
        d = _ulaw_decode_one(_ulaw_encode_one(s))
        step = max(4, abs(s) // 16)
        if abs(d - max(-_CLIP, min(_CLIP, s))) > step:
            print("ulaw round trip %d -> %d" % (s, d))
            ok = False
    if _ulaw_encode_one(0) != 0xFF or _ulaw_decode_one(0xFF) != 0:
        print("ulaw zero is not 0xff")
        ok = False
    for f in (440, 1000, 2200):
        snd = RtpToneSender(f, 0x1234)
        rec = RtpRecorder()
        pkts = [snd.next() for _ in range(100)]
        pkts[10], pkts[11] = pkts[11], pkts[10]   # reordering is undone
        for p in pkts:
            rec.add(p)
        r = rec.summary()
        good = freq_ok(r["freq"], f, 0.01) and r["purity"] > 0.9
        print("tone %d Hz -> %s Hz purity %s rms %s (%s)" % (
            f, r["freq"], r["purity"], r["rms"], "ok" if good else "BAD"))
        ok = ok and good
    if _np is not None:
        saved, globals()["_np"] = _np, None
        try:
            r = analyse(ToneGen(1000).samples(8000))
            good = freq_ok(r["freq"], 1000, 0.01)
            print("goertzel fallback: 1000 Hz -> %s (%s)" % (
                r["freq"], "ok" if good else "BAD"))
            ok = ok and good
        finally:
            globals()["_np"] = saved
    r = analyse([0] * 8000)
    print("silence -> freq %s rms %s" % (r["freq"], r["rms"]))
    ok = ok and r["freq"] is None
    print("selftest", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "selftest":
        sys.exit(_selftest())
    if len(sys.argv) > 2 and sys.argv[1] == "analyse":
        s, rate = read_wav(sys.argv[2])
        print(analyse(s, rate))
        sys.exit(0)
    print(__doc__)
    sys.exit(2)
