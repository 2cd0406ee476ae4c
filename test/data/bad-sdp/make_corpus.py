#!/usr/bin/env python3
"""Regenerate the bad-SDP corpus (test/data/bad-sdp/) and its manifest
cases.json. Deterministic: running it again gives the same bytes.

Each case is one file holding a SIP message body exactly as it is sent
(binary-safe) and one manifest entry:
  name       case name (the file is <name>.<ext>)
  file       the body file
  ctype      the Content-Type header sent with it
  cl_delta   Content-Length = len(body) + cl_delta (negative: the body is
             larger than Content-Length; positive: it is shorter)
  transport  "udp" or "tcp" (a body that cannot fit in one UDP datagram)
  offer_rc   what ice_manage() returns for it in an INVITE (an offer);
             -1 = refused, the message is left untouched; 1 = rewritten;
             2 = nothing to do
  reason     a regex the module's "ice_manage: ..." log line must match
             (refused cases only)
  final      the final reply the caller gets (488 from the callee, unless
             kamailio cannot forward the message)
  delivered  whether the message reaches the other side
  not_in_body  a string that must not be in the body the other side
             reads (as far as its Content-Length says), or null
  what       one line describing the defect and what the module does
Used by test/integration/test_bad_input.py, which documents what the module
does for each case; the files also make a seed corpus for the SDP fuzzer.
"""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))

BASE = [
    "v=0",
    "o=caller 53655765 2353687637 IN IP4 127.0.0.1",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 6000 RTP/AVP 0",
    "a=rtpmap:0 PCMU/8000",
    "a=sendrecv",
]


def crlf(lines, end=True):
    return ("\r\n".join(lines) + ("\r\n" if end else "")).encode()


def replace(lines, prefix, new):
    """lines with the first one starting with prefix replaced by new"""
    out = list(lines)
    for i, ln in enumerate(out):
        if ln.startswith(prefix):
            out[i] = new
            break
    return out


def without(lines, prefix):
    return [ln for ln in lines if not ln.startswith(prefix)]


def ice_sdp(ncand, ufrag="8hhY", pwd="asd88fgpdd777uzjYhagZg"):
    lines = BASE[:6] + ["a=rtpmap:0 PCMU/8000", "a=ice-ufrag:" + ufrag,
                        "a=ice-pwd:" + pwd]
    for i in range(ncand):
        lines.append("a=candidate:%d 1 UDP %d 10.%d.%d.%d %d typ host" % (
            i, 2130706431 - i, (i >> 16) & 255, (i >> 8) & 255, i & 255,
            20000 + (i % 40000)))
    lines.append("a=sendrecv")
    return crlf(lines)


