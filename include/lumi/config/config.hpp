#pragma once

// Runtime settings are plain aggregates with default member initialisers; this header reads and writes
// them as JSON by reflecting over their fields, with no per-struct code:
//
//   struct Optimizer { double lr = 3e-4; };
//   struct Train { Optimizer optimizer; std::uint32_t steps = 1000; };
//   auto train = lumi::config::load<Train>("train.json", {"optimizer.lr=1e-3"});
//   lumi::config::save(train, out_dir / "train.json");
//
// Reading is strict: an unknown key, a wrong type or a value out of range is a ConfigError naming the
// origin (file or `--set a.b`) and the dotted path. An aggregate with `void validate() const` has it
// called after loading; it throws FieldError for domain checks (a learning rate > 0, ...).

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include "lumi/config/field_names.hpp"
#include "lumi/core/error.hpp"
#include "lumi/core/files.hpp"
#include "lumi/core/utf8.hpp"

namespace lumi::config {

namespace json = boost::json;

// A configuration error: "origin: path: detail", e.g. `train.json: optimizer.lr: expected a number, ...`.
class ConfigError : public lumi::Error {
  public:
    ConfigError(std::string origin, std::string path, std::string detail)
        : lumi::Error(compose(origin, path, detail)),
          origin(std::move(origin)),
          path(std::move(path)),
          detail(std::move(detail)) {}

    std::string origin;  // a file name, or `--set a.b` for a command-line override
    std::string path;    // dotted: `optimizer.lr`, `layers[2].dim`; empty for the whole document
    std::string detail;  // what was expected and what was found

  private:
    // The path is left out when the origin already names it (`--set optimizer.lr: ...`).
    static std::string compose(const std::string& origin, const std::string& path,
                               const std::string& detail) {
        if (path.empty() || origin.ends_with(" " + path)) return origin + ": " + detail;
        return origin + ": " + path + ": " + detail;
    }
};

// Thrown by an aggregate's `validate()`; the loader prefixes the origin and the aggregate's path.
class FieldError : public lumi::Error {
  public:
    FieldError(std::string field, std::string message)
        : lumi::Error(field + ": " + message), field(std::move(field)), message(std::move(message)) {}

    std::string field;  // relative to the aggregate; empty for the aggregate as a whole
    std::string message;
};

struct FieldDescription {
    std::string path;           // dotted, from the root
    std::string type;           // e.g. `double`, `uint32`, `optional<string>`, `enum (cosine, linear)`
    std::string default_value;  // as JSON text
};

namespace detail {

template <class T, template <class...> class Template>
inline constexpr bool is_instance_of = false;
template <template <class...> class Template, class... Args>
inline constexpr bool is_instance_of<Template<Args...>, Template> = true;

template <class T>
inline constexpr bool is_std_array = false;
template <class U, std::size_t N>
inline constexpr bool is_std_array<std::array<U, N>> = true;

template <class T>
concept Optional = is_instance_of<T, std::optional>;
template <class T>
concept Vector = is_instance_of<T, std::vector>;
template <class T>
concept StringMap = is_instance_of<T, std::map> && std::same_as<typename T::key_type, std::string>;
template <class T>
inline constexpr bool is_character =
    std::same_as<T, char> || std::same_as<T, wchar_t> || std::same_as<T, char8_t> ||
    std::same_as<T, char16_t> || std::same_as<T, char32_t>;
template <class T>
concept Integer = std::integral<T> && !std::same_as<T, bool> && !is_character<T>;
// std::array is an aggregate too, but it reads as a JSON array.
template <class T>
concept Object = Reflectable<T> && !is_std_array<T>;
// A section kept as JSON, whose type another field decides (a recipe's optimizer settings): read by merging
// into its default, so unnamed keys keep their defaults as an aggregate's do; checked by whoever types it.
template <class T>
concept Section = std::same_as<T, json::value>;

template <class T>
inline constexpr bool unsupported = false;

template <class F, std::size_t... I>
void for_each_index(F&& f, std::index_sequence<I...>) {
    (f(std::integral_constant<std::size_t, I>{}), ...);
}

// Calls f(std::integral_constant<std::size_t, I>) for each field index of T, when the index must be a
// constant (to name the field's type).
template <class T, class F>
void for_each_field_index(F&& f) {
    for_each_index(f, std::make_index_sequence<field_count<T>()>{});
}

inline std::string join(const std::string& path, std::string_view key) {
    if (key.empty()) return path;
    return path.empty() ? std::string(key) : path + "." + std::string(key);
}

// Where a value sits: the origin and its dotted path.
struct Where {
    std::string_view origin;
    std::string path;

