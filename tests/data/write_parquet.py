#!/usr/bin/env python3
"""Writes the Parquet files lumi's Parquet tests read, with pyarrow (the real writer), into the folder given.

Each Parquet file has a JSON Lines twin with the same records, so a test can check that both read alike.
Usage: write_parquet.py <folder>
"""
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def write(folder, name, table, row_group_size, **options):
    pq.write_table(table, os.path.join(folder, name), row_group_size=row_group_size, **options)


def jsonl(folder, name, rows):
    with open(os.path.join(folder, name), "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(folder):
    os.makedirs(folder, exist_ok=True)

    # Corpus: 50 documents in 4 row groups, one null text, dictionary-encoded and zstd-compressed pages.
    texts = [f"Document {i}: the {'quick ' * (i % 5)}brown fox jumps over dog number {i}. café naïve"
             for i in range(50)]
    texts[17] = None
    corpus = pa.table({"id": pa.array(range(50), pa.int64()), "text": pa.array(texts, pa.string()),
                       "score": pa.array([i / 10 for i in range(50)], pa.float64())})
    write(folder, "corpus.parquet", corpus, 13, compression="zstd")
    jsonl(folder, "corpus.jsonl", [{"text": t} for t in texts if t is not None])
    # The same text as large_string, snappy, in a Hugging Face style folder of shards.
    shards = os.path.join(folder, "corpus_shards", "data")
    os.makedirs(shards, exist_ok=True)
    kept = [t for t in texts if t is not None]
    for k, part in enumerate((kept[:20], kept[20:])):
        table = pa.table({"content": pa.array(part, pa.large_string())})
        write(shards, f"train-{k:05d}-of-00002.parquet", table, 7, compression="snappy")
    with open(os.path.join(folder, "corpus_shards", "README.md"), "w") as out:
        out.write("not a shard\n")
    # Duplicates for the batch tests: exact repeats and near variants, spread over 30 row groups of 10 rows.
    words = ["river", "stone", "cloud", "lamp", "field", "winter", "harbour", "engine", "garden", "letter"]
    dups = []
    for i in range(300):
        base = i % 40
        text = " ".join(words[(base * 7 + k) % 10] + str((base * 13 + k) % 97) for k in range(40))
        if i % 3 == 1:
            text += " and one more word"
        dups.append(text)
    write(folder, "duplicates.parquet", pa.table({"text": pa.array(dups, pa.string())}), 10)
    # A text column that holds numbers.
    write(folder, "numbers.parquet", pa.table({"text": pa.array([1, 2, 3], pa.int64())}), 2)

    # Instructions: OpenOrca's columns, ShareGPT's nested conversations and OpenAssistant's messages.
    orca = [{"id": f"niv.{i}", "system_prompt": "You are a helpful assistant." if i % 2 else "",
             "question": f"What is {i} plus {i}?", "response": f"{i} plus {i} is {2 * i}."} for i in range(30)]
    write(folder, "orca.parquet", pa.Table.from_pylist(orca), 8, compression="zstd")
    jsonl(folder, "orca.jsonl", orca)
    sharegpt = [{"id": str(i), "conversations": [
        {"from": "system", "value": "Answer briefly."},
        {"from": "human", "value": f"Name a colour, {i}."}, {"from": "gpt", "value": "Blue."},
        {"from": "human", "value": "Another?"}, {"from": "gpt", "value": f"Red {i}."}]} for i in range(12)]
    write(folder, "sharegpt.parquet", pa.Table.from_pylist(sharegpt), 5)
    jsonl(folder, "sharegpt.jsonl", sharegpt)
    oasst = []
    for i in range(6):
        root = f"r{i}"
        oasst.append({"message_id": root, "parent_id": None, "role": "prompter", "text": f"Question {i}?",
                      "lang": "en", "rank": None, "deleted": False})
        oasst.append({"message_id": root + "a", "parent_id": root, "role": "assistant", "text": f"Answer {i}.",
                      "lang": "en", "rank": 0, "deleted": False})
        oasst.append({"message_id": root + "b", "parent_id": root, "role": "assistant", "text": "Worse.",
                      "lang": "en", "rank": 1, "deleted": False})
    write(folder, "oasst.parquet", pa.Table.from_pylist(oasst), 4)
    jsonl(folder, "oasst.jsonl", oasst)

    # Preferences: Intel's Orca DPO pairs (strings) and TRL's conversational messages (lists of structs).
    pairs = [{"system": "", "question": f"Say {i}.", "chosen": f"{i}.", "rejected": f"No {i}."} for i in range(20)]
    write(folder, "pairs.parquet", pa.Table.from_pylist(pairs), 6)
    jsonl(folder, "pairs.jsonl", pairs)
    messages = [{"prompt": [{"role": "user", "content": f"Count to {i}."}],
                 "chosen": [{"role": "assistant", "content": " ".join(map(str, range(1, i + 2)))}],
                 "rejected": [{"role": "assistant", "content": "I cannot."}]} for i in range(10)]
    write(folder, "messages.parquet", pa.Table.from_pylist(messages), 3)
    jsonl(folder, "messages.jsonl", messages)

    # Damage: a truncated file, and one whose second row group's page header is overwritten.
    with open(os.path.join(folder, "corpus.parquet"), "rb") as source:
        whole = source.read()
    with open(os.path.join(folder, "truncated.parquet"), "wb") as out:
        out.write(whole[: len(whole) // 2])
    column = pq.ParquetFile(os.path.join(folder, "corpus.parquet")).metadata.row_group(1).column(1)
    start = column.dictionary_page_offset if column.has_dictionary_page else column.data_page_offset
    damaged = bytearray(whole)
    damaged[start:start + 24] = b"\xff" * 24
    with open(os.path.join(folder, "corrupt.parquet"), "wb") as out:
        out.write(damaged)


if __name__ == "__main__":
    main(sys.argv[1])