def cases():
    rnd = random.Random(6)      # GitHub issue 6
    c = []

    def add(name, body, what, offer_rc, reason=None, ext="sdp",
            ctype="application/sdp", cl_delta=0, transport="udp",
            final=488, delivered=True, not_in_body=None):
        c.append({"name": name, "file": "%s.%s" % (name, ext), "body": body,
                  "ctype": ctype, "cl_delta": cl_delta,
                  "transport": transport, "offer_rc": offer_rc,
                  "reason": reason, "final": final, "delivered": delivered,
                  "not_in_body": not_in_body, "what": what})

    # truncated lines
    add("truncated-mline", crlf(BASE[:5]) + b"m=aud",
        "the body ends in the middle of the m= line (no port, no EOL)", -1,
        r"m= line has missing fields")
    add("truncated-cline", crlf(replace(BASE, "c=", "c=IN IP4 127.0.")),
        "c= address cut short (127.0.)", -1, r"not a valid IP address")
    add("truncated-oline", crlf(replace(BASE, "o=", "o=caller 5365 IN")),
        "o= line with only three fields", -1, r"o= line has missing fields")
    # sizes
    add("long-attribute-60k", crlf(BASE + ["a=x-junk:" + "A" * 61440]),
        "a valid SDP with a 60 KB attribute line (kept as is)", 1)
    add("candidates-100", ice_sdp(100),
        "100 a=candidate lines (control: stripped by remove)", 1)
    add("candidates-1000", ice_sdp(1000),
        "1000 a=candidate lines (as many as fit one UDP datagram): more "
        "edits than the rewriter's 256, refused", -1,
        r"cannot rewrite SDP")
    add("candidates-5000", ice_sdp(5000),
        "5000 a=candidate lines (300 KB, sent over TCP): refused, and the "
        "untouched message cannot be sent on over UDP: tm answers 477", -1,
        r"cannot rewrite SDP", transport="tcp", final=477, delivered=False)
    # address families
    add("wrong-af-ip6", crlf(replace(BASE, "c=", "c=IN IP6 1.2.3.4")),
        "c=IN IP6 with an IPv4 address", -1, r"not a valid IP address")
    add("wrong-af-ip4", crlf(replace(BASE, "c=", "c=IN IP4 ::1")),
        "c=IN IP4 with an IPv6 address", -1, r"not a valid IP address")
    add("wrong-addrtype", crlf(replace(BASE, "c=", "c=IN IPX 1.2.3.4")),
        "c= address type IPX", -1, r"address type is not IP4 or IP6")
    # junk
    junk = bytes(rnd.randrange(256) for _ in range(3000))
    add("binary-junk", junk, "3000 random bytes (with NULs)", -1,
        r"NUL byte in body|first line is not v=0", ext="bin")
    junk2 = bytes(rnd.choice(range(1, 256)) for _ in range(3000))
    add("binary-after-v0", b"v=0\r\n" + junk2,
        "v=0 then 3000 random bytes without NUL", -1,
        r"CR not followed by LF", ext="bin")
    add("nul-byte", crlf(BASE[:6] + ["a=rtpmap:0 PC\0MU/8000", "a=sendrecv"]),
        "a NUL byte inside an attribute", -1, r"NUL byte in body", ext="bin")
    add("not-sdp", b"<html><body>hello</body></html>\r\n",
        "HTML labelled application/sdp", -1, r"first line is not v=0")
    # structure
    add("missing-c", crlf(without(BASE, "c=")),
        "no c= line at session or media level (RFC 8866 5.7 requires one):"
        " accepted, the module adds a media-level c= for the relay", 1)
    add("duplicate-c", crlf(BASE[:4] + ["c=IN IP4 127.0.0.2"] + BASE[4:]),
        "two session-level c= lines", -1, r"duplicate c= line")
    add("empty-line-inside", crlf(BASE[:5] + [""] + BASE[5:]),
        "an empty line between t= and m=", -1, r"empty line inside the body")
    add("port-70000", crlf(replace(BASE, "m=", "m=audio 70000 RTP/AVP 0")),
        "m= port 70000", -1, r"m= port is above 65535")
    add("port-negative", crlf(replace(BASE, "m=", "m=audio -6000 RTP/AVP 0")),
        "m= port -6000", -1, r"m= port is not a number")
    add("rtcp-port-70000", crlf(BASE + ["a=rtcp:70000"]),
        "a=rtcp:70000", -1, r"a=rtcp port")
    def mlines(n):
        out = BASE[:5]
        for i in range(n):
            out += ["m=audio %d RTP/AVP 0" % (6000 + 2 * i),
                    "a=rtpmap:0 PCMU/8000"]
        return out
    add("mlines-17", crlf(mlines(17)), "17 m= lines", -1,
        r"too many m= lines")
    mls = mlines(5)
    add("mlines-5", crlf(mls), "5 m= lines (the module keeps 4 streams)", -1,
        r"too many m-lines")
    add("long-ufrag", ice_sdp(2, ufrag="u" * 300),
        "a=ice-ufrag of 300 characters (RFC 8839 allows 256)", 1)
    # line endings
    add("cr-only", ("\r".join(BASE) + "\r").encode(),
        "CR-only line endings", -1, r"first line is not v=0|CR not followed")
    add("lf-only", ("\n".join(BASE) + "\n").encode(),
        "LF-only line endings (tolerated)", 1)
    # framing
    add("body-longer-than-cl", crlf(BASE) + b"a=x-after-content-length:1\r\n",
        "28 bytes beyond Content-Length (RFC 3261 18.3: to be discarded); "
        "the SDP within Content-Length is valid and rewritten", 1,
        cl_delta=-28, not_in_body="x-after-content-length")
    add("body-shorter-than-cl", crlf(BASE),
        "Content-Length 100 bytes more than the body", -1,
        r"Content-Length exceeds the message", cl_delta=100)
    add("empty-body", b"", "Content-Type application/sdp, empty body", 2)
    boundary = "unique-boundary-1"
    mp = ("--%s\r\nContent-Type: application/sdp\r\n\r\n" %
          boundary).encode() + crlf(BASE) + \
        ("--%s\r\nContent-Type: text/plain\r\n\r\nhello\r\n--%s--\r\n" %
         (boundary, boundary)).encode()
    add("multipart-mixed", mp, "multipart/mixed with an SDP part", -1,
        r"multipart", ext="txt",
        ctype="multipart/mixed;boundary=%s" % boundary)
    return c


README_HEAD = """# Bad SDP corpus

Malformed and oversized SIP bodies for `test/integration/test_bad_input.py`
(GitHub issue 6), also usable as fuzzer seeds. `make_corpus.py` writes every
file, `cases.json` (the manifest the test reads: Content-Type, Content-Length
offset, transport, the expected `ice_manage` result, log reason and final
reply) and this README. The output is deterministic: after changing the
script, run it again and commit what it writes.

Expected result of `ice_manage("remove")` on each body as an offer (the test
also sends each UDP case as the answer in a 183 and expects the same):

| file | defect | ice_manage | module log line (regex) |
|---|---|---|---|
"""


def readme_row(c):
    rc = {-1: "-1 refused", 1: "1 rewritten", 2: "2 nothing to do"}
    extra = []
    if c["transport"] != "udp":
        extra.append(c["transport"].upper())
    if c["cl_delta"]:
        extra.append("Content-Length %+d" % c["cl_delta"])
    if c["ctype"] != "application/sdp":
        extra.append("Content-Type " + c["ctype"].split(";")[0])
    if c["final"] != 488:
        extra.append("the caller gets %d" % c["final"])
    return "| `%s` | %s%s | %s | %s |" % (
        c["file"], c["what"], " (%s)" % ", ".join(extra) if extra else "",
        rc[c["offer_rc"]],
        "`%s`" % c["reason"].replace("|", "\\|") if c["reason"] else "")


def main():
    man = []
    for case in cases():
        with open(os.path.join(HERE, case["file"]), "wb") as f:
            f.write(case["body"])
        entry = dict(case)
        del entry["body"]
        man.append(entry)
    with open(os.path.join(HERE, "cases.json"), "w") as f:
        json.dump(man, f, indent=1)
        f.write("\n")
    with open(os.path.join(HERE, "README.md"), "w") as f:
        f.write(README_HEAD + "\n".join(readme_row(c) for c in man) + "\n")
    print("%d cases written to %s" % (len(man), HERE))


if __name__ == "__main__":
    main()
