#!/usr/bin/env python3
"""Server CPU per message, broken down by what the time went to.

Reads `perf report --no-children --sort dso,sym --stdio` output (a profile of the `halo` process
over a measured run, e.g. `perf record -F 999 -p PID -- sleep 10`) on stdin, puts each symbol in a
category by its crate or library, and prints each category's share and, given the messages
stored during the profile and the server's CPU seconds, its microseconds per message:

    perf report -i perf.data --no-children --sort dso,sym --stdio 2>/dev/null \
        | host/bench/scripts/cpu-breakdown.py --messages 40000 --cpu-secs 9.1

Categories are a first look, not an attribution by call path: a `memcpy` counts under libc
whoever called it.
"""

import argparse
import re
import sys

# (category, patterns matched against "dso symbol"); first match wins.
CATEGORIES = [
    ("store: sled (trees, pages, log)", [r"\bsled::", r"crossbeam_epoch", r"\bcrc32fast"]),
    ("store: encode/decode (postcard, msgpack)", [r"\bpostcard::", r"\brmp_serde::", r"\brmp::", r"halo_store::codec"]),
    ("store: halo-store", [r"\bhalo_store::"]),
    ("search index (tantivy)", [r"\btantivy", r"\bhalo_search::", r"\bfst::", r"\bbitpacking"]),
    ("JSON (serde_json)", [r"\bserde_json::", r"\bserde::"]),
    ("WebSocket + HTTP (tungstenite, hyper, axum)", [r"tungstenite", r"\bhyper", r"\baxum", r"\bhttp::", r"\bh2::"]),
    ("services (halo-services, core, server)", [r"\bhalo_services::", r"\bhalo_core::", r"\bhalo_server::"]),
    ("async runtime (tokio)", [r"\btokio::", r"\bfutures", r"\bparking_lot", r"\bmio::"]),
    ("hashing, crypto (sha2, ring)", [r"\bsha2", r"\bring::", r"\baws_lc", r"\bblake"]),
    ("allocator (malloc, free)", [r"\bmalloc", r"\bfree\b", r"_int_malloc", r"_int_free", r"\bcfree", r"realloc", r"arena_get", r"tcache"]),
    ("libc: memcpy, memmove, string", [r"\bmem(cpy|move|set|cmp)", r"__memcpy", r"__memmove", r"__memset", r"strlen"]),
    ("kernel: scheduling, wake-ups (context switches, futex)", [r"kernel.*(task_switch|__schedule|schedule\b|spin_unlock_irqrestore|futex|irqentry|try_to_wake|ttwu|enqueue|dequeue|update_curr|pick_next)"]),
    ("kernel: network (loopback TCP)", [r"kernel.*(tcp|inet|sock|skb|\bip_|ip_|loopback|softirq|sendto|recvfrom|netif|napi|bbr_|_copy_to_iter|_copy_from_iter|epoll|sock_poll)"]),
    ("kernel: files, fsync, page cache", [r"kernel.*(ext4|jbd2|blk_|fsync|vfs_|iomap|filemap|folio|page|pwrite|pread|writeback)"]),
    ("kernel: other (syscalls, memory)", [r"\[kernel", r"\[k\]"]),
    ("libc: other", [r"libc\.so", r"libc-"]),
]

LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=float, help="messages stored during the profile")
    ap.add_argument("--cpu-secs", type=float, help="server CPU seconds during the profile")
    args = ap.parse_args()
    totals = {}
    other = {}
    for line in sys.stdin:
        m = LINE.match(line)
        if not m:
            continue
        pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
        text = f"{dso} {sym}" + (" [k]" if kind == "k" else "")
        for name, pats in CATEGORIES:
            if any(re.search(p, text) for p in pats):
                totals[name] = totals.get(name, 0.0) + pct
                break
        else:
            totals["other"] = totals.get("other", 0.0) + pct
            other[sym] = other.get(sym, 0.0) + pct
    whole = sum(totals.values()) or 1.0
    per_msg = None
    if args.messages and args.cpu_secs:
        per_msg = args.cpu_secs / args.messages * 1e6
        print(f"server CPU per message: {per_msg:.1f} µs ({args.cpu_secs:.2f} CPU-s / {args.messages:.0f} messages)")
    print("| share | µs/message | category |")
    print("|---:|---:|---|")
    for name, pct in sorted(totals.items(), key=lambda kv: -kv[1]):
        share = pct / whole
        us = f"{share * per_msg:.1f}" if per_msg else ""
        print(f"| {share * 100:.1f} % | {us} | {name} |")
    if other:
        top = sorted(other.items(), key=lambda kv: -kv[1])[:8]
        print("\nlargest uncategorised: " + ", ".join(f"{s} {p:.1f}%" for s, p in top), file=sys.stderr)


if __name__ == "__main__":
    main()
