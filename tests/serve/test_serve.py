"""lumi_serve_<preset> driven by real clients: OpenAI's own Python package (chat and completions, streamed and
not, models), raw HTTP for what that package cannot send (malformed JSON, missing key), 32 concurrent clients,
clients that disconnect mid-stream, overload (429) and SIGTERM under load.

  python test_serve.py --serve lumi_serve_nano --generate lumi_generate_nano --checkpoint DIR --tokenizer DIR --work DIR
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import openai

args = None
KEY = "test-key-123"
PROMPTS = ["Name a colour.", "Write a line of verse.", "What is the capital of France?"]


class Server:
    """A lumi_serve process on a free port; its output is kept for failures."""

    def __init__(self, *sets):
        cmd = [args.serve, "--set", f"checkpoint={args.checkpoint}", "--set", f"tokenizer={args.tokenizer}",
               "--set", "server.port=0", *[a for s in sets for a in ("--set", s)]]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        line = ""
        deadline = time.time() + 120
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.search(r"listening on http://([0-9.]+):([0-9]+)", line)
            if m:
                self.host, self.port = m.group(1), int(m.group(2))
                break
        else:
            raise AssertionError("lumi_serve did not start: " + "".join(self.lines))
        if not hasattr(self, "port"):
            raise AssertionError("lumi_serve exited: " + "".join(self.lines))
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        self.url = f"http://{self.host}:{self.port}"

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def client(self, key=KEY, **kw):
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=120, **kw)

    def raw(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, data

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def metrics(self):
        status, data = self.raw("GET", "/metrics", headers={"Authorization": f"Bearer {KEY}"})
        assert status == 200, (status, data)
        values = {}
        for line in data.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("lumi_serve did not stop within %d s: %s" % (timeout, "".join(self.lines[-20:])))


def generated(template, prompts, max_tokens):
    """What lumi_generate writes for the prompts: the reference the server's greedy answers must equal."""
    out = os.path.join(args.work, f"generate_{template}.jsonl")
    subprocess.run([args.generate, "--set", f"checkpoint={args.checkpoint}", "--set", f"tokenizer={args.tokenizer}",
                    "--set", f"prompt_template={template}", "--set", f"prompts={json.dumps(prompts)}",
                    "--set", f"sampling.max_new_tokens={max_tokens}", "--set", f"output={out}"],
                   check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return [json.loads(line)["completion"] for line in f]


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def test_api(server):
    client = server.client()
    models = client.models.list()
    check([m.id for m in models.data] == ["lumi-nano"], models)

    expected_chat = generated("instruct", PROMPTS, 24)
    expected_raw = generated("raw", PROMPTS, 24)
    for prompt, chat, raw in zip(PROMPTS, expected_chat, expected_raw):
        r = client.chat.completions.create(model="lumi-nano", messages=[{"role": "user", "content": prompt}],
                                           temperature=0, max_tokens=24)
        check(r.choices[0].message.content == chat, f"chat {prompt!r}: {r.choices[0].message.content!r} != {chat!r}")
        check(r.choices[0].finish_reason in ("stop", "length"), r)
        check(r.usage.completion_tokens >= 1 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens,
              r.usage)
        check(r.object == "chat.completion" and r.id.startswith("chatcmpl-"), r)

        chunks = list(client.chat.completions.create(model="lumi-nano", messages=[{"role": "user", "content": prompt}],
                                                     temperature=0, max_tokens=24, stream=True,
                                                     stream_options={"include_usage": True}))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        check(text == chat, f"streamed chat {prompt!r}: {text!r} != {chat!r}")
        check(chunks[0].choices[0].delta.role == "assistant", chunks[0])
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        check(finishes == [r.choices[0].finish_reason], finishes)
        check(chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == r.usage.completion_tokens, chunks[-1])

        c = client.completions.create(model="lumi-nano", prompt=prompt, temperature=0, max_tokens=24)
        check(c.choices[0].text == raw, f"completion {prompt!r}: {c.choices[0].text!r} != {raw!r}")
        streamed = "".join(x.choices[0].text for x in client.completions.create(
            model="lumi-nano", prompt=prompt, temperature=0, max_tokens=24, stream=True) if x.choices)
        check(streamed == raw, f"streamed completion {prompt!r}: {streamed!r} != {raw!r}")

    # A multi-turn conversation and a seeded sample: answered, and the same seed gives the same text.
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": PROMPTS[0]},
                {"role": "assistant", "content": expected_chat[0]}, {"role": "user", "content": PROMPTS[1]}]
    a = client.chat.completions.create(model="lumi-nano", messages=messages, temperature=0.9, seed=7, max_tokens=16)
    b = client.chat.completions.create(model="lumi-nano", messages=messages, temperature=0.9, seed=7, max_tokens=16)
    check(a.choices[0].message.content == b.choices[0].message.content, (a, b))
    stopped = client.completions.create(model="lumi-nano", prompt=PROMPTS[1], temperature=0, max_tokens=24,
                                        stop=[expected_raw[1][3:6]] if len(expected_raw[1]) > 6 else None)
    if len(expected_raw[1]) > 6:
        check(stopped.choices[0].text == expected_raw[1][:expected_raw[1].find(expected_raw[1][3:6])] and
              stopped.choices[0].finish_reason == "stop", stopped)
    print("api: models, chat and completions (streamed and not) equal lumi_generate; seeds repeat")