    Where at(std::string_view key) const { return {origin, join(path, key)}; }
    Where at(std::size_t index) const { return {origin, path + "[" + std::to_string(index) + "]"}; }
    [[noreturn]] void fail(std::string detail) const {
        throw ConfigError(std::string(origin), path, std::move(detail));
    }
};

// Shortest text that reads back to the same double, marked as a number with a fraction or exponent. JSON has
// no NaN or infinity: those are written as null (an undefined metric), so every file lumi writes is JSON.
inline std::string format_double(double value) {
    if (!std::isfinite(value)) return "null";
    std::array<char, 32> buffer;
    auto end = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value).ptr;
    std::string text(buffer.data(), end);
    if (const std::size_t e = text.find('e'); e != std::string::npos) {
        // `3e-04` reads better as `3e-4`, `1e+10` as `1e10`.
        std::size_t digits = e + 1;
        if (text[digits] == '+')
            text.erase(digits, 1);
        else if (text[digits] == '-')
            ++digits;
        while (text.size() > digits + 1 && text[digits] == '0') text.erase(digits, 1);
    } else if (text.find('.') == std::string::npos) {
        text += ".0";
    }
    return text;
}

// A float written as its shortest decimal (0.1f as 0.1, not 0.10000000149011612).
inline double widen(float value) {
    std::array<char, 32> buffer;
    auto end = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value).ptr;
    double widened = value;
    std::from_chars(buffer.data(), end, widened);
    return widened;
}

// Pretty (indent >= 0) or single-line (indent < 0) JSON; arrays of scalars always on one line.
inline void print(std::string& out, const json::value& value, int indent, int depth) {
    auto is_scalar = [](const json::value& v) { return !v.is_array() && !v.is_object(); };
    auto newline = [&](int level) {
        if (indent < 0) return;
        out += '\n';
        out.append(static_cast<std::size_t>(indent * level), ' ');
    };
    if (const json::array* array = value.if_array()) {
        const bool one_line = indent < 0 || std::all_of(array->begin(), array->end(), is_scalar);
        out += '[';
        for (std::size_t i = 0; i < array->size(); ++i) {
            if (i > 0) out += one_line ? ", " : ",";
            if (!one_line) newline(depth + 1);
            print(out, (*array)[i], indent, depth + 1);
        }
        if (!one_line && !array->empty()) newline(depth);
        out += ']';
    } else if (const json::object* object = value.if_object()) {
        out += '{';
        bool first = true;
        for (const auto& [key, item] : *object) {
            if (!first) out += indent < 0 ? ", " : ",";
            first = false;
            newline(depth + 1);
            out += json::serialize(json::value(key)) + ": ";
            print(out, item, indent, depth + 1);
        }
        if (!object->empty()) newline(depth);
        out += '}';
    } else if (const double* number = value.if_double()) {
        out += format_double(*number);
    } else {
        out += json::serialize(value);
    }
}

