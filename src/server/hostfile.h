#pragma once
// Open MPI hostfiles for `paradit serve --hostfile FILE`: read them, and choose the hosts of the
// next worker job after failures. A host whose ranks failed `threshold` times (2) is left out when
// the other hosts still have slots for every rank; otherwise the job runs on every host again
// (the layout, and with it the pixels, never changes: the number of processes is fixed).

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace paradit::server {

struct HostEntry {
  std::string name;  // as written: a host name or an address
  int slots = 1;     // slots=N; 1 when the line has none
  std::string line;  // the line as written (its other options kept)
};

// One entry per host line ('#' comments and blank lines skipped). Error naming the file and line
// when a line is malformed (slots=N not a positive integer) or the file has no host.
std::vector<HostEntry> read_hostfile(const std::filesystem::path& path);
void write_hostfile(const std::filesystem::path& path, const std::vector<HostEntry>& hosts);

struct HostChoice {
  std::vector<HostEntry> hosts;        // for the next job, in the file's order
  std::vector<std::string> left_out;   // names of the hosts left out
};
// `failures`: failed ranks' counts by host name (HostEntry::name).
HostChoice choose_hosts(const std::vector<HostEntry>& hosts,
                        const std::map<std::string, int>& failures, int np, int threshold = 2);

// The entry a rank ran on: the one named `host` (its host name, or Open MPI's node name) or one
// of its addresses, or whose name's first label equals the host name's. -1 when none matches.
int match_host(const std::vector<HostEntry>& hosts, const std::string& host,
               const std::vector<std::string>& addrs = {});

}  // namespace paradit::server