def expect_error(call, status, part):
    try:
        call()
    except openai.APIStatusError as e:
        check(e.status_code == status, f"status {e.status_code} != {status}: {e}")
        check(part in e.message, f"{part!r} not in {e.message!r}")
        return
    raise AssertionError(f"no error (expected {status} with {part!r})")


def test_bad_requests(server):
    client = server.client()
    chat = client.chat.completions.create
    user = [{"role": "user", "content": "hi"}]
    expect_error(lambda: chat(model="gpt-4", messages=user), 400, "unknown model \"gpt-4\"")
    expect_error(lambda: chat(model="lumi-nano", messages=user, frequency_penalty=0.5), 400,
                 "frequency_penalty: not supported by this server")
    expect_error(lambda: chat(model="lumi-nano", messages=user, n=2), 400, "n: only n = 1")
    expect_error(lambda: chat(model="lumi-nano", messages=user, temperature=3), 400, "temperature: must be in [0, 2]")
    expect_error(lambda: chat(model="lumi-nano", messages=[{"role": "assistant", "content": "x"}]), 400,
                 "messages[0].role: expected 'user'")
    expect_error(lambda: chat(model="lumi-nano", messages=user, max_tokens=100000), 400, "max_tokens: 100000 exceeds")
    expect_error(lambda: client.completions.create(model="lumi-nano", prompt="word " * 5000, max_tokens=8), 400,
                 "exceed the context of")
    expect_error(lambda: server.client(key="wrong").models.list(), 401, "API key")
    status, body = server.raw("POST", "/v1/chat/completions", body=b"{not json",
                              headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    check(status == 400 and b"not valid JSON" in body and json.loads(body)["error"]["type"] == "invalid_request_error",
          (status, body))
    status, body = server.raw("POST", "/v1/chat/completions", body=b"x" * (2 << 20),
                              headers={"Authorization": f"Bearer {KEY}"})
    check(status == 413, (status, body))
    status, _ = server.raw("GET", "/v1/nothing", headers={"Authorization": f"Bearer {KEY}"})
    check(status == 404, status)
    status, body = server.raw("GET", "/health")
    check(status == 200 and json.loads(body)["status"] == "ok", (status, body))
    # Still serving.
    r = client.chat.completions.create(model="lumi-nano", messages=user, temperature=0, max_tokens=4)
    check(r.choices[0].message.content is not None, r)
    print("bad requests: 400/401/404/413 naming the field, and the server keeps serving")


def load_round(server, expected):
    """32 concurrent clients, 3 requests each (alternately streamed): every answer equals the one alone."""
    def worker(i):
        client = server.client()
        for j in range(3):
            prompt = PROMPTS[(i + j) % len(PROMPTS)]
            if (i + j) % 2:
                text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
                    model="lumi-nano", messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=24,
                    stream=True) if c.choices)
            else:
                text = client.chat.completions.create(model="lumi-nano", messages=[{"role": "user", "content": prompt}],
                                                      temperature=0, max_tokens=24).choices[0].message.content
            check(text == expected[prompt], f"client {i} request {j}: {text!r} != {expected[prompt]!r}")
        return 3

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        return sum(pool.map(worker, range(32)))


def test_load(server):
    expected = dict(zip(PROMPTS, generated("instruct", PROMPTS, 24)))
    before = server.metrics()
    rss_idle = server.rss_kib()
    check(load_round(server, expected) == 96, "lost requests")
    rss_first = server.rss_kib()
    check(load_round(server, expected) == 96, "lost requests")
    rss_second = server.rss_kib()
    after = server.metrics()
    key = 'lumi_requests_total{endpoint="/v1/chat/completions",status="200"}'
    check(after.get(key, 0) - before.get(key, 0) == 192, (before.get(key), after.get(key)))
    check(after["lumi_active_requests"] == 0 and after["lumi_queue_length"] == 0, after)
    check(after["lumi_time_to_first_token_seconds_count"] >= 192, after)
    # A second round leaves memory where the first did: nothing per request is kept.
    check(rss_second <= rss_first + 16 * 1024, f"RSS grew from {rss_first} KiB to {rss_second} KiB")
    # And near the idle level: the KV cache is allocated at start; what load adds is the allocator's arenas
    # and 32 connection threads' stacks, which a leak per request would soon exceed.
    check(rss_second <= rss_idle + 48 * 1024, f"RSS {rss_second} KiB against {rss_idle} KiB idle")
    print(f"load: 2 x 32 clients x 3 requests, all equal to the answer alone; RSS idle {rss_idle} KiB, after each "
          f"round {rss_first} and {rss_second} KiB; "
          f"{after['lumi_decode_tokens_per_second']:.0f} decoded tokens/s")