inline std::string describe_found(const json::value& value) {
    switch (value.kind()) {
        case json::kind::null:
            return "null";
        case json::kind::bool_:
            return value.get_bool() ? "a boolean true" : "a boolean false";
        case json::kind::int64:
        case json::kind::uint64:
            return "an integer " + json::serialize(value);
        case json::kind::double_:
            if (std::isnan(value.get_double())) return "NaN";
            if (std::isinf(value.get_double()))
                return std::string(value.get_double() < 0 ? "-" : "") +
                       "infinity (a number too large for a double)";
            return "a number " + format_double(value.get_double());
        case json::kind::string: {
            std::string text = json::serialize(value);
            if (text.size() > 60) text = text.substr(0, 56) + "...\"";
            return "a string " + text;
        }
        case json::kind::array:
            return "an array";
        case json::kind::object:
            return "an object";
    }
    return "an unknown value";
}

template <class E>
std::string quoted_enum_names(std::string_view separator) {
    std::string names;
    for (const auto& entry : enum_entries<E>()) {
        if (!names.empty()) names += separator;
        names.append("'").append(entry.name).append("'");
    }
    return names;
}

template <class T>
std::string type_name() {
    if constexpr (std::same_as<T, bool>)
        return "bool";
    else if constexpr (std::is_enum_v<T>)
        return "enum (" + quoted_enum_names<T>(", ") + ")";
    else if constexpr (Integer<T>)
        return (std::is_signed_v<T> ? "int" : "uint") + std::to_string(sizeof(T) * 8);
    else if constexpr (std::same_as<T, float>)
        return "float";
    else if constexpr (std::same_as<T, double>)
        return "double";
    else if constexpr (std::same_as<T, std::string>)
        return "string";
    else if constexpr (std::same_as<T, std::filesystem::path>)
        return "path";
    else if constexpr (Optional<T>)
        return "optional<" + type_name<typename T::value_type>() + ">";
    else if constexpr (Vector<T>)
        return "array<" + type_name<typename T::value_type>() + ">";
    else if constexpr (is_std_array<T>)
        return "array<" + type_name<typename T::value_type>() + ", " + std::to_string(std::tuple_size_v<T>) +
               ">";
    else if constexpr (StringMap<T>)
        return "map<string, " + type_name<typename T::mapped_type>() + ">";
    else if constexpr (Object<T>)
        return "object";
    else if constexpr (Section<T>)
        return "JSON";
    else
        static_assert(unsupported<T>, "lumi::config: unsupported field type");
}

// Optimal string alignment distance, case-insensitive: `lrr`, `LR` and `rl` are all near `lr`.
inline std::size_t edit_distance(std::string_view a, std::string_view b) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) && lower(a[i - 2]) == lower(b[j - 1]))
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    }
    return d[a.size()][b.size()];
}

template <std::size_t N>
std::string unknown_key(std::string_view key, const std::array<std::string_view, N>& names) {
    std::string_view best;
    std::size_t best_distance = std::numeric_limits<std::size_t>::max();
    for (std::string_view name : names) {
        const std::size_t distance = edit_distance(key, name);
        if (distance < best_distance) best = name, best_distance = distance;
    }
    // Close enough to be a typo: one edit for short names, about one per four characters for long ones.
    if (!best.empty() && best_distance <= 1 + std::max(key.size(), best.size()) / 4)
        return "unknown key, did you mean '" + std::string(best) + "'?";
    if (names.empty()) return "unknown key; this object has no keys";
    std::string valid;
    for (std::string_view name : names) valid.append(valid.empty() ? "'" : ", '").append(name).append("'");
    return "unknown key; valid keys are " + valid;
}

