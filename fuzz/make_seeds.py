#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs into fuzz/corpus/<target>/: small valid files of each format (and a
few near misses), from which libFuzzer mutates. Run from anywhere; the output is committed."""
import gzip
import json
import os
import struct
import subprocess

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    os.makedirs(os.path.join(root, target), exist_ok=True)
    with open(os.path.join(root, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


M = 2**64 - 1
P1, P2, P3, P4, P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63,
                      0x27D4EB2F165667C5)


def rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M


def xxh64(data, seed=0):
    """XXH64 as lumi's packed shards record it (data/packed.hpp)."""
    def round_(acc, lane):
        return (rotl((acc + lane * P2) & M, 31) * P1) & M

    def merge(acc, v):
        return ((acc ^ round_(0, v)) * P1 + P4) & M

    n, i = len(data), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed, (seed - P1) & M]
        while i + 32 <= n:
            for k in range(4):
                v[k] = round_(v[k], struct.unpack_from("<Q", data, i + 8 * k)[0])
            i += 32
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & M
        for k in range(4):
            h = merge(h, v[k])
    else:
        h = (seed + P5) & M
    h = (h + n) & M
    while i + 8 <= n:
        h = (rotl(h ^ round_(0, struct.unpack_from("<Q", data, i)[0]), 27) * P1 + P4) & M
        i += 8
    if i + 4 <= n:
        h = (rotl(h ^ (struct.unpack_from("<I", data, i)[0] * P1) & M, 23) * P2 + P3) & M
        i += 4
    while i < n:
        h = (rotl(h ^ (data[i] * P5) & M, 11) * P1) & M
        i += 1
    h ^= h >> 33
    h = (h * P2) & M
    h ^= h >> 29
    h = (h * P3) & M
    return h ^ (h >> 32)


def safetensors(tensors, metadata=None):
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


put("safetensors", "f32_with_metadata", safetensors(
    [("model.norm.weight", "F32", [4], struct.pack("<4f", 1, 1, 1, 1))], {"format": "pt"}))
put("safetensors", "mixed_dtypes", safetensors(
    [("a", "I64", [2], struct.pack("<2q", 7, -1)), ("b", "BF16", [1, 2], b"\x80\x3f\x00\x40"),
     ("c", "U8", [0], b""), ("d", "BOOL", [3], b"\x01\x00\x01")]))
put("safetensors", "empty_header", safetensors([]))


def shard(seq_len, rows, vocab, mask=None, segments=None):
    tokens = b"".join(struct.pack("<H", t) for row in rows for t in row)
    payload = tokens
    arrays = 1
    if segments is not None:
        payload += b"".join(struct.pack("<H", s) for row in segments for s in row)
        arrays |= 4
    if mask is not None:
        payload += bytes(m for row in mask for m in row)
        arrays |= 2
    header = b"LUMIPACK" + struct.pack("<IIII", 1, 2, arrays, vocab) + struct.pack(
        "<QQQ", seq_len, len(rows), xxh64(payload)) + b"a" * 64 + b"\0" * 16
    assert len(header) == 128
    return header + payload


put("packed_shard", "two_sequences", shard(4, [[1, 2, 3, 4], [5, 6, 7, 8]], 61))
put("packed_shard", "with_mask_and_segments",
    shard(3, [[1, 2, 3]], 61, mask=[[0, 1, 1]], segments=[[0, 0, 1]]))
put("packed_shard", "empty", shard(8, [], 61))

presets = os.path.join(os.path.dirname(root), "..", "presets", "pipeline")
with open(os.path.join(presets, "smoke.json")) as f:
    put("settings", "smoke_pipeline", f.read())
put("settings", "overrides", '{"pretrain": {"run": {"max_steps": 10}}}\0'
    'pretrain.optimizer.lr=3e-4\nsft.method=full\ncorpus.sources=[{"paths": ["a.txt"], "unit": "line"}]\n'
    'evaluation.tasks=["boolq"]\ngenerations.sampling.top_k=5')
put("settings", "bad_key", '{"pretrain": {"run": {"max_step": 10}}}')

put("corpus_lines", "paragraphs", b"\x02" + "First paragraph, café.\n\nSecond  one\twith spaces.\n".encode())
put("corpus_lines", "lines", b"\x04one line\nanother line\n\xff\xfe bad utf-8\n")
put("corpus_lines", "jsonl", b"\x09" + b'{"text": "a document"}\n{"text": "\\u00e9t\\u00e9"}\nnot json\n{"title": 1}\n')
put("corpus_lines", "gzip_jsonl", b"\x11" + gzip.compress(b'{"text": "compressed"}\n', mtime=0))
zstd = subprocess.run(["zstd", "-q", "-c"], input=b"zstd text\n\nsecond\n", capture_output=True, check=True).stdout
put("corpus_lines", "zstd_text", b"\x12" + zstd)

put("instructions", "alpaca", b"\x01" + json.dumps([
    {"instruction": "Name a colour.", "input": "", "output": "Blue."},
    {"instruction": "Add.", "input": "2 and 3", "output": "5"}]).encode())
put("instructions", "dolly", b"\x20" + b'{"instruction": "Why?", "context": "Because.", "response": "So.", '
    b'"category": "open_qa"}\n')
put("instructions", "oasst", b"\x21" + "\n".join(json.dumps(m) for m in [
    {"message_id": "a", "parent_id": None, "role": "prompter", "text": "Hi?", "lang": "en"},
    {"message_id": "b", "parent_id": "a", "role": "assistant", "text": "Hello.", "lang": "en", "rank": 0},
    {"message_id": "c", "parent_id": "b", "role": "prompter", "text": "More?", "lang": "en"},
    {"message_id": "d", "parent_id": "c", "role": "assistant", "text": "Yes.", "lang": "en"}]).encode())
