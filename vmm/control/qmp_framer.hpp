// Splits a QMP byte stream into messages. QMP is a stream of JSON texts, not
// of lines: clients send an object with or without a newline after it (QEMU's
// own python client sends none), several in one write, or one across many.
// The framer finds where each ends without parsing it:
//
//  - Between messages, whitespace is skipped, and so is any other ASCII
//    control character or 0xFF: those are QMP's "parser reset", which a
//    client sends to get back in step.
//  - A message starts at '{' or '[' and ends where its brackets balance
//    (brackets inside strings, and escaped quotes, do not count).
//  - Anything else between messages (a bare number, stray text, a lone '}')
//    runs to the next newline, '{' or '[' and is handed on as it is, so that
//    the session answers it with an error.
//  - A control character other than \t \r \n, or 0xFF, inside a message
//    abandons it (Piece::Reset).
//  - A message or stray run longer than the bound is answered once
//    (Piece::Oversized) and then skipped to its end — its brackets still
//    counted, so the stream resynchronises on the next message — or to a
//    parser reset, whichever comes first. Nothing over the bound is stored.
//
// Memory: at most the bound per framer. Not thread-safe (one per connection).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "vmm/util/types.hpp"

namespace disco::control {

class QmpFramer {
public:
    struct Piece {
        enum class Kind {
            Text,       // a complete message (or stray run) to parse
            Oversized,  // a message over the bound: now being skipped
            Reset,      // a message abandoned by a control character
        } kind;
        std::string text;  // Text only
    };

    explicit QmpFramer(usize max_message) : max_(max_message) {}

    /// Consumes the bytes; appends each piece they complete to `out`.
    void feed(std::string_view bytes, std::vector<Piece>& out);
    /// Bytes held for a message not yet complete.
    usize pending() const { return buffer_.size(); }

private:
    enum class State { Idle, Message, Stray, SkipMessage, SkipStray };
    void start_skip(std::vector<Piece>& out);

    usize max_;
    State state_ = State::Idle;
    std::string buffer_;
    u64 depth_ = 0;  // brackets open (Message, SkipMessage)
    bool in_string_ = false, escape_ = false;
};
}  // namespace disco::control