template <Integer I>
I read_integer(const json::value& value, const Where& where) {
    const std::string type = type_name<I>();
    const std::string range = std::to_string(std::numeric_limits<I>::min()) + " to " +
                              std::to_string(std::numeric_limits<I>::max());
    auto out_of_range = [&](const std::string& text, bool negative) {
        if (negative && std::is_unsigned_v<I>)
            where.fail("expected a non-negative integer (" + type + "), found " + text);
        where.fail(text + " is out of range for " + type + " (" + range + ")");
    };
    if (const std::int64_t* number = value.if_int64()) {
        if (!std::in_range<I>(*number)) out_of_range(std::to_string(*number), *number < 0);
        return static_cast<I>(*number);
    }
    if (const std::uint64_t* number = value.if_uint64()) {
        if (!std::in_range<I>(*number)) out_of_range(std::to_string(*number), false);
        return static_cast<I>(*number);
    }
    // 1e6 parses as a double; accept it when it is a whole number.
    if (const double* number = value.if_double()) {
        if (!std::isfinite(*number) || std::trunc(*number) != *number)
            where.fail("expected an integer (" + type + "), found " + describe_found(value));
        const double min = static_cast<double>(std::numeric_limits<I>::min());
        const double max_plus_one = static_cast<double>(std::numeric_limits<I>::max()) + 1.0;
        if (*number < min || *number >= max_plus_one) out_of_range(format_double(*number), *number < 0);
        return static_cast<I>(*number);
    }
    where.fail("expected an integer (" + type + "), found " + describe_found(value));
}

template <std::floating_point F>
F read_floating(const json::value& value, const Where& where) {
    double number = 0;
    if (const double* d = value.if_double())
        number = *d;
    else if (const std::int64_t* i = value.if_int64())
        number = static_cast<double>(*i);
    else if (const std::uint64_t* u = value.if_uint64())
        number = static_cast<double>(*u);
    else
        where.fail("expected a number (" + type_name<F>() + "), found " + describe_found(value));
    if (!std::isfinite(number))
        where.fail("expected a finite number (" + type_name<F>() + "), found " + describe_found(value));
    // Out of range when it would round to infinity: the shortest decimal of the largest float (as written
    // by save) lies a little above it and rounds back down.
    constexpr F max = std::numeric_limits<F>::max();
    const double halfway = double(max) + (double(max) - double(std::nextafter(max, F(0)))) / 2;
    if (std::abs(number) >= halfway)
        where.fail(format_double(number) + " is out of range for " + type_name<F>());
    return static_cast<F>(number);
}

template <class E>
E read_enum(const json::value& value, const Where& where) {
    const json::string* name = value.if_string();
    if (!name)
        where.fail("expected one of " + quoted_enum_names<E>(", ") + ", found " + describe_found(value));
    if (auto parsed = enum_from_name<E>(*name)) return *parsed;
    where.fail("unknown value '" + std::string(*name) + "', expected one of " + quoted_enum_names<E>(", "));
}

template <class T>
void read(const json::value& value, T& out, const Where& where);

// Objects merge key by key; anything else (null included) replaces.
inline void merge_section(json::value& into, const json::value& value) {
    json::object* target = into.if_object();
    const json::object* source = value.if_object();
    if (!target || !source) {
        into = value;
        return;
    }
    for (const auto& [key, item] : *source) merge_section((*target)[key], item);
}

template <Object T>
void read_object(const json::value& value, T& out, const Where& where) {
    const json::object* object = value.if_object();
    if (!object) where.fail("expected an object, found " + describe_found(value));
    constexpr auto names = field_names<T>();
    for (const auto& [key, item] : *object)
        if (std::find(names.begin(), names.end(), std::string_view(key)) == names.end())
            where.at(key).fail(unknown_key(key, names));

    // An aggregate whose defaults depend on the document (a recipe's sections) adjusts them first.
    if constexpr (requires(T & t) { t.prepare(*object); }) out.prepare(*object);
    // A missing nested object reads as {}: its defaults are kept and its validate() still runs.
    static const json::value empty_object = json::object();
    boost::pfr::for_each_field(out, [&](auto& field, std::size_t i) {
        const json::value* item = object->if_contains(names[i]);
        if (item)
            read(*item, field, where.at(names[i]));
        else if constexpr (Object<std::remove_cvref_t<decltype(field)>>)
            read(empty_object, field, where.at(names[i]));
    });

    if constexpr (requires(const T& t) { t.validate(); }) {
        try {
            out.validate();
        } catch (const FieldError& error) {
            where.at(error.field).fail(error.message);
        } catch (const ConfigError&) {
            throw;
        } catch (const lumi::Error& error) {
            where.fail(error.what());
        }
    }
}

