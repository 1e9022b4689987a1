// The QMP stream framer: where messages end, whatever the writes look like,
// and how it gets back in step after garbage, control characters and
// messages over the bound.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "vmm/control/qmp_framer.hpp"

using disco::control::QmpFramer;
using Kind = QmpFramer::Piece::Kind;

namespace {
/// "T:<text>", "O" (oversized) or "R" (reset) per piece.
std::vector<std::string> frame(QmpFramer& f, const std::string& bytes, size_t chunk = 0) {
    std::vector<QmpFramer::Piece> pieces;
    if (chunk == 0) chunk = bytes.size() ? bytes.size() : 1;
    for (size_t at = 0; at < bytes.size(); at += chunk) f.feed(std::string_view(bytes).substr(at, chunk), pieces);
    std::vector<std::string> out;
    for (const auto& p : pieces)
        out.push_back(p.kind == Kind::Text ? "T:" + p.text : p.kind == Kind::Oversized ? "O" : "R");
    return out;
}
using V = std::vector<std::string>;
}  // namespace

TEST_CASE("QMP framer: messages with or without newlines, in any writes", "[control]") {
    const std::string stream = R"({"execute":"a"}{"execute":"b", "arguments": {"x": [1, {"y": "}]"}]}}   )"
                               "\r\n"
                               R"([1,2]{"s": "quote \" and \\"})";
    const V expect{R"(T:{"execute":"a"})", R"(T:{"execute":"b", "arguments": {"x": [1, {"y": "}]"}]}})", "T:[1,2]",
                   R"(T:{"s": "quote \" and \\"})"};
    for (size_t chunk : {0, 1, 2, 7, 64}) {
        INFO("chunk " << chunk);
        QmpFramer f(1024);
        CHECK(frame(f, stream, chunk) == expect);
        CHECK(f.pending() == 0);
    }
    QmpFramer f(1024);
    CHECK(frame(f, R"({"execute": "a")") == V{});
    CHECK(f.pending() > 0);
    CHECK(frame(f, "}") == V{R"(T:{"execute": "a"})"});
}

TEST_CASE("QMP framer: stray text, control characters and resets", "[control]") {
    QmpFramer f(1024);
    // Stray text runs to a newline or to the next message.
    CHECK(frame(f, "42\n") == V{"T:42"});
    CHECK(frame(f, "garbage{\"a\":1}") == V{"T:garbage", R"(T:{"a":1})"});
    CHECK(frame(f, "}\n") == V{"T:}"});
    // Between messages a control character or 0xFF is a parser reset: skipped.
    CHECK(frame(f, std::string("\x01\x1b\xff", 3) + "{}") == V{"T:{}"});
    // Inside a message it abandons the message; what follows is framed afresh.
    CHECK(frame(f, std::string("{\"execute\": ") + '\x01' + "{\"b\":2}") == V{"R", R"(T:{"b":2})"});
    CHECK(frame(f, "{\"a\": \"\xff\"}{}") == V{"R", "T:\"}", "T:{}"});
    // NUL too.
    CHECK(frame(f, std::string("[1,\0", 4) + "[]") == V{"R", "T:[]"});
}

TEST_CASE("QMP framer: a message over the bound is answered once and skipped to its end", "[control]") {
    QmpFramer f(64);
    const std::string big = R"({"execute": "x", "arguments": {"pad": ")" + std::string(500, 'z') + R"(", "n": [[]]}})";
    for (size_t chunk : {0, 1, 10}) {
        INFO("chunk " << chunk);
        QmpFramer g(64);
        CHECK(frame(g, big + R"({"execute":"next"})", chunk) == V{"O", R"(T:{"execute":"next"})"});
        CHECK(g.pending() == 0);
    }
    // Brackets inside the skipped part's strings do not end it early.
    CHECK(frame(f, std::string(100, '[') + "\"]]]]\"" + std::string(100, ']') + "{}") == V{"O", "T:{}"});
    // A reset ends the skipping at once.
    CHECK(frame(f, std::string(100, '{') + "\x02{}") == V{"O", "T:{}"});
    // Stray text over the bound, too.
    CHECK(frame(f, std::string(200, 'a') + "\n{}") == V{"O", "T:{}"});
    // Never more than the bound held.
    QmpFramer h(64);
    std::vector<QmpFramer::Piece> pieces;
    for (int i = 0; i < 1000; ++i) {
        h.feed("{\"a\":[", pieces);
        CHECK(h.pending() <= 64);
    }
    CHECK(pieces.size() == 1);
}
