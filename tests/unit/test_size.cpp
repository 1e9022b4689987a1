// Size arguments as users type them (--memory).
#include <catch2/catch.hpp>

#include "vmm/util/size.hpp"

using disco::parse_size;

TEST_CASE("sizes parse like QEMU's", "[util]") {
    CHECK(*parse_size("64M") == 64ull << 20);
    CHECK(*parse_size("2G") == 2ull << 30);
    CHECK(*parse_size("512") == 512ull << 20);
    CHECK(*parse_size("4096K") == 4ull << 20);
    CHECK(*parse_size("1GiB") == 1ull << 30);
    CHECK_FALSE(parse_size("").has_value());
    CHECK_FALSE(parse_size("lots").has_value());
    CHECK_FALSE(parse_size("12Q").has_value());
    CHECK_FALSE(parse_size("99999999999T").has_value());
    CHECK(parse_size("x").error().message.find("'x'") != std::string::npos);
}