template <class T>
void read(const json::value& value, T& out, const Where& where) {
    if constexpr (std::same_as<T, bool>) {
        const bool* flag = value.if_bool();
        if (!flag) where.fail("expected a boolean, found " + describe_found(value));
        out = *flag;
    } else if constexpr (std::is_enum_v<T>) {
        out = read_enum<T>(value, where);
    } else if constexpr (Integer<T>) {
        out = read_integer<T>(value, where);
    } else if constexpr (std::floating_point<T>) {
        out = read_floating<T>(value, where);
    } else if constexpr (std::same_as<T, std::string> || std::same_as<T, std::filesystem::path>) {
        const json::string* text = value.if_string();
        if (!text) where.fail("expected a string (" + type_name<T>() + "), found " + describe_found(value));
        out = T(std::string(*text));
    } else if constexpr (Optional<T>) {
        if (value.is_null()) return out.reset();
        if (!out) out.emplace();
        read(value, *out, where);
    } else if constexpr (Vector<T> || is_std_array<T>) {
        const json::array* array = value.if_array();
        if (!array) where.fail("expected an array, found " + describe_found(value));
        if constexpr (Vector<T>) {
            T items;
            items.reserve(array->size());
            for (std::size_t i = 0; i < array->size(); ++i) {
                typename T::value_type item{};
                read((*array)[i], item, where.at(i));
                items.push_back(std::move(item));
            }
            out = std::move(items);
        } else {
            if (array->size() != out.size())
                where.fail("expected an array of " + std::to_string(out.size()) + " elements, found " +
                           std::to_string(array->size()));
            for (std::size_t i = 0; i < out.size(); ++i) read((*array)[i], out[i], where.at(i));
        }
    } else if constexpr (StringMap<T>) {
        const json::object* object = value.if_object();
        if (!object) where.fail("expected an object, found " + describe_found(value));
        T items;
        for (const auto& [key, item_value] : *object) {
            typename T::mapped_type item{};
            read(item_value, item, where.at(key));
            items.emplace(std::string(key), std::move(item));
        }
        out = std::move(items);
    } else if constexpr (Object<T>) {
        read_object(value, out, where);
    } else if constexpr (Section<T>) {
        merge_section(out, value);
    } else {
        static_assert(unsupported<T>,
                      "lumi::config: unsupported field type; use bool, an integer, float, double, an enum, "
                      "std::string, std::filesystem::path, std::optional, std::vector, std::array, "
                      "std::map<std::string, U> or a nested aggregate");
    }
}

template <class T>
json::value write(const T& value) {
    if constexpr (std::same_as<T, bool>) {
        return value;
    } else if constexpr (std::is_enum_v<T>) {
        const std::string_view name = enum_name(value);
        if (name.empty())
            throw lumi::Error("lumi::config: enum value " +
                              std::to_string(static_cast<std::underlying_type_t<T>>(value)) +
                              " has no enumerator name in 0.." + std::to_string(enum_probe_limit - 1));
        return json::string(name);
    } else if constexpr (Integer<T> && std::is_signed_v<T>) {
        return static_cast<std::int64_t>(value);
    } else if constexpr (Integer<T>) {
        return static_cast<std::uint64_t>(value);
    } else if constexpr (std::same_as<T, float>) {
        return widen(value);
    } else if constexpr (std::floating_point<T>) {
        return static_cast<double>(value);
    } else if constexpr (std::same_as<T, std::string>) {
        return json::string(value);
    } else if constexpr (std::same_as<T, std::filesystem::path>) {
        return json::string(value.string());
    } else if constexpr (Optional<T>) {
        return value ? write(*value) : json::value(nullptr);
    } else if constexpr (Vector<T> || is_std_array<T>) {
        json::array array;
        for (const auto& item : value) array.push_back(write(item));
        return array;
    } else if constexpr (StringMap<T>) {
        json::object object;
        for (const auto& [key, item] : value) object[key] = write(item);
        return object;
    } else if constexpr (Section<T>) {
        return value;
    } else if constexpr (Object<T>) {
        constexpr auto names = field_names<T>();
        json::object object;
        boost::pfr::for_each_field(
            value, [&](const auto& field, std::size_t i) { object[names[i]] = write(field); });
        return object;
    } else {
        static_assert(unsupported<T>, "lumi::config: unsupported field type");
    }
}

