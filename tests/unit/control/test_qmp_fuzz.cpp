// Random byte streams through the framer and a session (tests/fuzz/qmp_harness.hpp
// says what must hold): mutations of well-formed requests, so that most get
// past the parser, plus plain noise. Seeded, so that a failure reproduces;
// tests/fuzz/fuzz_qmp.cpp is the open-ended version.
#include <catch2/catch.hpp>
#include <random>
#include <string>

#include "tests/fuzz/qmp_harness.hpp"

TEST_CASE("QMP random and mutated request streams", "[control]") {
    const std::string seeds[] = {
        R"({"execute":"qmp_capabilities"})",
        R"({"execute":"query-status","id":1})",
        R"({"execute":"query-status","arguments":{"vm":"a"},"id":[1,{"x":null}]})",
        R"({"execute":"__com.disco-project_vm-info","arguments":{"vm":"a"}})",
        R"({"execute":"__com.disco-project_vm-list"})",
        R"({"execute":"__com.disco-project_vm-create","arguments":{"definition":{"name":"b","kernel":"k","machine":"baremetal"},"start":false}})",
        R"({"execute":"__com.disco-project_vm-start","arguments":{"vm":"a"}})",
        R"({"execute":"__com.disco-project_vm-destroy","arguments":{"vm":"b"}})",
        R"({"execute":"query-cpus-fast"})",
        R"({"execute":"system_reset","arguments":{"vm":"a"}})",
        R"({"execute":"quit"})",
    };
    std::mt19937_64 rng(0x5eed'c0de);
    const char tokens[] =
        "{}[]\":,\\ \n\x01\xff"
        "0123456789abcxyz-_.";
    for (int round = 0; round < 1500; ++round) {
        std::string stream(1, static_cast<char>(rng()));  // the write size
        stream += seeds[0];
        const int requests = 1 + static_cast<int>(rng() % 6);
        for (int i = 0; i < requests; ++i) {
            std::string r = seeds[rng() % std::size(seeds)];
            for (int flips = static_cast<int>(rng() % 5); flips > 0; --flips) {
                const size_t at = rng() % r.size();
                switch (rng() % 4) {
                    case 0:
                        r[at] = tokens[rng() % (sizeof tokens - 1)];
                        break;
                    case 1:
                        r.insert(at, 1, tokens[rng() % (sizeof tokens - 1)]);
                        break;
                    case 2:
                        r.erase(at, 1 + rng() % 8);
                        break;
                    default:
                        r.insert(at, r.substr(0, rng() % r.size()));
                        break;
                }
                if (r.empty()) r = "{";
            }
            stream += r;
        }
        if (round % 10 == 0)
            for (int i = 0; i < 200; ++i) stream += static_cast<char>(rng());
        disco::test::run_qmp_case(
            std::span<const disco::u8>(reinterpret_cast<const disco::u8*>(stream.data()), stream.size()));
    }
    SUCCEED("1500 streams framed and answered");
}
