#include "vmm/control/qmp_framer.hpp"

namespace disco::control {
namespace {
bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
/// QMP's parser reset: an ASCII control character other than \t \r \n, or 0xFF.
bool is_reset(unsigned char c) { return (c < 0x20 && !is_space(c)) || c == 0xFF; }
bool opens(unsigned char c) { return c == '{' || c == '['; }
}  // namespace

void QmpFramer::start_skip(std::vector<Piece>& out) {
    out.push_back({Piece::Kind::Oversized, {}});
    buffer_.clear();
    buffer_.shrink_to_fit();
    state_ = state_ == State::Message ? State::SkipMessage : State::SkipStray;
}

void QmpFramer::feed(std::string_view bytes, std::vector<Piece>& out) {
    for (const char ch : bytes) {
        const auto c = static_cast<unsigned char>(ch);
        switch (state_) {
            case State::Idle:
                if (is_space(c) || is_reset(c)) break;
                buffer_.assign(1, ch);
                if (opens(c)) {
                    state_ = State::Message;
                    depth_ = 1;
                    in_string_ = escape_ = false;
                } else {
                    state_ = State::Stray;
                }
                break;

            case State::Message:
            case State::SkipMessage: {
                if (is_reset(c)) {
                    // A skipped message was answered already (Oversized).
                    if (state_ == State::Message) out.push_back({Piece::Kind::Reset, {}});
                    buffer_.clear();
                    state_ = State::Idle;
                    break;
                }
                if (state_ == State::Message) buffer_.push_back(ch);
                if (in_string_) {
                    if (escape_)
                        escape_ = false;
                    else if (c == '\\')
                        escape_ = true;
                    else if (c == '"')
                        in_string_ = false;
                } else if (c == '"') {
                    in_string_ = true;
                } else if (opens(c)) {
                    ++depth_;
                } else if (c == '}' || c == ']') {
                    if (--depth_ == 0) {
                        if (state_ == State::Message) out.push_back({Piece::Kind::Text, std::move(buffer_)});
                        buffer_.clear();
                        state_ = State::Idle;
                        break;
                    }
                }
                if (state_ == State::Message && buffer_.size() > max_) start_skip(out);
                break;
            }

            case State::Stray:
            case State::SkipStray:
                if (c == '\n' || is_reset(c) || opens(c)) {
                    if (state_ == State::Stray) out.push_back({Piece::Kind::Text, std::move(buffer_)});
                    buffer_.clear();
                    state_ = State::Idle;
                    if (opens(c)) {
                        buffer_.assign(1, ch);
                        state_ = State::Message;
                        depth_ = 1;
                        in_string_ = escape_ = false;
                    }
                    break;
                }
                if (state_ == State::Stray) {
                    buffer_.push_back(ch);
                    if (buffer_.size() > max_) start_skip(out);
                }
                break;
        }
    }
}
}  // namespace disco::control
