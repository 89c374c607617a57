#pragma once

// Parquet sources through Apache Arrow's C++ Parquet reader (the libraries PyPI's pyarrow wheel ships; CMake
// finds them, see docs/data.md). A file is read one row group at a time and only the columns asked for, so
// memory holds one row group's columns, not the file. Built without Arrow (LUMI_HAS_PARQUET unset), a Parquet
// file is an error that says how to enable it.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include "lumi/core/error.hpp"
#include "lumi/data/text.hpp"

#ifndef LUMI_HAS_PARQUET
#define LUMI_HAS_PARQUET 0
#endif
#if LUMI_HAS_PARQUET
#include <arrow/array.h>
#include <arrow/io/file.h>
#include <arrow/table.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/schema.h>
#include <parquet/exception.h>
#endif

namespace lumi::data {

inline constexpr bool parquet_available = LUMI_HAS_PARQUET != 0;

// By suffix (`.parquet`, `.pq`), else by the magic number Parquet files begin with.
inline bool is_parquet(const std::filesystem::path& file) {
    std::string extension = file.extension().string();
    for (char& c : extension) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    if (extension == ".parquet" || extension == ".pq") return true;
    std::ifstream in(file, std::ios::binary);
    char magic[4] = {};
    return in.read(magic, 4) && std::string_view(magic, 4) == "PAR1";
}

// Where a row is: `file: row 12 (row group 0)`, rows counted from 1 across the file.
inline std::string parquet_origin(const std::filesystem::path& file, std::uint64_t row, int row_group) {
    return file.string() + ": row " + std::to_string(row) + " (row group " + std::to_string(row_group) + ")";
}

#if LUMI_HAS_PARQUET

namespace detail {

namespace json = boost::json;

template <class T>
T parquet_ok(arrow::Result<T> result, const std::string& where) {
    if (!result.ok()) throw lumi::Error(where + ": " + result.status().ToString());
    return std::move(result).ValueUnsafe();
}

class ParquetFile {
  public:
    explicit ParquetFile(const std::filesystem::path& file) : file_(file) {
        try {
            auto input =
                parquet_ok(arrow::io::ReadableFile::Open(file.string()), file.string() + ": cannot open");
            reader_ = parquet_ok(parquet::arrow::OpenFile(input, arrow::default_memory_pool()),
                                 file.string() + ": not a readable Parquet file");
        } catch (const lumi::Error&) {
            throw;
        } catch (const std::exception& e) {  // parquet::ParquetException, or bad_alloc on absurd metadata
            throw lumi::Error(file.string() + ": not a readable Parquet file: " + e.what());
        }
    }

    int row_groups() const { return reader_->num_row_groups(); }

    // The leaf column indices of top-level columns `names` (all when empty), or an error naming the missing
    // one and the columns the file has.
    std::vector<int> leaves(std::span<const std::string> names) const {
        const auto& fields = reader_->manifest().schema_fields;
        std::vector<int> out;
        auto collect = [&](auto& self, const parquet::arrow::SchemaField& field) -> void {
            if (field.column_index >= 0) out.push_back(field.column_index);
            for (const auto& child : field.children) self(self, child);
        };
        if (names.empty()) {
            for (const auto& field : fields) collect(collect, field);
            return out;
        }
        for (const std::string& name : names) {
            const auto it = std::find_if(fields.begin(), fields.end(),
                                         [&](const auto& f) { return f.field->name() == name; });
            if (it == fields.end()) {
                std::string columns;
                for (const auto& f : fields) columns += (columns.empty() ? "" : ", ") + f.field->name();
                throw lumi::Error(file_.string() + ": no column '" + name + "' (its columns: " + columns +
                                  ")");
            }
            collect(collect, *it);
        }
        return out;
    }

