// SPDX-License-Identifier: MIT
// A nats-server for one test: started on 127.0.0.1 on a port it picks itself (-p -1, the port
// read back from its ports file), a child of this process, stopped by its own PID (SIGINT, then
// waited for). Never uses 4222 (a packaged service may be listening there).
#ifndef AGENTBUS_TESTS_TRANSPORT_NATS_SERVER_HPP
#define AGENTBUS_TESTS_TRANSPORT_NATS_SERVER_HPP

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace agentbus::test {

/// Sleeps (1 ms steps) until `done()` holds or `limit` passes; returns whether it held.
template <class Pred>
bool wait_until(Pred done, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

/// The nats-server program: $AGENTBUS_NATS_SERVER when set (nothing if it is not a program), else /usr/sbin (Debian puts it there, often
/// not on PATH), /usr/bin, /usr/local/bin, then PATH.
inline std::optional<std::string> find_nats_server() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("AGENTBUS_NATS_SERVER"); env != nullptr && *env != '\0') {
    if (::access(env, X_OK) == 0) return std::string(env);
    return std::nullopt;  // set but not a program: the tests skip (how to check the skip path)
  }
  candidates.insert(candidates.end(), {"/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"});
  if (const char* path = std::getenv("PATH")) {
    std::stringstream dirs(path);
    for (std::string dir; std::getline(dirs, dir, ':');)
      if (!dir.empty()) candidates.push_back(dir + "/nats-server");
  }
  for (const auto& c : candidates)
    if (::access(c.c_str(), X_OK) == 0) return c;
  return std::nullopt;
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound to port 0, then released).
inline int unused_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot bind a socket to a free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

class nats_server {
 public:
  explicit nats_server(const std::string& program) {
    std::string templ = (std::filesystem::temp_directory_path() / "agentbus-nats-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = templ;
    const std::string log = dir_ + "/server.log";
    std::vector<std::string> args = {program, "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", dir_, "-l", log};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (::posix_spawn(&pid_, program.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
      cleanup();
      throw std::runtime_error("cannot start " + program);
    }
    // -p -1: the server picks a free port and writes it to <dir>/nats-server_<pid>.ports.
    const std::string ports = dir_ + "/nats-server_" + std::to_string(pid_) + ".ports";
    const bool ready = wait_until(
        [&] {
          if (exited()) return true;
          std::ifstream in(ports);
          std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
          const auto at = text.find("nats://");
          if (at == std::string::npos) return false;
          const auto end = text.find('"', at);
          if (end == std::string::npos) return false;
          url_ = text.substr(at, end - at);
          return true;
        },
        std::chrono::seconds(10));
    if (!ready || url_.empty()) {
      std::ifstream in(log);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      stop();
      throw std::runtime_error("nats-server did not start (log: " + text + ")");
    }
  }
  nats_server(const nats_server&) = delete;
  nats_server& operator=(const nats_server&) = delete;
  ~nats_server() { stop(); }

  /// nats://127.0.0.1:<port>
  const std::string& url() const noexcept { return url_; }
  pid_t pid() const noexcept { return pid_; }

  /// Stops the server by its PID (SIGINT: a clean shutdown) and waits for it.
  void stop() noexcept {
    if (pid_ > 0) {
      if (!reaped_) {
        ::kill(pid_, SIGINT);
        int status = 0;
        ::waitpid(pid_, &status, 0);
      }
      pid_ = -1;
    }
    cleanup();
  }

 private:
  bool exited() {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) reaped_ = true;
    return reaped_;
  }
  void cleanup() noexcept {
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      dir_.clear();
    }
  }

  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string dir_;
  std::string url_;
};

}  // namespace agentbus::test

#endif  // AGENTBUS_TESTS_TRANSPORT_NATS_SERVER_HPP
