// lumi::lumi links LibTorch, SentencePiece (with protobuf) and Boost.JSON into one process. Two real clashes
// guarded here: Debian's binary SentencePiece carries a protobuf that aborts next to Debian's LibTorch, and
// PyPI's libtorch.so exports broken std::filesystem functions that must not win symbol lookup.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <lumi/core/torch.hpp>

namespace {

TEST(Linkage, SentencePieceTrainsAndEncodesInAProcessWithLibTorch) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("lumi_linkage_" + std::to_string(::getpid()));
    fs::create_directories(dir / "nested");
    {
        std::ofstream out(dir / "corpus.txt");
        for (int i = 0; i < 200; ++i)
            out << "the quick brown fox " << i << " jumps over the lazy dog, and the dog sleeps.\n";
    }
    const auto status = sentencepiece::SentencePieceTrainer::Train(
        "--input=" + (dir / "corpus.txt").string() + " --model_prefix=" + (dir / "m").string() +
        " --vocab_size=64 --model_type=unigram --minloglevel=2");
    ASSERT_TRUE(status.ok()) << status.ToString();

    sentencepiece::SentencePieceProcessor sp;
    ASSERT_TRUE(sp.Load((dir / "m.model").string()).ok());
    std::vector<int> ids;
    ASSERT_TRUE(sp.Encode("the lazy dog jumps", &ids).ok());
    std::string text;
    ASSERT_TRUE(sp.Decode(ids, &text).ok());
    EXPECT_EQ(text, "the lazy dog jumps");

    const auto tensor = torch::tensor(std::vector<std::int64_t>(ids.begin(), ids.end()));
    EXPECT_EQ(tensor.size(0), std::int64_t(ids.size()));
    EXPECT_EQ(fs::remove_all(dir), 5u);  // corpus, model, vocab, the folder and its subfolder
}

}  // namespace
