#!/usr/bin/env python3
"""The heap at massif's peak snapshot, summed by the first rs2p frame that
names a structure (BENCHMARKS.md, "Memory per key"):

    valgrind --tool=massif --depth=30 --massif-out-file=m.out target/release/rs2p-lab bench-rss --keys 100000
    python3 scripts/massif-breakdown.py m.out

The patterns name both the current structures and those before the store
kept keys with values (the item_keys maps), so either build reads alike.
"""
import re, sys
CATS = [
    ("tables: sorted vectors (Sorted::merge)", r"Sorted<K>::merge"),
    ("tables: recent inserts (Sorted::insert)", r"Sorted<K>::insert"),
    ("value slab (Values::add)", r"Values::add|[^_]add \(store.rs"),
    ("keys, one allocation each (ItemStore::shared_key)", r"shared_key"),
    ("held keys, in order (ItemStore::hold_key)", r"hold_key"),
    ("key list (KeyList::add_with)", r"KeyList::add_with"),
    ("item keys (keywalk item_keys)", r"note_item_key.*keywalk.rs:13[0-2]|keywalk.rs:130"),
    ("held keys (keywalk held_keys)", r"keywalk.rs:13[3-4]"),
    ("tables: sorted vectors (store merge)", r"Table<.*>::merge"),
    ("tables: recent maps (store insert)", r"store::Table<.*>::insert|TableOps>::insert"),
    ("value slab (store Values)", r"store::Values::add"),
    ("key list (KeyList::add)", r"KeyList::add"),
    ("recent sets (KeyList::note_set)", r"KeyList::note_set"),
    ("journal", r"journal::"),
]
def parse(path):
    lines = open(path).read().split("\n")
    snaps, cur = [], None
    i = 0
    while i < len(lines):
        l = lines[i]
        if l.startswith("snapshot="):
            cur = {"heap_tree": None}
            snaps.append(cur)
        elif l.startswith("mem_heap_B="):
            cur["heap"] = int(l.split("=")[1])
        elif l.startswith("heap_tree=") and l.split("=")[1] in ("peak", "detailed"):
            cur["kind"] = l.split("=")[1]
            root, i = tree(lines, i + 1, 0)
            cur["heap_tree"] = root
            continue
        i += 1
    return snaps
def tree(lines, i, depth):
    l = lines[i].strip()
    m = re.match(r"n(\d+): (\d+) (.*)", l)
    n, b, d = int(m.group(1)), int(m.group(2)), m.group(3)
    node = {"bytes": b, "desc": d, "kids": []}
    i += 1
    for _ in range(n):
        k, i = tree(lines, i, depth + 1)
        node["kids"].append(k)
    return node, i
def classify(node, out, top):
    for name, pat in CATS:
        if re.search(pat, node["desc"]):
            out[name] = out.get(name, 0) + node["bytes"]
            return
    if not node["kids"] or sum(k["bytes"] for k in node["kids"]) == 0:
        key = "other: " + top[:90]
        out[key] = out.get(key, 0) + node["bytes"]
        return
    rest = node["bytes"] - sum(k["bytes"] for k in node["kids"])
    if rest > 0:
        out["other: " + top[:90]] = out.get("other: " + top[:90], 0) + rest
    for k in node["kids"]:
        classify(k, out, top)
snaps = parse(sys.argv[1])
peak = max((s for s in snaps if s.get("heap_tree")), key=lambda s: s["heap"])
out = {}
for k in peak["heap_tree"]["kids"]:
    classify(k, out, re.sub(r"^0x[0-9A-F]+: ", "", k["desc"]))
total = peak["heap"]
print(f"peak heap {total/1e6:.1f} MB")
others = 0
for name, b in sorted(out.items(), key=lambda x: -x[1]):
    if name.startswith("other") and b < total * 0.01:
        others += b
        continue
    print(f"{b/1e6:8.1f} MB {100*b/total:5.1f}%  {name}")
print(f"{others/1e6:8.1f} MB {100*others/total:5.1f}%  other (each < 1%)")
