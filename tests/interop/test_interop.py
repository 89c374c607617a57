"""lumi's checkpoints, adapters and tokenizers in the real transformers and PEFT, and theirs in lumi.

Run by CTest (label interop) with the torch 2.x virtual environment's python; LUMI_INTEROP_TOOL names the
lumi_interop_tool executable that does the lumi side; text comes from the fixtures in tests/data/fixtures.
"""

import json
import os
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, LlamaTokenizer

LOGITS_TOLERANCE = 1e-4  # float32 logits of the same weights through two implementations
WEIGHTS_TOLERANCE = 1e-5  # merged LoRA weights: W + scale * B A computed twice


def tool(*args, check=True):
    """Runs lumi_interop_tool; a failure shows its stderr."""
    executable = os.environ.get("LUMI_INTEROP_TOOL")
    if not executable:
        raise unittest.SkipTest("LUMI_INTEROP_TOOL is not set (run through CTest)")
    result = subprocess.run([executable, *map(str, args)], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"lumi_interop_tool {' '.join(map(str, args))} failed "
                             f"({result.returncode}):\n{result.stderr}")
    return result


def preset_config(preset, **changes):
    """The LlamaConfig lumi writes for a preset, with fields changed."""
    fields = json.loads(tool("config", "--preset", preset).stdout)
    fields.pop("lumi")
    fields.update(changes)
    return LlamaConfig(**fields)


def load_hf(directory):
    model = LlamaForCausalLM.from_pretrained(directory, dtype=torch.float32)
    return model.eval()


class InteropCase(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)
        self.dir = Path(tempfile.mkdtemp(prefix="lumi_interop_"))
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def assertClose(self, actual, expected, tolerance, what):
        self.assertEqual(tuple(actual.shape), tuple(expected.shape), f"{what}: shapes differ")
        difference = (actual.float() - expected.float()).abs().max().item()
        self.assertLessEqual(difference, tolerance, f"{what}: max abs difference {difference:.3g}")


class LumiToTransformers(InteropCase):
    """A lumi checkpoint loads with LlamaForCausalLM.from_pretrained and gives lumi's logits."""

    def check(self, preset, seed):
        out = self.dir / preset
        tool("export", "--preset", preset, "--seed", seed, "--out", out)
        model = load_hf(out / "model")
        expected = load_file(out / "logits.safetensors")
        with torch.no_grad():
            logits = model(expected["ids"]).logits
        self.assertClose(logits, expected["logits"], LOGITS_TOLERANCE, f"{preset} logits")
        return model

    def test_nano_logits_equal(self):
        self.check("nano", 1)

    def test_tiny_logits_equal(self):
        self.check("tiny", 2)

    def test_grouped_query_logits_equal(self):
        model = self.check("nano_gqa", 3)
        self.assertEqual(model.config.num_key_value_heads, 2)

    def test_tied_embeddings_rope_theta_and_norm_eps_carry_over(self):
        model = self.check("nano_tied", 4)
        self.assertTrue(model.config.tie_word_embeddings)
        self.assertIs(model.lm_head.weight, model.model.embed_tokens.weight)
        self.assertEqual(model.config.rope_theta, 500000.0)
        self.assertEqual(model.config.rms_norm_eps, 1e-6)


