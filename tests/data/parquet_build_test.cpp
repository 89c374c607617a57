// What a Parquet source does in either build: read through Arrow where CMake found it, else an error that
// says how to build with it. A file that only looks like Parquet tells the two apart without pyarrow.
#include <unistd.h>

#include <filesystem>
#include <string>

#include "lumi/core/files.hpp"
#include "lumi/data/records.hpp"
#include "lumi/data/sources.hpp"
#include "test_errors.hpp"

namespace fs = std::filesystem;
using lumi::test::error_of;

TEST(ParquetBuild, AFileIsParquetByItsSuffixOrMagicAndReadOrRefusedClearly) {
    const fs::path dir = fs::temp_directory_path() / ("lumi_parquet_build_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const fs::path fake = dir / "data.bin";
    lumi::write_file_atomic(fake, std::string("PAR1") + std::string(64, '\0') + "PAR1");
    lumi::write_file_atomic(dir / "text.parquet.txt", "plain text");
    EXPECT_TRUE(lumi::data::is_parquet(fake));
    EXPECT_TRUE(lumi::data::is_parquet("missing/file.PARQUET"));
    EXPECT_FALSE(lumi::data::is_parquet(dir / "text.parquet.txt"));

    const std::string corpus = error_of([&] { lumi::data::read_records(fake); });
    const std::string records =
        error_of([&] { lumi::data::for_each_dataset_record(fake, false, [](const auto&, const auto&) {}); });
    for (const std::string& error : {corpus, records}) {
        EXPECT_CONTAINS(error, fake.string());
        if (lumi::data::parquet_available)
            EXPECT_CONTAINS(error, "not a readable Parquet file");
        else
            EXPECT_CONTAINS(error, "built without Parquet support: configure with -DLUMI_PARQUET=ON");
    }
    fs::remove_all(dir);
}
