#pragma once

// Names of an aggregate's fields and of an enum's enumerators, read at compile time from the
// compiler's __PRETTY_FUNCTION__ (Boost 1.81's PFR gives the fields, but not their names).

#include <algorithm>
#include <array>
#include <cstddef>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

#include <boost/pfr.hpp>

namespace lumi::config {

namespace detail {

// Declared, never defined: only its fields' addresses are taken, as template arguments. (So g++
// rejects a type local to a function: "used but never defined". Settings live at namespace scope.)
template <class T>
extern const T fake_object;

template <auto Probe>
consteval std::string_view pretty_function() {
    return __PRETTY_FUNCTION__;
}

// g++ prints `[with auto Probe = (& fake_object<Foo>.Foo::lr); ...]` for a field and
// `[with auto Probe = Color::red; ...]` (or `(Color)7` for no enumerator), clang `[Probe =
// {&fake_object.lr}]` (a field, wrapped: see field_name) and `[Probe = Color::red]`: keep the last
// identifier.
consteval std::string_view probed_identifier(std::string_view pretty) {
    constexpr std::string_view marker = "Probe = ";
    std::string_view text = pretty.substr(pretty.find(marker) + marker.size());
    text = text.substr(0, text.find_first_of(";]"));
    while (!text.empty() && (text.back() == ')' || text.back() == '}')) text.remove_suffix(1);
    auto is_identifier_char = [](char c) {
        return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    };
    std::size_t begin = text.size();
    while (begin > 0 && is_identifier_char(text[begin - 1])) --begin;
    std::string_view name = text.substr(begin);
    if (name.empty() || (name.front() >= '0' && name.front() <= '9')) return {};
    return name;
}

template <std::size_t N>
struct FixedString {
    std::array<char, N + 1> chars{};
    constexpr std::string_view view() const { return {chars.data(), N}; }
};

// A copy with static storage, so the names outlive the consteval evaluation that found them.
template <auto Probe>
inline constexpr auto probed_name = [] {
    constexpr std::string_view name = probed_identifier(pretty_function<Probe>());
    FixedString<name.size()> copy;
    for (std::size_t i = 0; i < name.size(); ++i) copy.chars[i] = name[i];
    return copy;
}();

}  // namespace detail

// The identifier a constant names: a field for `&boost::pfr::get<I>(fake_object<T>)`, an enumerator
// for an enum value (empty when the value has no enumerator).
template <auto Ptr>
consteval std::string_view name_of() {
    return detail::probed_name<Ptr>.view();
}

template <class T>
concept Reflectable = std::is_aggregate_v<T> && std::is_class_v<T>;

template <class T>
consteval std::size_t field_count() {
    static_assert(Reflectable<T>,
                  "lumi::config reflects aggregates only: a struct with public fields, no constructors, "
                  "no base classes and no virtual functions");
    if constexpr (Reflectable<T>) return boost::pfr::tuple_size_v<T>;
    return 0;
}

#if defined(__clang__)
namespace detail {
// Clang (to 15 at least) takes a pointer to a subobject as a template argument only inside a class.
template <class T>
struct FieldPointer {
    const T* pointer;
};
}  // namespace detail
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wundefined-var-template"
template <class T, std::size_t I>
consteval std::string_view field_name() {
    using Field = std::remove_cvref_t<decltype(boost::pfr::get<I>(detail::fake_object<T>))>;
    return name_of<detail::FieldPointer<Field>{&boost::pfr::get<I>(detail::fake_object<T>)}>();
}
#pragma clang diagnostic pop
#else
template <class T, std::size_t I>
consteval std::string_view field_name() {
    return name_of<&boost::pfr::get<I>(detail::fake_object<T>)>();
}
#endif

namespace detail {

template <class T, std::size_t... I>
consteval auto field_names_at(std::index_sequence<I...>) {
    return std::array<std::string_view, sizeof...(I)>{field_name<T, I>()...};
}

}  // namespace detail

// The names of T's fields, in declaration order: `static_assert(field_names<Foo>()[0] == "lr")`.
template <class T>
consteval std::array<std::string_view, field_count<T>()> field_names() {
    return detail::field_names_at<T>(std::make_index_sequence<field_count<T>()>{});
}

// Enumerators are found by probing the values 0..enum_probe_limit-1.
inline constexpr int enum_probe_limit = 64;

template <class E>
struct EnumEntry {
    E value;
    std::string_view name;
};

namespace detail {

template <class E, int... V>
consteval auto enumerator_names(std::integer_sequence<int, V...>) {
    return std::array<std::string_view, sizeof...(V)>{name_of<static_cast<E>(V)>()...};
}

template <class E>
inline constexpr auto probed_enumerators =
    enumerator_names<E>(std::make_integer_sequence<int, enum_probe_limit>{});

template <class E>
inline constexpr auto enum_table = [] {
    constexpr auto& probed = probed_enumerators<E>;
    constexpr auto count =
        std::count_if(probed.begin(), probed.end(), [](auto name) { return !name.empty(); });
    std::array<EnumEntry<E>, count> entries{};
    std::size_t next = 0;
    for (int v = 0; v < enum_probe_limit; ++v)
        if (!probed[v].empty()) entries[next++] = {static_cast<E>(v), probed[v]};
    return entries;
}();

}  // namespace detail

// The enumerators of E with values in 0..enum_probe_limit-1, in increasing value.
template <class E>
requires std::is_enum_v<E>
constexpr const auto& enum_entries() {
    return detail::enum_table<E>;
}

// The enumerator's name, or empty when the value has none.
template <class E>
requires std::is_enum_v<E>
constexpr std::string_view enum_name(E value) {
    for (const auto& entry : enum_entries<E>())
        if (entry.value == value) return entry.name;
    return {};
}

template <class E>
requires std::is_enum_v<E>
constexpr std::optional<E> enum_from_name(std::string_view name) {
    for (const auto& entry : enum_entries<E>())
        if (entry.name == name) return entry.value;
    return std::nullopt;
}

}  // namespace lumi::config