template <class T>
void describe_fields(const T& defaults, const std::string& path, std::vector<FieldDescription>& out) {
    constexpr auto names = field_names<T>();
    boost::pfr::for_each_field(defaults, [&](const auto& field, std::size_t i) {
        using Field = std::remove_cvref_t<decltype(field)>;
        const std::string field_path = join(path, names[i]);
        if constexpr (Object<Field>) {
            describe_fields(field, field_path, out);
        } else {
            std::string text;
            print(text, write(field), -1, 0);
            out.push_back({field_path, type_name<Field>(), std::move(text)});
            // The fields of a list's elements too (`sources[].path`), with an element's defaults.
            if constexpr (Vector<Field>) {
                if constexpr (Object<typename Field::value_type>)
                    describe_fields(typename Field::value_type{}, field_path + "[]", out);
            }
        }
    });
}

// Checks a `--set` path against T's fields before it is applied, so a typo is named as such.
template <class T>
void check_path(std::span<const std::string> rest, const Where& where) {
    if (rest.empty()) return;
    if constexpr (Section<T>) {
        return;  // its type, and so its keys, are known later
    } else if constexpr (Optional<T>) {
        check_path<typename T::value_type>(rest, where);
    } else if constexpr (StringMap<T>) {
        check_path<typename T::mapped_type>(rest.subspan(1), where.at(rest.front()));
    } else if constexpr (Object<T>) {
        constexpr auto names = field_names<T>();
        bool found = false;
        for_each_field_index<T>([&](auto index) {
            if (names[index] != rest.front()) return;
            found = true;
            check_path<boost::pfr::tuple_element_t<decltype(index)::value, T>>(rest.subspan(1),
                                                                               where.at(rest.front()));
        });
        if (!found) where.at(rest.front()).fail(unknown_key(rest.front(), names));
    } else {
        where.at(rest.front()).fail("'" + where.path + "' is of type " + type_name<T>() + " and has no keys");
    }
}

struct Assignment {
    std::string path;
    std::vector<std::string> keys;
    json::value value;
};

inline Assignment parse_assignment(std::string_view assignment) {
    const std::size_t equals = assignment.find('=');
    if (equals == std::string_view::npos || equals == 0)
        throw ConfigError("--set " + std::string(assignment), "",
                          "expected key=value, e.g. optimizer.lr=3e-4");
    // Settings are written back as JSON (checkpoints' config.json), which must be UTF-8 to be read again.
    // The key is named only when the bad bytes lie after the `=`.
    if (const auto bad = utf8::first_invalid(assignment))
        throw ConfigError(
            *bad < equals ? std::string("--set") : "--set " + std::string(assignment.substr(0, equals)), "",
            "not valid UTF-8: an ill-formed byte sequence at byte " + std::to_string(*bad) +
                " of the assignment");
    Assignment parsed{std::string(assignment.substr(0, equals)), {}, {}};
    for (std::size_t begin = 0;;) {
        const std::size_t dot = parsed.path.find('.', begin);
        parsed.keys.push_back(parsed.path.substr(begin, dot - begin));
        if (parsed.keys.back().empty())
            throw ConfigError("--set " + parsed.path, "", "empty key in the dotted path");
        if (dot == std::string::npos) break;
        begin = dot + 1;
    }
    // `3`, `true`, `[1,2]`, `"x"` and `null` are JSON; anything else (`cosine`, `/data/x`) is a string.
    const std::string_view text = assignment.substr(equals + 1);
    json::error_code error;
    parsed.value = json::parse(text, error);
    if (error) parsed.value = json::string(text);
    return parsed;
}

}  // namespace detail

