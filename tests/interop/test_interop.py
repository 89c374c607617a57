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


if __name__ == "__main__":
    unittest.main()
