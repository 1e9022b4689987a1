// Result<T, E>: the one error-propagation type of the project (std::expected,
// C++23), plus TRY for early return. Errors are values; nothing is thrown
// across layers.
#pragma once
#include <expected>
#include <string>
#include <utility>

namespace disco {
template <class T, class E>
using Result = std::expected<T, E>;

template <class E>
constexpr std::unexpected<std::decay_t<E>> fail(E&& e) {
    return std::unexpected<std::decay_t<E>>(std::forward<E>(e));
}

/// A plain error: a message meant for a person, already naming what is wrong.
struct Error {
    std::string message;
};
}  // namespace disco

/// Evaluates a Result expression; on error returns the error from the enclosing
/// function, otherwise yields the value (GCC statement expression).
#define DISCO_TRY(expr)                                                             \
    ({                                                                              \
        auto disco_try_r_ = (expr);                                                 \
        if (!disco_try_r_) return std::unexpected(std::move(disco_try_r_).error()); \
        std::move(disco_try_r_).value();                                            \
    })
