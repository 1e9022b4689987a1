#include "vmm/util/crc32c.hpp"

#include <array>

namespace disco {
namespace {
constexpr u32 kPoly = 0x82F63B78;  // 0x1EDC6F41 bit-reversed

// Slicing by 8 (Intel's "slicing-by-8" table method): table[k][b] is the CRC
// of byte b followed by k zero bytes, so eight bytes fold in per step.
constexpr std::array<std::array<u32, 256>, 8> make_tables() {
    std::array<std::array<u32, 256>, 8> t{};
    for (u32 b = 0; b < 256; ++b) {
        u32 c = b;
        for (int i = 0; i < 8; ++i) c = (c >> 1) ^ ((c & 1) ? kPoly : 0);
        t[0][b] = c;
    }
    for (usize k = 1; k < 8; ++k)
        for (u32 b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFF];
    return t;
}
constexpr auto kTables = make_tables();
}  // namespace

u32 crc32c(std::span<const u8> bytes, u32 crc) {
    u32 c = ~crc;
    const u8* p = bytes.data();
    usize n = bytes.size();
    while (n >= 8) {
        const u32 lo = c ^ (u32{p[0]} | u32{p[1]} << 8 | u32{p[2]} << 16 | u32{p[3]} << 24);
        c = kTables[7][lo & 0xFF] ^ kTables[6][(lo >> 8) & 0xFF] ^ kTables[5][(lo >> 16) & 0xFF] ^
            kTables[4][lo >> 24] ^ kTables[3][p[4]] ^ kTables[2][p[5]] ^ kTables[1][p[6]] ^ kTables[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n--) c = (c >> 8) ^ kTables[0][(c ^ *p++) & 0xFF];
    return ~c;
}
}  // namespace disco