def test_disconnects(server):
    body = json.dumps({"model": "lumi-nano", "messages": [{"role": "user", "content": PROMPTS[1]}], "stream": True,
                       "max_tokens": 200, "temperature": 0.8}).encode()
    for _ in range(8):
        s = socket.create_connection((server.host, server.port))
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
                  b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        check(b"200 OK" in s.recv(4096), "no stream started")
        s.close()  # gone mid-stream
    deadline = time.time() + 30
    while time.time() < deadline and server.metrics()["lumi_active_requests"] > 0:
        time.sleep(0.1)
    m = server.metrics()
    check(m["lumi_active_requests"] == 0, m)
    check(m.get('lumi_requests_total{endpoint="/v1/chat/completions",status="499"}', 0) >= 8, m)
    print("disconnects: 8 clients gone mid-stream, their rows freed")


def test_overload():
    server = Server(f"server.api_key={KEY}", "server.engine.max_batch=1", "server.engine.max_queue=1",
                    "server.sampling.stop_at_eos=false")  # each answer runs its 100 tokens
    try:
        def call(_):
            try:
                server.client().chat.completions.create(model="lumi-nano", messages=[{"role": "user", "content": "hi"}],
                                                        max_tokens=100, temperature=0.9)
                return 200
            except openai.RateLimitError as e:
                check("queue is full" in e.message, e.message)
                return 429
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(call, range(8)))
        check(429 in statuses and 200 in statuses, statuses)
        check(server.stop() == 0, "exit status")
        print(f"overload: {statuses.count(429)} of 8 answered 429, {statuses.count(200)} served")
    finally:
        if server.proc.poll() is None:
            server.proc.kill()


def test_sigterm(server):
    results = []

    def stream(i):
        try:
            chunks = list(server.client().chat.completions.create(
                model="lumi-nano", messages=[{"role": "user", "content": PROMPTS[i % 3]}], max_tokens=200,
                temperature=0.8, stream=True))
            results.append("finished" if chunks and chunks[-1].choices[0].finish_reason else "cut")
        except openai.APIError as e:
            results.append("error: " + e.message)

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    # Every stream admitted before the signal (a loaded machine may be slow to connect them).
    key = 'lumi_requests_total{endpoint="/v1/chat/completions",status="200"}'
    done_before = server.metrics().get(key, 0)

    def admitted():
        m = server.metrics()
        return m["lumi_active_requests"] + m["lumi_queue_length"] + m.get(key, 0) - done_before

    deadline = time.time() + 30
    while time.time() < deadline and admitted() < 12:
        time.sleep(0.02)
    started = time.time()
    status = server.stop(signal.SIGTERM)
    for t in threads:
        t.join(60)
    check(status == 0, f"exit status {status}")
    check(len(results) == 12, results)
    check(all(r == "finished" for r in results), results)  # within the grace period, every answer completes
    check(any("SIGTERM: finishing the requests in flight" in line for line in server.lines), server.lines)
    try:
        socket.create_connection((server.host, server.port), timeout=2).close()
        raise AssertionError("still accepting after SIGTERM")
    except OSError:
        pass
    print(f"SIGTERM under load: 12 streams finished, exit 0 after {time.time() - started:.1f} s")


def test_timeout():
    server = Server(f"server.api_key={KEY}", "server.request_timeout_seconds=0.05", "server.sampling.stop_at_eos=false",
                    "server.idle_timeout_seconds=0.5")
    try:
        expect_error(lambda: server.client().chat.completions.create(
            model="lumi-nano", messages=[{"role": "user", "content": "hi"}], max_tokens=200, temperature=1), 504, "timed out after")
        # A connection that sends nothing is closed after idle_timeout_seconds.
        idle = socket.create_connection((server.host, server.port))
        idle.settimeout(10)
        started = time.time()
        check(idle.recv(1) == b"", "an idle connection stayed open")
        check(time.time() - started < 5, "closed late")
        idle.close()
        check(server.stop() == 0, "exit status")
        print("timeout: a request past request_timeout_seconds is a 504; an idle connection is closed")
    finally:
        if server.proc.poll() is None:
            server.proc.kill()


def main():
    global args
    parser = argparse.ArgumentParser()
    for name in ("serve", "generate", "checkpoint", "tokenizer", "work"):
        parser.add_argument("--" + name, required=True)
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    server = Server(f"server.api_key={KEY}", "server.engine.max_batch=16")
    try:
        test_api(server)
        test_bad_requests(server)
        test_load(server)
        test_disconnects(server)
        test_sigterm(server)
    except BaseException:
        if server.proc.poll() is None:
            server.proc.kill()
        print("server output:\n" + "".join(server.lines[-40:]), file=sys.stderr)
        raise
    test_overload()
    test_timeout()
    print("test_serve: all passed")


if __name__ == "__main__":
    main()