put("instructions", "sharegpt", b"\x04" + json.dumps([{"conversations": [
    {"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"},
    {"from": "gpt", "value": "Hello"}, {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Bye"}]}]).encode())

hh = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Name a colour.\n\nAssistant: Blue.",
      "rejected": "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Name a colour.\n\nAssistant: No."}
put("preferences", "hh_rlhf", b"\x00" + (json.dumps(hh) + "\n" + json.dumps({"chosen": "x", "rejected": "y"})).encode())
put("preferences", "orca_pairs", b"\x04" + json.dumps([
    {"system": "Be brief.", "question": "2 + 2?", "chosen": "4", "rejected": "5"},
    {"prompt": "Say hi.", "chosen": "Hi.", "rejected": "Hi."}]).encode())
put("preferences", "messages_gzip", b"\x08" + gzip.compress((json.dumps({
    "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}],
    "chosen": [{"role": "assistant", "content": "Hello."}],
    "rejected": [{"role": "assistant", "content": "Go away."}]}) + "\n").encode(), mtime=0))
implicit = json.dumps({
    "chosen": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}],
    "rejected": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "No."}]}) + "\n"
put("preferences", "messages_zstd", b"\x0c" + subprocess.run(["zstd", "-q", "-c"], input=implicit.encode(),
                                                              capture_output=True, check=True).stdout)

put("hf_config", "llama", json.dumps({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu", "vocab_size": 4096,
    "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 8,
    "num_key_value_heads": 4, "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "tie_word_embeddings": True, "attention_bias": False, "mlp_bias": False, "rope_scaling": None,
    "torch_dtype": "float32"}, indent=2))
put("hf_config", "rope_parameters", json.dumps({
    "model_type": "llama", "vocab_size": 61, "hidden_size": 32, "intermediate_size": 64,
    "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 48, "head_dim": 8,
    "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}}))

# The state the fuzz target's own checkpoint has (trainer_state_fuzz.cpp: micro-batch 2 of 9 tokens).
state = {"step": 1, "tokens": 18, "loss": 4.1, "data": {"epoch": 0, "offset": 2}, "seed": 42,
         "micro_batch": 2, "grad_accum": 1, "world_size": 1, "torch": "1.13"}
put("trainer_state", "step_1", json.dumps(state, indent=2))
put("trainer_state", "finished", json.dumps(dict(state, step=2, tokens=36, data={"epoch": 0, "offset": 4})))
put("trainer_state", "next_epoch", json.dumps(dict(state, data={"epoch": 3, "offset": 6})))


def gguf_string(s):
    s = s.encode()
    return struct.pack("<Q", len(s)) + s


def gguf(metadata, tensors):
    """A GGUF v3 file: metadata [(key, type, payload bytes)], tensors [(name, dims, ggml type, data)]."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, kind, payload in metadata:
        head += gguf_string(key) + struct.pack("<I", kind) + payload
    data, offsets = b"", []
    for name, dims, kind, blob in tensors:
        offsets.append(len(data))
        data += blob + b"\0" * (-len(blob) % 32)
    for (name, dims, kind, blob), offset in zip(tensors, offsets):
        head += gguf_string(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        head += struct.pack("<IQ", kind, offset)
    return head + b"\0" * (-len(head) % 32) + data


q8_0_block = struct.pack("<e", 0.5) + bytes(range(32))
put("gguf", "every_type", gguf(
    [("general.architecture", 8, gguf_string("llama")), ("llama.block_count", 4, struct.pack("<I", 1)),
     ("a.f32", 6, struct.pack("<f", 1e-5)), ("a.bool", 7, b"\x01"), ("a.i64", 11, struct.pack("<q", -3)),
     ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 2) + gguf_string("<unk>") + gguf_string("\u2581a")),
     ("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 2) + struct.pack("<2f", 0.0, -1.5))],
    [("token_embd.weight", [4, 2], 0, struct.pack("<8f", *range(8))),
     ("blk.0.attn_q.weight", [32, 1], 8, q8_0_block),
     ("output_norm.weight", [4], 1, struct.pack("<4e", 1, 2, 3, 4)),
     ("output.weight", [2, 2], 30, struct.pack("<4H", 0x3F80, 0x4000, 0x4040, 0x4080))]))
put("gguf", "aligned_64", gguf([("general.alignment", 4, struct.pack("<I", 64))], []))


def proto_varint(n):
    out = b""
    while True:
        out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return out


def proto_field(number, wire, payload):
    key = proto_varint(number << 3 | wire)
    return key + (proto_varint(len(payload)) + payload if wire == 2 else payload)


def spm_piece(piece, score, kind):
    return proto_field(1, 2, proto_field(1, 2, piece.encode()) + proto_field(2, 5, struct.pack("<f", score)) +
                       proto_field(3, 0, proto_varint(kind)))


put("spm_model", "unigram", b"".join([
    spm_piece("<unk>", 0.0, 2), spm_piece("<s>", 0.0, 3),
    spm_piece("<0x41>", 0.0, 6), spm_piece("\u2581the", -3.25, 1),
    proto_field(2, 2, proto_field(3, 0, proto_varint(1)) + proto_field(35, 0, proto_varint(1))),
    proto_field(3, 2, proto_field(1, 2, b"nmt_nfkc") + proto_field(2, 2, b"\x04\0\0\0abcdxyz") +
                proto_field(4, 0, proto_varint(0)))]))
