// Guest byte order, kept in one place. Guest memory holds bytes in guest
// address order; every multi-byte access converts between the guest's order
// and the host's here and nowhere else.
#pragma once
#include <bit>
#include <cstring>

#include "vmm/util/types.hpp"

namespace disco {
enum class ByteOrder : u8 { Little, Big };

template <class T>
constexpr T byteswap_any(T v) noexcept {
    if constexpr (sizeof(T) == 1) {
        return v;
    } else if constexpr (sizeof(T) == 2) {
        return static_cast<T>(__builtin_bswap16(static_cast<u16>(v)));
    } else if constexpr (sizeof(T) == 4) {
        return static_cast<T>(__builtin_bswap32(static_cast<u32>(v)));
    } else {
        return static_cast<T>(__builtin_bswap64(static_cast<u64>(v)));
    }
}

/// Converts between host order and the guest order BO (the same operation both ways).
template <ByteOrder BO, class T>
constexpr T guest_to_host(T v) noexcept {
    constexpr bool host_little = std::endian::native == std::endian::little;
    constexpr bool guest_little = BO == ByteOrder::Little;
    if constexpr (host_little == guest_little) {
        return v;
    } else {
        return byteswap_any(v);
    }
}

/// Loads a T stored in guest order at p (any alignment).
template <ByteOrder BO, class T>
inline T load_guest(const void* p) noexcept {
    T v;
    std::memcpy(&v, p, sizeof v);
    return guest_to_host<BO>(v);
}
/// Stores a T in guest order at p (any alignment).
template <ByteOrder BO, class T>
inline void store_guest(void* p, T v) noexcept {
    v = guest_to_host<BO>(v);
    std::memcpy(p, &v, sizeof v);
}

/// A value held in guest byte order (for device structures such as virtqueues).
template <ByteOrder BO, class T>
struct GuestEndian {
    T raw;
    T get() const noexcept { return guest_to_host<BO>(raw); }
    void set(T v) noexcept { raw = guest_to_host<BO>(v); }
};
}  // namespace disco