template <class T>
json::value to_json(const T& value) {
    return detail::write(value);
}

template <class T>
T from_json(const json::value& value, std::string_view origin) {
    T result{};
    detail::read(value, result, detail::Where{origin, ""});
    return result;
}

// 2-space indentation, keys in their stored order (declaration order for to_json's output).
inline std::string format_json(const json::value& value) {
    std::string text;
    detail::print(text, value, 2, 0);
    return text + "\n";
}

// On one line (a JSON Lines record), without the newline; NaN and infinity as null, as format_json.
inline std::string format_json_line(const json::value& value) {
    std::string text;
    detail::print(text, value, -1, 0);
    return text;
}

// Applies `a.b.c=value` to a JSON document, creating the intermediate objects.
inline void apply_override(json::value& root, std::string_view assignment) {
    detail::Assignment parsed = detail::parse_assignment(assignment);
    const std::string origin = "--set " + parsed.path;
    if (root.is_null()) root = json::object();
    json::value* node = &root;
    std::string walked;
    for (const std::string& key : parsed.keys) {
        if (node->is_null()) *node = json::object();
        json::object* object = node->if_object();
        if (!object)
            throw ConfigError(origin, "",
                              "cannot set a key inside " +
                                  (walked.empty() ? "the document" : "'" + walked + "'") + ", which is " +
                                  detail::describe_found(*node));
        node = &(*object)[key];
        walked = detail::join(walked, key);
    }
    *node = std::move(parsed.value);
}

// A JSON file read whole larger than this is refused (settings, manifests and states are kilobytes).
inline constexpr std::uint64_t max_json_bytes = std::uint64_t{1} << 30;

namespace detail {

// Boost.JSON keeps the last of two equal keys silently, so a settings file could hide a value: an error
// naming the lines of both. `text` is valid JSON.
inline void check_duplicate_keys(std::string_view text, const std::filesystem::path& file) {
    struct Open {
        bool object;
        std::map<std::string, std::size_t, std::less<>> keys;  // key -> line
    };
    std::vector<Open> open;
    std::size_t line = 1;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\n') {
            ++line;
        } else if (c == '{' || c == '[') {
            open.push_back({c == '{', {}});
        } else if (c == '}' || c == ']') {
            if (!open.empty()) open.pop_back();
        } else if (c == '"') {
            const std::size_t start = i;
            bool escaped = false;
            for (++i; i < text.size() && text[i] != '"'; ++i)
                if (text[i] == '\\') ++i, escaped = true;
            if (open.empty() || !open.back().object) continue;
            const std::size_t next = text.find_first_not_of(" \t\r\n", i + 1);
            if (next == std::string_view::npos || text[next] != ':') continue;
            const std::string_view raw = text.substr(start, i + 1 - start);
            std::string key = escaped ? std::string(json::parse(raw).as_string())
                                      : std::string(raw.substr(1, raw.size() - 2));
            const auto [at, inserted] = open.back().keys.emplace(std::move(key), line);
            if (!inserted)
                throw lumi::Error(file.string() + ":" + std::to_string(line) + ": duplicate key " +
                                  std::string(raw) + " (first at line " + std::to_string(at->second) +
                                  "); a key may appear once in an object");
        }
    }
}

}  // namespace detail