class TransformersToLumi(InteropCase):
    """A checkpoint saved by transformers' save_pretrained loads into Transformer<S> with its logits."""

    def save_random(self, config, name):
        model = LlamaForCausalLM(config).eval()
        with torch.no_grad():
            for key, parameter in model.named_parameters():
                if key.endswith("norm.weight"):
                    parameter.normal_(1.0, 0.1)
                else:
                    parameter.normal_(0.0, 0.1)
        directory = self.dir / name
        model.save_pretrained(directory, safe_serialization=True)
        return model, directory

    def check(self, preset):
        model, directory = self.save_random(preset_config(preset), preset)
        ids = torch.randint(model.config.vocab_size, (2, 16))
        save_file({"ids": ids}, self.dir / "ids.safetensors")
        tool("logits", "--preset", preset, "--model", directory, "--ids", self.dir / "ids.safetensors",
             "--out", self.dir / "lumi.safetensors")
        with torch.no_grad():
            expected = model(ids).logits
        self.assertClose(load_file(self.dir / "lumi.safetensors")["logits"], expected, LOGITS_TOLERANCE,
                         f"{preset} logits")

    def test_nano_logits_equal(self):
        self.check("nano")

    def test_grouped_query_logits_equal(self):
        self.check("nano_gqa")

    def test_tied_embeddings_logits_equal(self):
        self.check("nano_tied")

    def test_other_shape_is_rejected_naming_the_fields(self):
        config = preset_config("nano", vocab_size=1024, hidden_size=96, head_dim=32, num_hidden_layers=2)
        _, directory = self.save_random(config, "other")
        ids, out = self.dir / "ids.safetensors", self.dir / "lumi.safetensors"
        save_file({"ids": torch.zeros(1, 4, dtype=torch.int64)}, ids)

        def load_as_nano(*extra):
            arguments = ["--preset", "nano", "--model", directory, "--ids", ids, "--out", out, *extra]
            return tool("logits", *arguments, check=False)

        result = load_as_nano()
        self.assertNotEqual(result.returncode, 0)
        for field in ("vocab_size: expected 4096, found 1024", "n_layer: expected 4, found 2",
                      "d_model: expected 192, found 96"):
            self.assertIn(field, result.stderr)
        self.assertFalse(out.exists())

        # Without config.json loading is refused, unless told to skip the check: then the tensors' shapes
        # themselves are compared.
        (directory / "config.json").unlink()
        result = load_as_nano()
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("config.json: missing", result.stderr)
        result = load_as_nano("--no-config-check")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("model.embed_tokens.weight: shape [1024, 96] in the checkpoint, [4096, 192] in the "
                      "model", result.stderr)
        self.assertIn("missing tensors: model.layers.2.", result.stderr)


class GreedyGeneration(InteropCase):
    """lumi's greedy decoding with a KV cache continues prompts as transformers' generate does."""

    new_tokens = 32

    def check(self, preset, seed):
        out = self.dir / preset
        tool("export", "--preset", preset, "--seed", seed, "--out", out)
        model = load_hf(out / "model")
        # Of different lengths: lumi decodes them as one left-padded batch, transformers one at a time.
        generator = torch.Generator().manual_seed(seed)
        vocab_size = model.config.vocab_size
        prompts = [torch.randint(3, vocab_size, (n,), generator=generator).tolist() for n in (8, 5)]
        (self.dir / "prompts.json").write_text(json.dumps(prompts))
        tool("generate", "--preset", preset, "--model", out / "model", "--prompts", self.dir / "prompts.json",
             "--max-new-tokens", self.new_tokens, "--out", self.dir / "generated.json")
        generated = json.loads((self.dir / "generated.json").read_text())
        for row, (prompt, lumi_tokens) in enumerate(zip(prompts, generated)):
            ids = torch.tensor([prompt])
            with torch.no_grad():
                # No EOS: neither side stops early nor masks a token.
                output = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                        max_new_tokens=self.new_tokens, min_new_tokens=self.new_tokens,
                                        eos_token_id=None, pad_token_id=0)
            hf_tokens = output[0, len(prompt):].tolist()
            self.assertEqual(len(hf_tokens), self.new_tokens)
            self.assertEqual(lumi_tokens, hf_tokens, f"{preset} prompt {row}")

    def test_nano_greedy_tokens_equal(self):
        self.check("nano", 5)

    def test_grouped_query_greedy_tokens_equal(self):
        self.check("nano_gqa", 6)


NFKC_LINES = [
    "The ﬁrst ﬂoor's ﬁnal oﬃce",  # ligatures ﬁ ﬂ ﬃ
    "ＦＵＬＬ－ｗｉｄｔｈ ｌｅｔｔｅｒｓ ａｎｄ ｄｉｇｉｔｓ １２３",  # full-width forms
    "Café ½ cup, x² and Ⅻ o'clock…",  # composed accents, fractions, superscripts, roman numerals, ellipsis
    "  two leading spaces, and   runs   of spaces  ",
    "Unseen scripts fall back to bytes: 漢字, Ελληνικά, עברית 🙂",
    "Numbers split into digits: 3.14159 and 2024-01-31",
]


