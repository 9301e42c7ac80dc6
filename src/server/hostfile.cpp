#include "server/hostfile.h"

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace paradit::server {

namespace {

std::string first_label(const std::string& name) { return name.substr(0, name.find('.')); }

bool is_address(const std::string& name) {
  return name.find_first_not_of("0123456789.") == std::string::npos ||
         name.find(':') != std::string::npos;
}

}  // namespace

std::vector<HostEntry> read_hostfile(const std::filesystem::path& path) {
  std::ifstream in(path);
  PARADIT_CHECK(in.good(), "--hostfile ", path.string(), ": cannot be read");
  std::vector<HostEntry> hosts;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    const std::string text = line.substr(0, line.find('#'));
    std::istringstream words(text);
    HostEntry e;
    if (!(words >> e.name)) continue;
    e.line = text;
    std::string word;
    while (words >> word) {
      if (word.rfind("slots=", 0) != 0) continue;
      const std::string n = word.substr(6);
      PARADIT_CHECK(!n.empty() && n.size() <= 6 &&
                        n.find_first_not_of("0123456789") == std::string::npos && std::stoi(n) > 0,
                    "--hostfile ", path.string(), ":", number,
                    ": slots must be a positive integer, found '", word, "'");
      e.slots = std::stoi(n);
    }
    hosts.push_back(e);
  }
  PARADIT_CHECK(!hosts.empty(), "--hostfile ", path.string(), ": no host in it");
  return hosts;
}

void write_hostfile(const std::filesystem::path& path, const std::vector<HostEntry>& hosts) {
  std::ofstream out(path, std::ios::trunc);
  for (const HostEntry& h : hosts) out << h.line << "\n";
  PARADIT_CHECK(out.good(), "cannot write the hostfile ", path.string());
}

HostChoice choose_hosts(const std::vector<HostEntry>& hosts,
                        const std::map<std::string, int>& failures, int np, int threshold) {
  HostChoice keep;
  int slots = 0;
  for (const HostEntry& h : hosts) {
    const auto it = failures.find(h.name);
    if (it != failures.end() && it->second >= threshold) {
      keep.left_out.push_back(h.name);
      continue;
    }
    keep.hosts.push_back(h);
    slots += h.slots;
  }
  if (keep.left_out.empty() || slots >= np) return keep;
  return HostChoice{hosts, {}};  // the others do not fit the layout: every host again
}

int match_host(const std::vector<HostEntry>& hosts, const std::string& host,
               const std::vector<std::string>& addrs) {
  for (size_t i = 0; i < hosts.size(); ++i) {
    if (hosts[i].name == host) return static_cast<int>(i);
    for (const std::string& a : addrs) {
      if (hosts[i].name == a) return static_cast<int>(i);
    }
  }
  for (size_t i = 0; i < hosts.size(); ++i) {
    if (!host.empty() && !is_address(hosts[i].name) && !is_address(host) &&
        first_label(hosts[i].name) == first_label(host)) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

}  // namespace paradit::server
