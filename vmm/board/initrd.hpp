// The initial ramdisk: read from the host, checked to be something Linux can
// unpack (a newc cpio archive, or one compressed with a method Debian's
// kernel is built with: CONFIG_RD_GZIP/BZIP2/LZMA/XZ/LZO/LZ4/ZSTD), and
// placed page-aligned in guest RAM (guest-board.md §5.2).
#pragma once
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/util/result.hpp"
#include "vmm/util/types.hpp"

namespace disco::board {

/// The format named by an initrd's first bytes, or nullptr when Linux could not unpack it.
const char* initrd_format(std::span<const u8> head);

/// Reads an initrd and checks its format; one error line naming the file otherwise.
Result<std::vector<u8>, Error> read_initrd(const std::string& path);
}  // namespace disco::board
