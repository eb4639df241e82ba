"""Precision and recall of each scrubbing detector on the hand-labelled set in
tests/processors/detect/labelled.tsv (a few hundred lines: each kind of personal data in several
forms and encodings, known misses, and hard negatives such as organisation numbers, EANs, prices,
versions, loopback addresses, request UUIDs and git SHAs), through the free-text rule the processor
applies (processors.transforms.scrub_text).

    python bench/scrub_quality.py [--quick] [--misses]

A line counts as a true positive for its rule when the output holds that rule's placeholder, a false
negative when it does not, and every placeholder of another rule (or on a '-' line) is a false
positive of that rule. Ends with the micro-averaged F1 over all rules, against a perfect detector.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from processors.detect import PLACEHOLDER, RULES  # noqa: E402
from processors.transforms import scrub_text  # noqa: E402

LABELLED = Path(__file__).resolve().parents[1] / "tests" / "processors" / "detect" / "labelled.tsv"


def unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append({"n": "\n", "t": "\t", "\\": "\\"}.get(text[i + 1], "\\" + text[i + 1]))
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def load(path: Path = LABELLED) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            label, _, text = line.partition("\t")
            rows.append((label, unescape(text)))
    return rows


def score(rows: list[tuple[str, str]]) -> tuple[dict[str, Counter[str]], list[tuple[str, str, str]]]:
    """Per rule, counts of tp, fp, fn; and the lines that went wrong (label, text, output)."""
    table = {rule: Counter[str]() for rule in RULES}
    wrong = []
    for label, text in rows:
        out = scrub_text(text) or ""
        found = set(PLACEHOLDER.findall(out)) - set(PLACEHOLDER.findall(text))
        ok = True
        if label != "-":
            hit = label in found
            table[label]["tp" if hit else "fn"] += 1
            ok = hit
        for rule in found - {label}:
            table[rule]["fp"] += 1
            ok = False
        if not ok:
            wrong.append((label, text, out))
    return table, wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the same (the set is small)")
    parser.add_argument("--misses", action="store_true", help="list every line a detector got wrong")
    args = parser.parse_args()
    rows = load()
    table, wrong = score(rows)
    print(f"{len(rows)} labelled lines ({sum(1 for label, _ in rows if label == '-')} that must stay as they are)")
    print(f"{'detector':<12} {'lines':>5} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>9} {'recall':>7}")
    total = Counter[str]()
    for rule in RULES:
        c = table[rule]
        total.update(c)
        precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
        recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
        print(f"{rule:<12} {c['tp'] + c['fn']:>5} {c['tp']:>4} {c['fp']:>4} {c['fn']:>4} "
              f"{precision:>9.2f} {recall:>7.2f}")
    precision = total["tp"] / (total["tp"] + total["fp"])
    recall = total["tp"] / (total["tp"] + total["fn"])
    f1 = 2 * precision * recall / (precision + recall)
    print(f"{'all':<12} {total['tp'] + total['fn']:>5} {total['tp']:>4} {total['fp']:>4} {total['fn']:>4} "
          f"{precision:>9.2f} {recall:>7.2f}")
    if args.misses:
        for label, text, out in wrong:
            print(f"  {label:<12} {text!r} -> {out!r}")
    print(f"RESULT scrub_quality_f1 {f1:.3f} F1 ratio={f1:.3f} baseline=a perfect detector (F1 1.0)")


if __name__ == "__main__":
    main()
