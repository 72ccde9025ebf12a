#!/usr/bin/env python3
"""Drives `tandem serve` with the official `openai` Python client, unchanged: models,
chat (whole and streamed), completions, embeddings (the client's default base64 and
floats), errors as exceptions, and 8 concurrent greedy requests giving the text each
gives alone. Starts its own server; exits non-zero on the first failure.

usage: openai-client-check.py [--tandem target/release/tandem] [--model MODEL.gguf]
"""
import argparse
import math
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import openai
from openai import OpenAI

KEY = "sk-tandem-check"


def start_server(tandem, model):
    proc = subprocess.Popen(
        [tandem, "serve", "-m", model, "--port", "0", "--parallel", "4",
         "-c", "2048", "-t", "2", "--api-key", KEY],
        stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        sys.stderr.write(line)
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            return proc, m.group(1)
    raise SystemExit("openai-client-check: the server exited before listening")


def check(cond, what):
    if not cond:
        raise SystemExit(f"openai-client-check: FAILED: {what}")
    print(f"openai-client-check: ok: {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tandem", default="target/release/tandem")
    ap.add_argument("--model", default="models/gemma-3-270m-q4_k_m.gguf")
    args = ap.parse_args()
    proc, url = start_server(args.tandem, args.model)
    try:
        run_checks(OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0))
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def run_checks(client):
    models = client.models.list()
    check(len(models.data) == 1 and models.data[0].id, f"models.list: {models.data[0].id}")
    model = models.data[0].id

    messages = [{"role": "user", "content": "Write one sentence about the sea."}]
    whole = client.chat.completions.create(
        model=model, messages=messages, max_tokens=24, temperature=0)
    text = whole.choices[0].message.content
    check(whole.choices[0].finish_reason in ("stop", "length") and text,
          f"chat: {text!r}")
    check(whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens,
          "chat usage adds up")

    pieces, finish, usage = [], None, None
    for chunk in client.chat.completions.create(
            model=model, messages=messages, max_tokens=24, temperature=0, stream=True,
            stream_options={"include_usage": True}):
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    check("".join(pieces) == text, "streamed chat says what the whole answer says")
    check(finish == whole.choices[0].finish_reason and usage == whole.usage,
          "stream's finish reason and usage")

    completion = client.completions.create(
        model=model, prompt="The capital of France is", max_tokens=8, temperature=0)
    check(completion.choices[0].text, f"completions: {completion.choices[0].text!r}")

    texts = ["The cat sat on the mat.", "Stock markets fell sharply today."]
    encoded = client.embeddings.create(model=model, input=texts)  # base64 by default
    floats = client.embeddings.create(model=model, input=texts, encoding_format="float")
    for e, f in zip(encoded.data, floats.data):
        norm = math.sqrt(sum(x * x for x in e.embedding))
        check(len(e.embedding) == 640 and abs(norm - 1) < 1e-4, "embedding is unit length")
        check(max(abs(a - b) for a, b in zip(e.embedding, f.embedding)) < 1e-6,
              "base64 and float embeddings agree")

    try:
        client.chat.completions.create(model=model, messages=messages, max_tokens=10**6)
        check(False, "max_tokens beyond the context raises")
    except openai.BadRequestError as e:
        check(e.status_code == 400, f"max_tokens beyond the context: 400 ({e.message})")
    try:
        OpenAI(base_url=client.base_url, api_key="wrong", max_retries=0).models.list()
        check(False, "a wrong key raises")
    except openai.AuthenticationError:
        check(True, "a wrong API key: 401")

    prompts = [f"List {n} animals:" for n in range(2, 10)]

    def greedy(prompt):
        return client.completions.create(
            model=model, prompt=prompt, max_tokens=32, temperature=0).choices[0].text

    alone = [greedy(p) for p in prompts]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(greedy, prompts))
    check(together == alone, "8 concurrent greedy requests give the text of one at a time")


if __name__ == "__main__":
    main()
