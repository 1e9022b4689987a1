#include "vmm/board/initrd.hpp"

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace disco::board {
namespace {
struct Magic {
    std::string_view bytes;
    const char* format;
};
// Magic numbers of the formats in Linux's lib/decompress.c table and of the
// cpio "newc"/"crc" headers (the only cpio variants init/initramfs.c takes).
constexpr std::array kMagics{
    Magic{"070701", "cpio (newc)"},        Magic{"070702", "cpio (crc)"},
    Magic{"\x1f\x8b", "gzip"},             Magic{"\x1f\x9e", "gzip"},
    Magic{"BZh", "bzip2"},                 Magic{"\x5d\x00\x00", "lzma"},
    Magic{"\xfd" "7zXZ", "xz"},            Magic{"\x89LZO", "lzo"},
    Magic{"\x02\x21\x4c\x18", "lz4"},      Magic{"\x28\xb5\x2f\xfd", "zstd"},
};
}  // namespace

const char* initrd_format(std::span<const u8> head) {
    for (const auto& m : kMagics) {
        if (head.size() >= m.bytes.size() && std::memcmp(head.data(), m.bytes.data(), m.bytes.size()) == 0)
            return m.format;
    }
    return nullptr;
}

Result<std::vector<u8>, Error> read_initrd(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail(Error{fmt::format("initrd {}: {}", path, std::strerror(errno))});
    std::vector<u8> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) return fail(Error{fmt::format("initrd {}: read error", path)});
    if (data.empty()) return fail(Error{fmt::format("initrd {}: empty file", path)});
    if (!initrd_format(data))
        return fail(Error{fmt::format("initrd {}: not a cpio archive or a compressed one (gzip, bzip2, lzma, xz, lzo, "
                                      "lz4, zstd)",
                                      path)});
    return data;
}
}  // namespace disco::board
