// Fixed-width integer aliases used throughout the monitor.
#pragma once
#include <cstddef>
#include <cstdint>

namespace disco {
using u8 = std::uint8_t;
using u16 = std::uint16_t;
using u32 = std::uint32_t;
using u64 = std::uint64_t;
using i8 = std::int8_t;
using i16 = std::int16_t;
using i32 = std::int32_t;
using i64 = std::int64_t;
using usize = std::size_t;

/// Sign-extends the low 32 bits of a value to 64 bits, the MIPS64 rule for
/// every 32-bit operation's result (MD00087, "32-bit operations on 64-bit CPU").
constexpr u64 sext32(u64 v) noexcept { return static_cast<u64>(static_cast<i64>(static_cast<i32>(v))); }
constexpr u64 sext16(u64 v) noexcept { return static_cast<u64>(static_cast<i64>(static_cast<i16>(v))); }
constexpr u64 sext8(u64 v) noexcept { return static_cast<u64>(static_cast<i64>(static_cast<i8>(v))); }
}  // namespace disco
