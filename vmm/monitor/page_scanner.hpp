// Content-based page sharing (issue 5, "sharing what no disk read shows"):
// pages that are identical across VMs (or within one) but never passed
// through a disk read, such as a kernel that decompressed itself, zeroed
// pages or files unpacked from an initramfs, are found by scanning, as
// VMware ESX does and Linux's KSM does for processes: hash each page; a page
// whose hash did not change since the previous pass (so it is not being
// written right now) and matches another page's is a candidate, and the pmap
// merges the two copy-on-write after comparing them in full with both pages
// held still (GuestRam::share_from). The first write to a merged page gets
// that VM a private copy again.
//
// Budget: at most pages_per_second pages are hashed, in 10 ms batches, on one
// scanner thread; its CPU time is measured (CLOCK_THREAD_CPUTIME_ID) and
// reported apart from the sharing that disk reads give.
//
// Threads: add() and remove() from any thread; remove() returns only once the
// scanner no longer touches that RAM (it must be called before the RAM goes).
#pragma once
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "vmm/mem/guest_ram.hpp"

namespace disco::monitor {

struct ScanStats {
    u64 pages_scanned = 0;  // hashed
    u64 passes = 0;         // complete passes over every RAM
    u64 merged = 0;         // pages now sharing another's frame
    u64 not_identical = 0;  // same hash, different bytes (or changed meanwhile)
    u64 busy = 0;           // being moved, pinned or written: tried again next pass
    double cpu_seconds = 0;
};

class PageScanner {
public:
    explicit PageScanner(double pages_per_second);
    ~PageScanner();
    PageScanner(const PageScanner&) = delete;
    PageScanner& operator=(const PageScanner&) = delete;

    /// Scans this RAM from now on (machine-memory RAM only; plain RAM is ignored).
    void add(GuestRam& ram);
    /// Stops scanning it; no access to it after this returns.
    void remove(GuestRam& ram);
    void stop();
    ScanStats stats() const;
    std::string summary() const;

private:
    struct Target {
        GuestRam* ram;
        std::vector<std::pair<u64, u64>> ranges;  // RAM pages [first, last]
        std::unordered_map<u64, u32> last_hash;   // page -> its hash at the previous pass
    };
    struct Candidate {
        GuestRam* ram;
        u64 ppage;
    };
    void loop();
    /// Hashes and tries to merge up to n pages; the state mutex is held.
    void scan_batch(u64 n);
    void scan_page(Target& t, u64 ppage);
    bool next_page(Target*& t, u64& ppage);

    double rate_;
    mutable std::mutex mutex_;  // everything below; held while a batch runs
    std::condition_variable cv_;
    bool stopping_ = false;
    std::vector<Target> targets_;
    usize cursor_target_ = 0, cursor_range_ = 0;
    u64 cursor_page_ = 0;
    std::unordered_map<u64, Candidate> by_hash_;  // this pass's pages, by content hash
    ScanStats stats_;
    std::thread thread_;
};
}  // namespace disco::monitor