class Tokenizer(InteropCase):
    """A tokenizer trained by lumi encodes text as transformers' LlamaTokenizer does."""

    def test_trained_tokenizer_encodes_as_llama_tokenizer(self):
        fixtures = Path(__file__).parents[1] / "data" / "fixtures"
        train_text = fixtures / "shakespeare.txt"
        held_out_text = fixtures / "wikitext-2-test.txt"
        # A slice to train on; held-out lines of another text to encode.
        lines = train_text.read_text(encoding="utf-8").splitlines()[:8000]
        (self.dir / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        held_out = [line for line in held_out_text.read_text(encoding="utf-8").splitlines() if line.strip()]
        held_out = held_out[:60] + NFKC_LINES
        (self.dir / "lines.txt").write_text("\n".join(held_out) + "\n", encoding="utf-8")

        tool("tokenizer", "--input", self.dir / "train.txt", "--vocab-size", 1000, "--out", self.dir / "tok",
             "--lines", self.dir / "lines.txt", "--encoded", self.dir / "encoded.json")
        lumi = json.loads((self.dir / "encoded.json").read_text(encoding="utf-8"))
        self.assertEqual(len(lumi["ids"]), len(held_out))

        for tokenizer in (LlamaTokenizer.from_pretrained(self.dir / "tok"),
                          AutoTokenizer.from_pretrained(self.dir / "tok", use_fast=False)):
            self.assertEqual(len(tokenizer), 1000)
            self.assertEqual((tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id,
                              tokenizer.pad_token_id), (0, 1, 2, 3))
            for line, ids, text in zip(held_out, lumi["ids"], lumi["decoded"]):
                # transformers reads "<unk>" in a text (WikiText has many) as the special token;
                # SentencePiece, so lumi, as five characters, as transformers does when told not to split.
                literal = {"split_special_tokens": any(t in line for t in tokenizer.all_special_tokens)}
                with_bos = tokenizer(line, **literal)["input_ids"]
                self.assertEqual(with_bos[0], tokenizer.bos_token_id, line)
                self.assertEqual(with_bos[1:], ids, line)
                self.assertEqual(tokenizer(line, add_special_tokens=False, **literal)["input_ids"], ids, line)
                # LlamaTokenizer removes SentencePiece's dummy prefix once more: a leading space is lost.
                self.assertEqual(tokenizer.decode(ids), text[1:] if text.startswith(" ") else text, line)
        # NFKC was applied (the ligature became two letters), and unseen characters became bytes, not <unk>.
        nfkc = dict(zip(held_out, lumi["ids"]))
        self.assertNotIn(0, sum(lumi["ids"], []))
        self.assertIn("first", tokenizer.decode(nfkc[NFKC_LINES[0]]))
        self.assertIn("FULL", tokenizer.decode(nfkc[NFKC_LINES[1]]))


class LoraToPeft(InteropCase):
    """A lumi LoRA adapter loads in PEFT with lumi's logits and merge; a PEFT adapter loads in lumi."""

    def test_adapter_logits_and_merge_equal_peft(self):
        from peft import PeftModel

        tool("lora-export", "--seed", 7, "--out", self.dir)
        expected = load_file(self.dir / "logits.safetensors")
        base = load_hf(self.dir / "base")
        with torch.no_grad():
            base_logits = base(expected["ids"]).logits
        model = PeftModel.from_pretrained(base, self.dir / "adapter").eval()
        with torch.no_grad():
            logits = model(expected["ids"]).logits
        self.assertClose(logits, expected["logits"], LOGITS_TOLERANCE, "LoRA logits")
        # The adapter must matter, or the comparison above proves nothing.
        self.assertGreater((logits - base_logits).abs().max().item(), 1e-2)

        merged = model.merge_and_unload().state_dict()
        lumi_merged = load_file(self.dir / "merged" / "model.safetensors")
        self.assertEqual(set(lumi_merged), set(merged))
        for name, tensor in lumi_merged.items():
            self.assertClose(merged[name], tensor, WEIGHTS_TOLERANCE, name)

    def test_peft_adapter_loads_in_lumi(self):
        from peft import LoraConfig, get_peft_model

        tool("lora-export", "--seed", 8, "--out", self.dir)
        config = json.loads((self.dir / "adapter" / "adapter_config.json").read_text())
        model = get_peft_model(load_hf(self.dir / "base"),
                               LoraConfig(r=config["r"], lora_alpha=config["lora_alpha"], lora_dropout=0.0,
                                          target_modules=config["target_modules"], task_type="CAUSAL_LM"))
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(0.0, 0.1)
        model.save_pretrained(self.dir / "peft_adapter")
        ids = torch.randint(4096, (2, 16))
        save_file({"ids": ids}, self.dir / "ids.safetensors")
        tool("lora-logits", "--base", self.dir / "base", "--adapter", self.dir / "peft_adapter", "--ids",
             self.dir / "ids.safetensors", "--out", self.dir / "lumi.safetensors")
        model.eval()
        with torch.no_grad():
            expected = model(ids).logits
        self.assertClose(load_file(self.dir / "lumi.safetensors")["logits"], expected, LOGITS_TOLERANCE,
                         "PEFT adapter logits in lumi")


class Gguf(InteropCase):
    """lumi's GGUF export in the real llama.cpp (llama-cpp-python): logits, greedy continuations and tokens."""

    F32_TOLERANCE = 1e-4  # of the largest logit: float32 weights, float32 KV cache
    HALF_TOLERANCE = {"f16": 1e-2, "bf16": 5e-2}  # of the largest logit; measured 3.4e-3 and 2.3e-2
    Q8_0_TOP1 = 0.99  # positions whose most likely token is lumi's
    Q8_0_MEAN_KL = 1e-3  # nats per position, KL(lumi || llama.cpp); measured 3e-5 on the trained nano

    @classmethod
    def setUpClass(cls):
        cls.root = Path(tempfile.mkdtemp(prefix="lumi_gguf_"))
        fixtures = Path(__file__).parents[1] / "data" / "fixtures"
        lines = (fixtures / "shakespeare.txt").read_text(encoding="utf-8").splitlines()[:8000]
        (cls.root / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        held_out = [line for line in (fixtures / "wikitext-2-test.txt").read_text(encoding="utf-8").splitlines()
                    if line.strip()][:60]
        cls.lines = held_out + NFKC_LINES + ["", " ", "a", "   ", "\t tab and newline-free text", "x" * 200]
        (cls.root / "lines.txt").write_text("\n".join(cls.lines) + "\n", encoding="utf-8")
        tool("tokenizer", "--input", cls.root / "train.txt", "--vocab-size", 1000, "--out", cls.root / "tok",
             "--lines", cls.root / "lines.txt", "--encoded", cls.root / "encoded.json")
        cls.encoded = json.loads((cls.root / "encoded.json").read_text(encoding="utf-8"))
        tool("export", "--preset", "nano", "--seed", 7, "--out", cls.root / "nano")
        # Longer sequences than the export's own, for the Q8_0 statistics.
        ids = torch.randint(4, 1000, (4, 64), generator=torch.Generator().manual_seed(3))
        save_file({"ids": ids}, cls.root / "ids.safetensors")
        tool("logits", "--preset", "nano", "--model", cls.root / "nano" / "model", "--ids", cls.root / "ids.safetensors",
             "--out", cls.root / "logits.safetensors")
        cls.expected = load_file(cls.root / "logits.safetensors")
        cls.files = {}
        for kind in ("f32", "f16", "bf16", "q8_0"):
            cls.files[kind] = cls.export(kind)
        cls.files["llama"] = cls.export("f32", vocab="llama")
        # A model trained briefly, whose predictions are peaked as a real model's are, for Q8_0's statistics on
        # held-out text (a random model's near-ties would flip under any rounding).
        tool("train", "--tokenizer", cls.root / "tok", "--input", cls.root / "train.txt", "--out", cls.root / "trained")
        text_ids = [i for ids in cls.encoded["ids"][:60] for i in ids][: 4 * 64]
        save_file({"ids": torch.tensor(text_ids).reshape(4, 64)}, cls.root / "text_ids.safetensors")
        tool("logits", "--preset", "nano", "--model", cls.root / "trained", "--ids", cls.root / "text_ids.safetensors",
             "--out", cls.root / "trained_logits.safetensors")
        cls.trained_expected = load_file(cls.root / "trained_logits.safetensors")
        cls.files["trained_q8_0"] = cls.export("q8_0", checkpoint=cls.root / "trained", name="trained")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    @classmethod
    def export(cls, kind, vocab="t5", checkpoint=None, name="nano"):
        out = cls.root / f"{name}-{kind}-{vocab}.gguf"
        checkpoint = checkpoint or cls.root / "nano" / "model"
        tool("gguf", "--set", f"checkpoint={checkpoint}", "--set", f"tokenizer={cls.root / 'tok'}",
             "--set", f"output={out}", "--set", f"type={kind}", "--set", f"vocab={vocab}", "--set", "name=lumi-nano")
        return out

    @staticmethod
    def llama(path, **kwargs):
        from llama_cpp import Llama
        # float32 KV cache: the default float16 one would round every key and value.
        return Llama(model_path=str(path), n_ctx=256, n_batch=256, n_threads=2, logits_all=True, type_k=0,
                     type_v=0, verbose=False, **kwargs)

    @staticmethod
    def llama_logits(model, ids):
        model.reset()
        model.eval(ids)
        return torch.tensor(model.scores[: len(ids)], dtype=torch.float32)

    def logits_of(self, kind, ids=None):
        model = self.llama(self.files[kind])
        rows = [self.llama_logits(model, row.tolist()) for row in (self.expected["ids"] if ids is None else ids)]
        return torch.stack(rows)

    def relative_error(self, kind):
        expected = self.expected["logits"]
        error = ((self.logits_of(kind) - expected).abs().max() / expected.abs().max()).item()
        print(f"\n{kind}: largest logit difference {error:.2e} of the largest logit")
        return error

    def test_metadata_and_q8_0_blocks_read_by_gguf(self):
        import gguf
        reader = gguf.GGUFReader(self.files["q8_0"])
        field = lambda name: reader.fields[name].contents()
        self.assertEqual([k for k in reader.fields if not k.startswith("GGUF.")], [
            "general.architecture", "general.type", "general.name", "general.file_type",
            "general.quantization_version", "llama.vocab_size", "llama.context_length", "llama.embedding_length",
            "llama.block_count", "llama.feed_forward_length", "llama.attention.head_count",
            "llama.attention.head_count_kv", "llama.rope.dimension_count", "llama.rope.freq_base",
            "llama.attention.layer_norm_rms_epsilon", "tokenizer.ggml.model", "tokenizer.ggml.tokens",
            "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id",
            "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
            "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token", "tokenizer.ggml.add_space_prefix",
            "tokenizer.ggml.remove_extra_whitespaces", "tokenizer.ggml.precompiled_charsmap", "lumi.spec",
            "lumi.tokenizer_sha256"])
        block = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                 "ffn_down"]
        self.assertEqual([t.name for t in reader.tensors],
                         ["token_embd.weight"] + [f"blk.{i}.{b}.weight" for i in range(4) for b in block] +
                         ["output_norm.weight", "output.weight"])
        self.assertEqual(field("llama.embedding_length"), 192)
        self.assertEqual(field("llama.feed_forward_length"), 768)
        self.assertEqual(field("llama.context_length"), 256)
        self.assertEqual(field("llama.rope.dimension_count"), 64)
        self.assertEqual(field("general.file_type"), 7)
        self.assertEqual(field("general.architecture"), "llama")
        self.assertEqual(field("general.name"), "lumi-nano")
        self.assertEqual(field("llama.block_count"), 4)
        self.assertEqual(field("llama.attention.head_count"), 3)
        self.assertEqual(field("tokenizer.ggml.model"), "t5")
        self.assertEqual(len(field("tokenizer.ggml.tokens")), 4096)
        weights = load_file(self.root / "nano" / "model" / "model.safetensors")
        tensors = {t.name: t for t in reader.tensors}
        self.assertEqual(tensors["blk.0.ffn_up.weight"].tensor_type, gguf.GGMLQuantizationType.Q8_0)
        self.assertEqual(tensors["blk.0.attn_norm.weight"].tensor_type, gguf.GGMLQuantizationType.F32)
        up = torch.from_numpy(gguf.quants.dequantize(tensors["blk.0.ffn_up.weight"].data, gguf.GGMLQuantizationType.Q8_0))
        original = weights["model.layers.0.mlp.up_proj.weight"]
        scale = original.abs().reshape(-1, 32).amax(1).repeat_interleave(32).reshape(original.shape) / 127
        # Rounding to the block's scale, which is itself rounded to float16 (127 steps of its error at most).
        self.assertTrue(((up - original).abs() <= 0.6 * scale).all())
        self.assertGreater((up - original).abs().max(), 0.4 * scale.min())  # quantised, not copied

    def test_f32_logits_equal_lumis_and_transformers(self):
        self.assertLessEqual(self.relative_error("f32"), self.F32_TOLERANCE)
        hf = load_hf(self.root / "nano" / "model")
        with torch.no_grad():
            hf_logits = hf(self.expected["ids"]).logits
        relative = ((self.logits_of("f32") - hf_logits).abs().max() / hf_logits.abs().max()).item()
        self.assertLessEqual(relative, self.F32_TOLERANCE)

    def test_half_precision_logits_within_their_precision(self):
        for kind, tolerance in self.HALF_TOLERANCE.items():
            with self.subTest(kind=kind):
                self.assertLessEqual(self.relative_error(kind), tolerance)

    def test_q8_0_agrees_on_the_most_likely_token(self):
        expected = self.trained_expected["logits"].reshape(-1, 4096)
        got = self.logits_of("trained_q8_0", self.trained_expected["ids"]).reshape(-1, 4096)
        top1 = (expected.argmax(-1) == got.argmax(-1)).float().mean().item()
        kl = torch.nn.functional.kl_div(got.log_softmax(-1), expected.log_softmax(-1), log_target=True,
                                        reduction="batchmean").item()
        print(f"\nQ8_0: top-1 agreement {top1:.4f} over {len(expected)} positions, mean KL {kl:.2e} nats")
        self.assertGreaterEqual(top1, self.Q8_0_TOP1)
        self.assertLessEqual(kl, self.Q8_0_MEAN_KL)

    def test_greedy_continuations_equal_lumis(self):
        new_tokens = 24
        generator = torch.Generator().manual_seed(11)
        prompts = [torch.randint(4, 1000, (n,), generator=generator).tolist() for n in (8, 5, 12)]
        (self.root / "prompts.json").write_text(json.dumps(prompts))
        tool("generate", "--preset", "nano", "--model", self.root / "nano" / "model", "--prompts",
             self.root / "prompts.json", "--max-new-tokens", new_tokens, "--out", self.root / "generated.json")
        generated = json.loads((self.root / "generated.json").read_text())
        model = self.llama(self.files["f32"])
        for prompt, lumi_tokens in zip(prompts, generated):
            model.reset()
            model.eval(prompt)
            tokens = []
            for _ in range(new_tokens):
                tokens.append(int(model.scores[model.n_tokens - 1].argmax()))
                model.eval([tokens[-1]])
            self.assertEqual(tokens, lumi_tokens, f"prompt {prompt}")

    def test_t5_vocabulary_tokenizes_as_sentencepiece(self):
        """Equal ids, but for two documented differences (docs/gguf.md): a character SentencePiece spells in
        byte pieces is one <unk> in llama.cpp's unigram tokenizer, which has no byte fallback, and text of
        spaces only gets no dummy-prefix space."""
        model = self.llama(self.files["f32"], vocab_only=True)
        import gguf
        types = gguf.GGUFReader(self.files["f32"]).fields["tokenizer.ggml.token_type"].contents()
        self.assertEqual([i for i, t in enumerate(types) if t == 6], list(range(4, 260)))  # the byte pieces
        exact = 0
        for line, ids in zip(self.lines, self.encoded["ids"]):
            got = model.tokenize(line.encode("utf-8"), add_bos=False, special=False)
            expected = self.bytes_as_unknown(ids)
            if line.strip(" ") == "":
                expected = expected[1:]
            self.assertEqual(got, expected, repr(line))
            exact += got == ids
        self.assertGreaterEqual(exact, 8, "lines without byte pieces tokenize exactly alike")
        self.assertLess(exact, len(self.lines), "some lines need byte pieces")

    def test_llama_vocabulary_segments_otherwise(self):
        """llama.cpp's `llama` vocabulary merges pieces by score (BPE-style), not by the unigram model's best
        segmentation: it gives other ids for many lines, which is why the exporter writes `t5` by default."""
        model = self.llama(self.files["llama"], vocab_only=True)
        same = sum(model.tokenize(line.encode("utf-8"), add_bos=False, special=False) == ids
                   for line, ids in zip(self.lines, self.encoded["ids"]))
        print(f"\nllama vocabulary: {same} of {len(self.lines)} lines tokenized as SentencePiece does")
        self.assertLess(same, len(self.lines))

    @staticmethod
    def bytes_as_unknown(ids):
        """Each run of byte pieces (ids 4..259, <0x00>..<0xFF>, after the four special pieces) as one <unk> (0)."""
        out = []
        for i in ids:
            if 4 <= i < 260:
                if not out or out[-1] != 0:
                    out.append(0)
            else:
                out.append(i)
        return out


class DpoAgainstTrl(InteropCase):
    """lumi's DPO objective equals TRL's DPOTrainer on the same PEFT model and batch of pairs: the loss, TRL's
    metrics and the gradient of the loss with respect to every LoRA parameter."""

    GRADIENT_TOLERANCE = 1e-4  # relative to the largest gradient, float32 through two implementations

    def compare(self, loss_type, beta, label_smoothing=0.0):
        from datasets import Dataset
        from peft import PeftModel
        from tokenizers import Tokenizer as RawTokenizer
        from tokenizers.models import WordLevel
        from transformers import PreTrainedTokenizerFast
        from trl import DPOConfig, DPOTrainer

        tool("dpo", "--seed", 11, "--loss", loss_type, "--beta", beta, "--label-smoothing", label_smoothing,
             "--out", self.dir)
        lumi = json.loads((self.dir / "dpo.json").read_text())
        lumi_grads = load_file(self.dir / "grads.safetensors")
        pairs = json.loads((self.dir / "pairs.json").read_text())

        model = PeftModel.from_pretrained(load_hf(self.dir / "base"), self.dir / "adapter", is_trainable=True)
        model.eval()
        # TRL only needs a tokenizer for its pad id and to tokenise the (unused) dataset it is built with.
        vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3, "x": 4}
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=RawTokenizer(WordLevel(vocab, unk_token="<unk>")),
                                            unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>")
        args = DPOConfig(output_dir=str(self.dir / "trl"), beta=beta, label_smoothing=label_smoothing,
                         loss_type=loss_type, report_to=[], use_cpu=True, bf16=False, fp16=False,
                         per_device_train_batch_size=len(pairs))
        trainer = DPOTrainer(model=model, ref_model=None, args=args, processing_class=tokenizer,
                             train_dataset=Dataset.from_list([{"prompt": "x", "chosen": "x", "rejected": "x x"}]))
        batch = trainer.data_collator(pairs)
        loss, metrics = trainer.get_batch_loss_metrics(trainer.model, batch)
        loss.backward()

        self.assertAlmostEqual(lumi["loss"], loss.item(), delta=1e-5 * max(1.0, abs(loss.item())))
        for name in ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                     "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected"):
            self.assertAlmostEqual(lumi["metrics"][name], metrics[name], delta=1e-4 * max(1.0, abs(metrics[name])),
                                   msg=name)
        # The policy has moved away from the reference, or equal losses would prove little.
        self.assertGreater(abs(metrics["rewards/margins"]), 1e-3)

        trl_grads = {name.replace(".default", ""): p.grad for name, p in trainer.model.named_parameters()
                     if p.requires_grad}
        self.assertEqual(set(lumi_grads), set(trl_grads))
        scale = max(g.abs().max().item() for g in trl_grads.values())
        self.assertGreater(scale, 1e-6)
        for name, grad in trl_grads.items():
            self.assertClose(lumi_grads[name], grad, self.GRADIENT_TOLERANCE * scale, f"gradient of {name}")

    def test_sigmoid_loss_equals_trl(self):
        self.compare("sigmoid", beta=0.1)

    def test_label_smoothed_sigmoid_equals_trl(self):
        self.compare("sigmoid", beta=0.5, label_smoothing=0.2)

    def test_ipo_equals_trl(self):
        self.compare("ipo", beta=0.3)


