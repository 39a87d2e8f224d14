// audit/ — the read-only audit tools of the slotd binary: `slotd replay | verify | export`.
//
// Each opens the journal of a data dir as a RocksDB secondary (Journal::open_read_only),
// so it works beside a running slotd: it takes no lock and writes nothing in the data dir;
// snapshots are only read. May include engine/, journal/, snapshots/ and api/'s JSON
// writers (the same event JSON as GET /events; tokens are never written).
#pragma once

#include <cstdio>
#include <string_view>

namespace slotd {

// True when argv[1] names one of the tools.
bool is_audit_command(std::string_view arg);

// Runs `slotd <tool> [flags]`; returns the process exit code (0 ok, 1 a problem found or
// the data dir unreadable, 2 bad usage).
int run_audit_command(int argc, char** argv);

// The usage lines of the tools, for `slotd --help`.
const char* audit_usage();

}  // namespace slotd
