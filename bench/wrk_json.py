#!/usr/bin/env python3
"""One wrk --latency report as a JSON line, for the gateway benchmarks.

    wrk_json.py FILE|- [KEY=VALUE ...]

Prints {"requests", "rps", "p50_ms", "p99_ms", "errors"} (errors: non-2xx
answers plus socket errors) and every KEY=VALUE given, as strings.
"""
import json
import re
import sys

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse(text):
    lat = {}
    for q, v, unit in re.findall(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M):
        lat[q] = float(v) * UNIT_MS[unit]
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    if not rps or not total:
        sys.exit("wrk_json.py: no wrk report in the input")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(x) for x in sock.groups()) if sock else 0)
    return {"requests": int(total.group(1)), "rps": float(rps.group(1)),
            "p50_ms": lat.get("50", 0), "p99_ms": lat.get("99", 0), "errors": errors}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    text = sys.stdin.read() if sys.argv[1] == "-" else open(sys.argv[1]).read()
    out = dict(kv.split("=", 1) for kv in sys.argv[2:])
    out.update(parse(text))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
