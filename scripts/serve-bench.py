#!/usr/bin/env python3
"""Server throughput: N greedy completions of T tokens one after another, then all at
once, against an OpenAI-compatible server (tandem serve or llama-server). Prints the
aggregate tokens/s of each, their ratio, time to first token and inter-token latency.

usage: serve-bench.py --url http://127.0.0.1:8080 [-n 8] [--tokens 64] [--label NAME]
Start the server first, e.g.
  tandem serve -m MODEL --parallel 8 -c 4096 -t 2 --port 8080
  llama-server -m MODEL -np 8 -c 4096 -t 2 --port 8081
"""
import argparse
import json
import statistics
import threading
import time
import urllib.parse
import http.client

PROMPTS = [
    "Once upon a time, in a small village by the sea,",
    "The history of the Roman Empire begins",
    "Here is a list of useful kitchen tools:",
    "The main ideas of thermodynamics are",
    "Dear diary, today I",
    "In the year 2050, cities will",
    "The best way to learn a language is",
    "A short story about a robot who",
    "Ten facts about the ocean:",
    "The recipe calls for flour, eggs and",
    "My favourite programming language is",
    "Mountains are formed when",
    "The train left the station at noon and",
    "An introduction to linear algebra:",
    "The old lighthouse keeper said",
    "Why the sky is blue:",
]


def stream_one(url, prompt, tokens):
    """One streamed completion; returns (t_start, t_first, t_last, n_tokens)."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    body = json.dumps({"prompt": prompt, "max_tokens": tokens, "temperature": 0,
                       "ignore_eos": True, "stream": True,
                       "stream_options": {"include_usage": True}})
    t_start = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    t_first = t_last = None
    chunks = 0
    usage = None
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        data = json.loads(line[6:])
        if data.get("usage"):
            usage = data["usage"]["completion_tokens"]
        for choice in data.get("choices", []):
            if choice.get("text"):
                now = time.perf_counter()
                t_first = t_first or now
                t_last = now
                chunks += 1
    conn.close()
    return t_start, t_first, t_last, usage or chunks


def run(url, prompts, tokens, concurrent):
    results = [None] * len(prompts)

    def work(i):
        results[i] = stream_one(url, prompts[i], tokens)

    t0 = time.perf_counter()
    if concurrent:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for i in range(len(prompts)):
            work(i)
    wall = time.perf_counter() - t0
    n = sum(r[3] for r in results)
    ttft = [r[1] - r[0] for r in results]
    itl = [(r[2] - r[1]) / (r[3] - 1) for r in results if r[3] > 1]
    return {"tokens": n, "wall_s": wall, "tps": n / wall,
            "ttft_ms": 1e3 * statistics.median(ttft),
            "ttft_max_ms": 1e3 * max(ttft),
            "itl_ms": 1e3 * statistics.median(itl)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("-n", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--label", default="server")
    ap.add_argument("--concurrent-only", action="store_true",
                    help="skip the one-after-another run (e.g. to profile the server)")
    args = ap.parse_args()
    prompts = PROMPTS[:args.n]
    stream_one(args.url, "Warm up", 4)
    par = run(args.url, prompts, args.tokens, True)
    if args.concurrent_only:
        seq = None
    else:
        seq = run(args.url, prompts, args.tokens, False)
    for name, r in (("one after another", seq), (f"{args.n} concurrent", par)):
        if r is None:
            continue
        print(f"{args.label}: {name:>18}: {r['tokens']} tokens in {r['wall_s']:.2f} s = "
              f"{r['tps']:.1f} t/s; TTFT median {r['ttft_ms']:.0f} ms (max {r['ttft_max_ms']:.0f}),"
              f" inter-token {r['itl_ms']:.1f} ms")
    if seq:
        print(f"{args.label}: aggregate speed-up {par['tps'] / seq['tps']:.2f}x")


if __name__ == "__main__":
    main()
