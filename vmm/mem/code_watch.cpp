#include "vmm/mem/code_watch.hpp"

namespace disco {
CodeWatch::CodeWatch(u64 limit_pa) : pages_(limit_pa >> 12), state_(new std::atomic<u32>[limit_pa >> 12]) {
    for (u64 i = 0; i < pages_; ++i) state_[i].store(0, std::memory_order_relaxed);
}

u32 CodeWatch::watch(u64 ppage) {
    if (ppage >= pages_) return 0;
    u32 s = state_[ppage].fetch_or(1, std::memory_order_acq_rel);
    if (!(s & 1)) flush_epoch_.fetch_add(1, std::memory_order_acq_rel);
    return s >> 1;
}
}  // namespace disco
