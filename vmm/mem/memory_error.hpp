// The one error type of machine memory (MachineMemory and its parts): a kind
// for code to branch on and a message for a person.
#pragma once
#include <string>

namespace disco {
struct MemoryError {
    enum class Kind {
        InvalidConfig,      // capacity or node count that cannot be built
        HostMapping,        // mmap/mbind refused by the host
        InvalidNode,        // node number >= node_count()
        NodeExhausted,      // a Placement::Bind request found its node's pool empty
        Exhausted,          // every node's pool is empty
        InvalidRunLength,   // a run of 0 frames, or of more than a node holds
        InvalidFrame,       // frame number beyond machine memory
        FrameNotAllocated,  // reference or user operation on a free frame
        RefCountOverflow,   // 2^32 - 1 references already held
        InvalidUser,        // guest page number that no address has
        DuplicateUser,      // {vm, page} already maps the frame
        UnknownUser,        // {vm, page} does not map the frame
    } kind;
    std::string message;
};
}  // namespace disco