class OptimizerAgainstTorch(InteropCase):
    """lumi's AdamW, Muon and MuonAdamW equal torch.optim.AdamW and torch.optim.Muon step by step on the same
    parameters and gradients, for each of Muon's learning-rate adjustments, with clipping, a schedule's factor
    and momentum warm-up; and resuming from a saved state in the middle equals the uninterrupted run."""

    TOLERANCE = 2e-6  # float32 state through two implementations of the same operations
    SHAPES = {
        "model.embed_tokens.weight": (64, 16),
        "model.layers.0.input_layernorm.weight": (16,),
        "model.layers.0.self_attn.q_proj.weight": (16, 16),
        "model.layers.0.mlp.gate_proj.weight": (48, 16),  # tall: iterated on its transpose
        "model.layers.0.mlp.down_proj.weight": (16, 48),
        "model.norm.weight": (16,),
        "lm_head.weight": (64, 16),
    }
    HIDDEN = ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.gate_proj.weight",
              "model.layers.0.mlp.down_proj.weight")
    STEPS = 10

    @staticmethod
    def factor(step):
        return 1.0 - 0.05 * step  # as lumi_interop_tool's optimizer subcommand

    def run_both(self, kind, settings, resume_at=0):
        names = self.HIDDEN if kind == "muon" else tuple(self.SHAPES)
        params = {n: torch.randn(self.SHAPES[n]) for n in names}
        grads = {f"{s}.{n}": torch.randn(self.SHAPES[n]) * (0.5 + s) for s in range(self.STEPS) for n in names}
        save_file(params, self.dir / "params.safetensors")
        save_file(grads, self.dir / "grads.safetensors")
        # torch.optim.Muon iterates in bfloat16; lumi's default (auto) is float32 on the CPU.
        if kind == "muon":
            settings = {"ns_dtype": "bfloat16", **settings}
        elif kind == "muon_adamw":
            settings = {**settings, "muon": {"ns_dtype": "bfloat16", **settings.get("muon", {})}}
        (self.dir / "settings.json").write_text(json.dumps(settings))
        tool("optimizer", "--kind", kind, "--dir", self.dir, "--steps", self.STEPS, "--resume-at", resume_at)
        lumi = load_file(self.dir / "result.safetensors")

        ours = {n: t.clone().requires_grad_() for n, t in params.items()}
        muon_settings = settings if kind == "muon" else settings.get("muon", {})
        adamw_settings = settings if kind == "adamw" else settings.get("adamw", {})
        optimizers = []  # (optimizer, peak lr)
        if kind in ("muon", "muon_adamw"):
            m = {"lr": 0.02, "momentum": 0.95, "nesterov": True, "ns_coefficients": [3.4445, -4.7750, 2.0315],
                 "ns_steps": 5, "eps": 1e-7, "adjust_lr": "original", "weight_decay": 0.0, **muon_settings}
            muon = torch.optim.Muon([ours[n] for n in self.HIDDEN], lr=m["lr"], weight_decay=m["weight_decay"],
                                    momentum=m["momentum"], nesterov=m["nesterov"],
                                    ns_coefficients=tuple(m["ns_coefficients"]), eps=m["eps"],
                                    ns_steps=m["ns_steps"], adjust_lr_fn=m["adjust_lr"])
            optimizers.append((muon, m["lr"]))
        if kind in ("adamw", "muon_adamw"):
            a = {"lr": 3e-4, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, **adamw_settings}
            rest = [n for n in names if kind == "adamw" or n not in self.HIDDEN]
            groups = [{"params": [ours[n] for n in rest if ours[n].dim() >= 2], "weight_decay": a["weight_decay"]},
                      {"params": [ours[n] for n in rest if ours[n].dim() < 2], "weight_decay": 0.0}]
            adamw = torch.optim.AdamW(groups, lr=a["lr"], betas=(a["beta1"], a["beta2"]), eps=a["eps"])
            optimizers.append((adamw, a["lr"]))
        clip = adamw_settings.get("grad_clip", 1.0) if kind != "muon" else 0.0
        for s in range(self.STEPS):
            for n, p in ours.items():
                p.grad = grads[f"{s}.{n}"].clone()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(list(ours.values()), clip)
            for optimizer, lr in optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = lr * self.factor(s)
                    if isinstance(optimizer, torch.optim.Muon) and muon_settings.get("momentum_warmup_steps"):
                        start, end = muon_settings.get("momentum_start", 0.85), muon_settings.get("momentum", 0.95)
                        done = min(1.0, s / muon_settings["momentum_warmup_steps"])
                        group["momentum"] = start + (end - start) * done
                optimizer.step()
        self.assertEqual(set(lumi), set(ours))
        for n, p in ours.items():
            self.assertGreater((p.detach() - params[n]).abs().max().item(), 1e-4, f"{n} did not move")
            self.assertClose(lumi[n], p.detach(), self.TOLERANCE * max(1.0, p.abs().max().item()), n)

    def test_adamw_equals_torch(self):
        self.run_both("adamw", {"lr": 1e-2, "weight_decay": 0.1, "grad_clip": 0.0})

    def test_adamw_with_clipping_and_resume_equals_torch(self):
        self.run_both("adamw", {"lr": 1e-2, "grad_clip": 5.0}, resume_at=4)

    def test_muon_original_adjustment_equals_torch(self):
        self.run_both("muon", {"lr": 0.02, "weight_decay": 0.1})

    def test_muon_match_rms_adamw_equals_torch(self):
        self.run_both("muon", {"lr": 0.01, "adjust_lr": "match_rms_adamw", "weight_decay": 0.05})

    def test_muon_without_nesterov_float32_iterations_equal_torch(self):
        # PyTorch iterates in bfloat16 only: the reference is its own iteration with bfloat16 replaced by float32.
        import inspect
        from unittest import mock
        import torch.optim._muon as muon_module
        source = inspect.getsource(muon_module._zeropower_via_newtonschulz)
        self.assertIn("grad.bfloat16()", source)
        namespace = dict(vars(muon_module))
        exec(source.replace("grad.bfloat16()", "grad.float()"), namespace)
        with mock.patch.object(muon_module, "_zeropower_via_newtonschulz", namespace["_zeropower_via_newtonschulz"]):
            self.run_both("muon", {"nesterov": False, "ns_dtype": "float32", "ns_steps": 3})

    def test_muon_adamw_with_clipping_momentum_warmup_and_resume_equals_torch(self):
        self.run_both("muon_adamw", {"muon": {"lr": 0.03, "momentum_warmup_steps": 6, "weight_decay": 0.01},
                                     "adamw": {"lr": 5e-3, "grad_clip": 8.0}}, resume_at=5)


if __name__ == "__main__":
    unittest.main()