// The whole file parsed as JSON; a syntax error names `file:line:column`, a key given twice in one object
// both lines.
inline json::value read_json_file(const std::filesystem::path& file) {
    const std::string text = lumi::read_file(file, max_json_bytes);

    json::stream_parser parser;
    json::error_code error;
    const std::size_t consumed = parser.write(text.data(), text.size(), error);
    if (!error) parser.finish(error);
    if (error) {
        const std::size_t line = 1 + std::count(text.begin(), text.begin() + consumed, '\n');
        const std::size_t line_start = text.rfind('\n', consumed == 0 ? 0 : consumed - 1);
        const std::size_t column = line_start == std::string::npos ? consumed + 1 : consumed - line_start;
        throw lumi::Error(file.string() + ":" + std::to_string(line) + ":" + std::to_string(column) +
                          ": invalid JSON: " + error.message());
    }
    detail::check_duplicate_keys(text, file);
    return parser.release();
}

// Written atomically: a reader never sees half a file.
inline void write_json_file(const json::value& value, const std::filesystem::path& file) {
    lumi::write_file_atomic(file, format_json(value));
}

// The settings in `file` (or the defaults), then each `--set a.b=value` in order, read strictly.
template <Reflectable T>
T load(const std::optional<std::filesystem::path>& file, const std::vector<std::string>& sets = {}) {
    json::value root = file ? read_json_file(*file) : json::value(json::object());
    std::vector<std::string> overridden;
    for (const std::string& set : sets) {
        const detail::Assignment parsed = detail::parse_assignment(set);
        const std::string origin = "--set " + parsed.path;
        detail::check_path<T>(parsed.keys, detail::Where{origin, ""});
        apply_override(root, set);
        overridden.push_back(parsed.path);
    }
    try {
        return from_json<T>(root, file ? file->string() : "defaults");
    } catch (const ConfigError& error) {
        // The last override at or above the failing path is what put the bad value there.
        for (auto path = overridden.rbegin(); path != overridden.rend(); ++path) {
            if (error.path == *path || error.path.starts_with(*path + ".") ||
                error.path.starts_with(*path + "["))
                throw ConfigError("--set " + *path, error.path, error.detail);
        }
        throw;
    }
}

// A top-level string read before the settings' type is known, because it picks that type (stage 05's
// `recipe`): the last `--set key=...`, else the file's key, else `fallback`. `origin` names where it came
// from (empty for the fallback), for the error that refuses an unknown value.
struct Peeked {
    std::string value;
    std::string origin;
};

inline Peeked peek_string(const std::optional<std::filesystem::path>& file,
                          const std::vector<std::string>& sets, const std::string& key,
                          std::string fallback) {
    for (auto set = sets.rbegin(); set != sets.rend(); ++set) {
        detail::Assignment parsed = detail::parse_assignment(*set);
        if (parsed.keys.size() != 1 || parsed.keys.front() != key) continue;
        const std::string origin = "--set " + key;
        if (!parsed.value.is_string())
            throw ConfigError(origin, key,
                              "expected a string, found " + detail::describe_found(parsed.value));
        return {std::string(parsed.value.as_string()), origin};
    }
    if (file) {
        const json::value root = read_json_file(*file);
        if (const json::object* object = root.if_object())
            if (const json::value* value = object->if_contains(key)) {
                if (!value->is_string())
                    throw ConfigError(file->string(), key,
                                      "expected a string, found " + detail::describe_found(*value));
                return {std::string(value->as_string()), file->string()};
            }
    }
    return {std::move(fallback), ""};
}

// Pretty-printed JSON, keys in declaration order, written atomically.
template <class T>
void save(const T& value, const std::filesystem::path& file) {
    write_json_file(to_json(value), file);
}

// Every leaf field of T with its type and default: the source of the configuration reference.
template <Reflectable T>
std::vector<FieldDescription> describe(const T& defaults = T{}) {
    std::vector<FieldDescription> fields;
    detail::describe_fields(defaults, "", fields);
    return fields;
}

}  // namespace lumi::config
