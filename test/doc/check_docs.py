#!/usr/bin/python3
"""Check that the ice module's documentation covers its exports.

Parses the C exports of modules/ice/*.c:
  - cmds[]            script functions        (cmd_export_t)
  - params[]          module parameters       (param_export_t)
  - ice_rpc_cmds[]    RPC commands            (rpc_export_t)
  - ice_stats[]       statistics              (stat_export_t)
  - ice_kemi_exports  KEMI functions          (sr_kemi_t)
and fails if any of them is missing from modules/ice/doc/*.xml (as its
own documented item: a function title, a parameter section, ...) or from
the rendered modules/ice/README. Also validates the DocBook (xmllint, when
installed) and checks that the README is up to date: it renders the XML
again (scripts/render-doc.sh: xsltproc + lynx) into a temporary file and
compares; without the renderer it falls back to comparing file times.

Usage: test/doc/check_docs.py [--root DIR]
Exit status 0 when every check passes, 1 otherwise.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

# (kind, C type, array name, how to pull the names out of one array body)
STRING_FIRST = re.compile(r'\{\s*"([^"]+)"')
KEMI_NAME = re.compile(r'\{\s*str_init\("[^"]*"\)\s*,\s*str_init\("([^"]+)"\)')
EXPORTS = [
    ("function", "cmd_export_t", "cmds", STRING_FIRST),
    ("parameter", "param_export_t", "params", STRING_FIRST),
    ("rpc", "rpc_export_t", "ice_rpc_cmds", STRING_FIRST),
    ("statistic", "stat_export_t", "ice_stats", STRING_FIRST),
    ("kemi", "sr_kemi_t", "ice_kemi_exports", KEMI_NAME),
]


def strip_c_comments(src):
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    return re.sub(r"//[^\n]*", " ", src)


def array_body(src, ctype, name):
    """The text between the braces of `ctype name[] = { ... };`."""
    m = re.search(r"\b%s\s+%s\s*\[\s*\]\s*=\s*\{" % (re.escape(ctype), re.escape(name)), src)
    if not m:
        return None
    depth, i = 1, m.end()
    while i < len(src) and depth:
        if src[i] == "{":
            depth += 1
        elif src[i] == "}":
            depth -= 1
        elif src[i] == '"':  # skip string literals (may hold braces)
            i += 1
            while i < len(src) and src[i] != '"':
                i += 2 if src[i] == "\\" else 1
        i += 1
    return src[m.end():i - 1]


def parse_exports(c_files):
    """{kind: sorted unique names}; a kind whose array is not found maps to None."""
    src = "\n".join(strip_c_comments(open(f, encoding="utf-8").read()) for f in c_files)
    out = {}
    for kind, ctype, name, rx in EXPORTS:
        body = array_body(src, ctype, name)
        if body is None:
            out[kind] = None
            continue
        # only the top-level entries: each starts with "{" at depth 1
        names = []
        depth = 0
        start = None
        for i, ch in enumerate(body):
            if ch == "{":
                depth += 1
                if depth == 1:
                    start = i
            elif ch == "}":
                depth -= 1
                if depth == 0 and start is not None:
                    m = rx.match(body[start:i + 1])
                    if m:
                        names.append(m.group(1))
        out[kind] = sorted(set(names))
    return out


def xml_patterns(kind, name):
    """Regexes that must all match the concatenated DocBook sources."""
    n = re.escape(name)
    if kind == "function":
        return [r"<function[^>]*>\s*%s\(" % n, r'id="ice\.f\.%s"' % n]
    if kind == "parameter":
        return [r"<varname>%s</varname>\s*\((integer|string)\)" % n, r'id="ice\.p\.%s"' % n]
    if kind == "rpc":
        return [r"<function[^>]*>%s</function>" % n, r'id="ice\.r\.%s"' % n]
    if kind == "statistic":
        return [r"<varname>%s</varname>" % n, r'id="ice\.s\.%s"' % n]
    if kind == "kemi":
        return [r"KSR\.ice\.%s\(" % n]
    raise ValueError(kind)


def readme_patterns(kind, name):
    """Regexes that must all match the rendered README text."""
    n = re.escape(name)
    if kind == "function":
        return [r"^\s*[\d.]+\s+%s\(" % n]  # its numbered section title
    if kind == "parameter":
        return [r"^\s*[\d.]+\s+%s \((integer|string)\)" % n]
    if kind == "rpc":
        return [r"^\s*[\d.]+\s+%s\s*$" % n]
    if kind == "statistic":
        return [r"^\s*[\d.]+\s+%s\s*$" % n]
    if kind == "kemi":
        return [r"KSR\.ice\.%s\(" % n]
    raise ValueError(kind)


def missing(exports, xml_text, readme_text):
    """[(where, kind, name)] for every export not documented."""
    out = []
    for kind, names in exports.items():
        for name in names or []:
            if not all(re.search(p, xml_text, re.M) for p in xml_patterns(kind, name)):
                out.append(("doc/*.xml", kind, name))
            if readme_text is None or not all(
                    re.search(p, readme_text, re.M) for p in readme_patterns(kind, name)):
                out.append(("README", kind, name))
    return out


class Result:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, msg):
        self.passed += 1
        print("PASS: " + msg)

    def fail(self, msg):
        self.failed += 1
        print("FAIL: " + msg)


def self_test(res):
    """The checker itself must notice an undocumented export."""
    exports = {"function": ["f_one"], "parameter": ["p_one"], "rpc": ["x.r"],
               "statistic": ["s_one"], "kemi": ["k_one"]}
    xml = ('<section id="ice.f.f_one"><title><function>f_one()</function></title>'
           '<section id="ice.p.p_one"><title><varname>p_one</varname> (integer)'
           '<section id="ice.r.x.r"><title><function>x.r</function>'
           '<section id="ice.s.s_one"><title><varname>s_one</varname> KSR.ice.k_one()')
    readme = ("1.5.1. f_one()\n1.3.1. p_one (integer)\n1.6.1. x.r\n"
              "1.7.1. s_one\nKSR.ice.k_one()\n")
    if missing(exports, xml, readme):
        res.fail("self-test: a fully documented set is reported missing: %s"
                 % missing(exports, xml, readme))
        return
    for kind in exports:
        partial = dict(exports)
        partial[kind] = exports[kind] + ["undocumented_" + kind]
        got = missing(partial, xml, readme)
        if {(w, k) for w, k, _ in got} != {("doc/*.xml", kind), ("README", kind)}:
            res.fail("self-test: an undocumented %s is not reported (got %s)" % (kind, got))
            return
    res.ok("self-test: the checker reports undocumented exports")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "..", ".."))
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    res = Result()
    self_test(res)

    c_files = sorted(glob.glob(os.path.join(root, "modules/ice/*.c")))
    xml_files = sorted(glob.glob(os.path.join(root, "modules/ice/doc/*.xml")))
    readme = os.path.join(root, "modules/ice/README")
    main_xml = os.path.join(root, "modules/ice/doc/ice.xml")

    exports = parse_exports(c_files)
    for kind, _, name, _ in EXPORTS:
        if not exports[kind]:
            res.fail("no %s exports found (array %s) in modules/ice/*.c" % (kind, name))
        else:
            print("  %-9s %s" % (kind, " ".join(exports[kind])))
    if not xml_files:
        res.fail("no modules/ice/doc/*.xml")
    xml_text = "\n".join(open(f, encoding="utf-8").read() for f in xml_files)
    readme_text = open(readme, encoding="utf-8").read() if os.path.exists(readme) else None
    if readme_text is None:
        res.fail("modules/ice/README does not exist (make doc)")

    gaps = missing({k: v for k, v in exports.items() if v}, xml_text, readme_text)
    for where in ("doc/*.xml", "README"):
        these = ["%s %s" % (k, n) for w, k, n in gaps if w == where]
        total = sum(len(v or []) for v in exports.values())
        if these:
            res.fail("undocumented in modules/ice/%s: %s" % (where, ", ".join(these)))
        else:
            res.ok("all %d exports documented in modules/ice/%s" % (total, where))

    # DocBook validity (DTD via the system catalog, no network)
    if shutil.which("xmllint") and os.path.exists(main_xml):
        p = subprocess.run(["xmllint", "--noout", "--nonet", "--xinclude", "--postvalid",
                            main_xml], capture_output=True, text=True)
        if p.returncode == 0:
            res.ok("modules/ice/doc/ice.xml is valid DocBook 4.5")
        else:
            res.fail("modules/ice/doc/ice.xml does not validate:\n" + p.stderr[-2000:])
    else:
        print("SKIP: xmllint not installed: DocBook not validated")

    # README freshness
    render = os.path.join(root, "scripts/render-doc.sh")
    have_renderer = all(shutil.which(t) for t in ("xsltproc", "lynx")) and \
        os.path.exists("/usr/share/xml/docbook/stylesheet/docbook-xsl")
    if readme_text is not None and have_renderer:
        with tempfile.NamedTemporaryFile("w+", suffix=".README", delete=False) as tmp:
            p = subprocess.run(["sh", render, main_xml], stdout=tmp, stderr=subprocess.PIPE,
                               text=True)
        fresh = open(tmp.name, encoding="utf-8").read()
        os.unlink(tmp.name)
        if p.returncode != 0:
            res.fail("scripts/render-doc.sh failed:\n" + p.stderr[-2000:])
        elif fresh != readme_text:
            import difflib
            diff = list(difflib.unified_diff(readme_text.splitlines(), fresh.splitlines(),
                                             "modules/ice/README", "rendered", lineterm="", n=1))
            res.fail("modules/ice/README is out of date (make doc):\n" + "\n".join(diff[:40]))
        else:
            res.ok("modules/ice/README matches the rendered doc/ice.xml")
    elif readme_text is not None:
        # weaker: file times (a fresh checkout gives every file about the same time)
        newest = max(os.path.getmtime(f) for f in xml_files)
        if os.path.getmtime(readme) + 2 < newest:
            res.fail("modules/ice/README is older than modules/ice/doc/*.xml (make doc)")
        else:
            res.ok("modules/ice/README is not older than doc/*.xml "
                   "(renderer not installed: time check only)")

    print("doc-test: %d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