    // `what` names the columns for the error: "column 'text'", "its columns".
    std::shared_ptr<arrow::Table> read(int row_group, const std::vector<int>& leaves,
                                       const std::string& what) const {
        const std::string where =
            file_.string() + ": row group " + std::to_string(row_group) + ", " + what + ": cannot read";
        try {
            return parquet_ok(reader_->ReadRowGroup(row_group, leaves), where);
        } catch (const lumi::Error&) {
            throw;
        } catch (const std::exception& e) {
            throw lumi::Error(where + ": " + e.what());
        }
    }

  private:
    std::filesystem::path file_;
    std::unique_ptr<parquet::arrow::FileReader> reader_;
};

template <class A>
std::string_view string_at(const arrow::Array& array, std::int64_t i) {
    const auto view = static_cast<const A&>(array).GetView(i);
    return {view.data(), view.size()};
}

// A string-typed cell (string, large string, string view, or a dictionary of those); false for other types.
inline bool string_cell(const arrow::Array& array, std::int64_t i, std::string_view& out) {
    switch (array.type_id()) {
        case arrow::Type::STRING:
            out = string_at<arrow::StringArray>(array, i);
            return true;
        case arrow::Type::LARGE_STRING:
            out = string_at<arrow::LargeStringArray>(array, i);
            return true;
        case arrow::Type::STRING_VIEW:
            out = string_at<arrow::StringViewArray>(array, i);
            return true;
        case arrow::Type::DICTIONARY: {
            const auto& dictionary = static_cast<const arrow::DictionaryArray&>(array);
            return string_cell(*dictionary.dictionary(), dictionary.GetValueIndex(i), out);
        }
        default:
            return false;
    }
}

template <class A>
json::value number_at(const arrow::Array& array, std::int64_t i) {
    return json::value(static_cast<const A&>(array).Value(i));
}

// One cell as JSON: strings (repaired to valid UTF-8), numbers, booleans, lists and structs, nested.
inline json::value cell_json(const arrow::Array& array, std::int64_t i, const std::string& column) {
    if (array.IsNull(i)) return nullptr;
    std::string_view text;
    if (string_cell(array, i, text)) return json::string(repair_utf8(text));
    switch (array.type_id()) {
        case arrow::Type::BOOL:
            return static_cast<const arrow::BooleanArray&>(array).Value(i);
        case arrow::Type::INT8:
            return number_at<arrow::Int8Array>(array, i);
        case arrow::Type::INT16:
            return number_at<arrow::Int16Array>(array, i);
        case arrow::Type::INT32:
            return number_at<arrow::Int32Array>(array, i);
        case arrow::Type::INT64:
            return number_at<arrow::Int64Array>(array, i);
        case arrow::Type::UINT8:
            return number_at<arrow::UInt8Array>(array, i);
        case arrow::Type::UINT16:
            return number_at<arrow::UInt16Array>(array, i);
        case arrow::Type::UINT32:
            return number_at<arrow::UInt32Array>(array, i);
        case arrow::Type::UINT64:
            return number_at<arrow::UInt64Array>(array, i);
        case arrow::Type::FLOAT:
            return number_at<arrow::FloatArray>(array, i);
        case arrow::Type::DOUBLE:
            return number_at<arrow::DoubleArray>(array, i);
        case arrow::Type::LIST:
        case arrow::Type::LARGE_LIST:
        case arrow::Type::FIXED_SIZE_LIST: {
            std::shared_ptr<arrow::Array> values;
            std::int64_t begin = 0, length = 0;
            if (array.type_id() == arrow::Type::LIST) {
                const auto& list = static_cast<const arrow::ListArray&>(array);
                values = list.values(), begin = list.value_offset(i), length = list.value_length(i);
            } else if (array.type_id() == arrow::Type::LARGE_LIST) {
                const auto& large = static_cast<const arrow::LargeListArray&>(array);
                values = large.values(), begin = large.value_offset(i), length = large.value_length(i);
            } else {
                const auto& fixed = static_cast<const arrow::FixedSizeListArray&>(array);
                values = fixed.values(), begin = fixed.value_offset(i), length = fixed.value_length(i);
            }
            json::array out;
            out.reserve(static_cast<std::size_t>(length));
            for (std::int64_t k = 0; k < length; ++k) out.push_back(cell_json(*values, begin + k, column));
            return out;
        }
        case arrow::Type::STRUCT: {
            const auto& record = static_cast<const arrow::StructArray&>(array);
            json::object out;
            for (int k = 0; k < record.num_fields(); ++k)
                out[record.struct_type()->field(k)->name()] = cell_json(*record.field(k), i, column);
            return out;
        }
        default:
            throw lumi::Error("column '" + column + "': type " + array.type()->ToString() +
                              " cannot be read as JSON (strings, numbers, booleans, lists and structs can)");
    }
}

}  // namespace detail

// Calls f(text, row, row_group) for every cell of string column `column`, and on_null(row, row_group) for a
// null one. Another type is an error naming the file, row group and column.
template <class F, class N>
void for_each_parquet_text(const std::filesystem::path& file, const std::string& column, F&& f, N&& on_null) {
    const detail::ParquetFile parquet(file);
    const std::vector<int> leaves = parquet.leaves(std::span(&column, 1));
    std::uint64_t row = 0;
    for (int g = 0; g < parquet.row_groups(); ++g) {
        const std::shared_ptr<arrow::Table> table = parquet.read(g, leaves, "column '" + column + "'");
        const std::shared_ptr<arrow::ChunkedArray> cells = table->column(0);
        for (const auto& chunk : cells->chunks()) {
            std::string_view text;
            for (std::int64_t i = 0; i < chunk->length(); ++i) {
                ++row;
                if (chunk->IsNull(i)) {
                    on_null(row, g);
                } else if (detail::string_cell(*chunk, i, text)) {
                    f(text, row, g);
                } else {
                    throw lumi::Error(file.string() + ": row group " + std::to_string(g) + ", column '" +
                                      column + "': expected strings, found " + chunk->type()->ToString());
                }
            }
        }
    }
}

// Calls f(record, row, row_group) for every row as a JSON object of the top-level columns `columns` (all when
// empty).
template <class F>
void for_each_parquet_row(const std::filesystem::path& file, std::span<const std::string> columns, F&& f) {
    const detail::ParquetFile parquet(file);
    const std::vector<int> leaves = parquet.leaves(columns);
    std::uint64_t row = 0;
    for (int g = 0; g < parquet.row_groups(); ++g) {
        const std::shared_ptr<arrow::Table> table = parquet.read(g, leaves, "its columns");
        // Cells by column, chunk and offset; chunks of one table may split rows differently per column.
        const int width = table->num_columns();
        std::vector<int> chunk(width, 0);
        std::vector<std::int64_t> offset(width, 0);
        for (std::int64_t r = 0; r < table->num_rows(); ++r) {
            ++row;
            boost::json::object record;
            for (int c = 0; c < width; ++c) {
                const auto& cells = *table->column(c);
                while (offset[c] >= cells.chunk(chunk[c])->length()) ++chunk[c], offset[c] = 0;
                const std::string& name = table->schema()->field(c)->name();
                try {
                    record[name] = detail::cell_json(*cells.chunk(chunk[c]), offset[c]++, name);
                } catch (const lumi::Error& e) {
                    throw lumi::Error(file.string() + ": row group " + std::to_string(g) + ", " + e.what());
                }
            }
            f(boost::json::value(std::move(record)), row, g);
        }
    }
}

#else

namespace detail {
[[noreturn]] inline void no_parquet(const std::filesystem::path& file) {
    throw lumi::Error(file.string() +
                      ": a Parquet file, but this lumi was built without Parquet support: configure with "
                      "-DLUMI_PARQUET=ON and Apache Arrow's C++ libraries (pyarrow's, see docs/data.md)");
}
}  // namespace detail

template <class F, class N>
void for_each_parquet_text(const std::filesystem::path& file, const std::string&, F&&, N&&) {
    detail::no_parquet(file);
}

template <class F>
void for_each_parquet_row(const std::filesystem::path& file, std::span<const std::string>, F&&) {
    detail::no_parquet(file);
}

#endif

}  // namespace lumi::data
