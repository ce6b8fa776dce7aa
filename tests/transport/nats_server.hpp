// SPDX-License-Identifier: MIT
// A nats-server for one test: started on 127.0.0.1 on a port it picks itself (-p -1, the port
// read back from its ports file), a child of this process, stopped by its own PID (SIGINT, then
// waited for). Never uses 4222 (a packaged service may be listening there). With
// nats_server_options::jetstream it runs JetStream on a store directory (-js -sd), and can be
// stopped by a signal (halt: SIGKILL for a crash, SIGINT for a clean stop) and started again on
// the same port with the same store directory (restart), as a server that crashed and came back.
#ifndef AGENTBUS_TESTS_TRANSPORT_NATS_SERVER_HPP
#define AGENTBUS_TESTS_TRANSPORT_NATS_SERVER_HPP

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
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
#include <utility>
#include <vector>

#include "support/child_process.hpp"

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

/// How to run a test's nats-server beyond the defaults.
struct nats_server_options {
  bool jetstream = false;  ///< run JetStream (-js) with its store in store_dir
  std::string store_dir{};  ///< JetStream's store (-sd); empty: <the server's temporary directory>/jetstream
  std::vector<std::string> extra_args{};  ///< more command-line arguments (TLS: --tls --tlscert ...)
};

class nats_server {
 public:
  explicit nats_server(const std::string& program) : nats_server(program, nats_server_options{}) {}

  nats_server(const std::string& program, nats_server_options options) : program_(program), options_(std::move(options)) {
    std::string templ = (std::filesystem::temp_directory_path() / "agentbus-nats-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = templ;
    if (options_.jetstream && options_.store_dir.empty()) options_.store_dir = dir_ + "/jetstream";
    launch(-1);
  }
  nats_server(const nats_server&) = delete;
  nats_server& operator=(const nats_server&) = delete;
  ~nats_server() { stop(); }

  /// nats://127.0.0.1:<port> (tls://... for a server run with --tls)
  const std::string& url() const noexcept { return url_; }
  pid_t pid() const noexcept { return pid_; }
  /// The port it listens on (the same after restart()).
  int port() const noexcept { return port_; }
  /// JetStream's store directory (empty without JetStream).
  const std::string& store_dir() const noexcept { return options_.store_dir; }
  /// True while the process runs (not halted, stopped or exited).
  bool running() noexcept { return pid_ > 0 && !exited(); }

  /// Stops the process by its PID with `signal` (SIGKILL: a crash; SIGINT: a clean shutdown) and
  /// waits for it; keeps the port and the store directory for restart().
  void halt(int signal) noexcept {
    if (pid_ > 0) {
      if (!reaped_) {
        ::kill(pid_, signal);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        reaped_ = true;
      }
      pid_ = -1;
    }
  }

  /// Starts the server again (after halt) on the same port with the same store directory.
  /// Retries for a while when the port is not free yet.
  void restart() {
    if (pid_ > 0 && !exited()) throw std::runtime_error("nats-server: restart() while it runs: halt() it first");
    pid_ = -1;
    std::string last;
    for (int tries = 0; tries < 20; ++tries) {
      try {
        launch(port_);
        return;
      } catch (const std::exception& e) {
        last = e.what();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    throw std::runtime_error("nats-server did not restart on port " + std::to_string(port_) + ": " + last);
  }

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
  // Starts the process on `port` (-1: the server picks one) and waits for its ports file.
  void launch(int port) {
    const std::string log = dir_ + "/server.log";
    std::vector<std::string> args = {program_, "-a", "127.0.0.1", "-p", std::to_string(port), "--ports_file_dir", dir_,
                                     "-l", log};
    if (options_.jetstream) args.insert(args.end(), {"-js", "-sd", options_.store_dir});
    args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
    reaped_ = false;
    url_.clear();
    pid_ = spawn_child(std::move(args), "");  // not left running if this test dies
    if (pid_ < 0) {
      pid_ = -1;
      if (port < 0) cleanup();
      throw std::runtime_error("cannot start " + program_);
    }
    // The server writes its port to <dir>/nats-server_<pid>.ports (-p -1: one it picked).
    const std::string ports = dir_ + "/nats-server_" + std::to_string(pid_) + ".ports";
    const bool ready = wait_until(
        [&] {
          if (exited()) return true;
          std::ifstream in(ports);
          std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
          auto at = text.find("nats://");
          if (at == std::string::npos) at = text.find("tls://");  // a server that requires TLS
          if (at == std::string::npos) return false;
          const auto end = text.find('"', at);
          if (end == std::string::npos) return false;
          url_ = text.substr(at, end - at);
          return true;
        },
        std::chrono::seconds(10));
    if (!ready || url_.empty() || reaped_) {
      std::ifstream in(log);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (port < 0) {
        stop();
      } else {
        halt(SIGKILL);
      }
      throw std::runtime_error("nats-server did not start (log: " + text + ")");
    }
    const auto colon = url_.rfind(':');
    port_ = colon == std::string::npos ? -1 : std::atoi(url_.c_str() + colon + 1);
  }

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

  std::string program_;
  nats_server_options options_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string dir_;
  std::string url_;
  int port_ = -1;
};

/// A nats-server for one test, or nothing when none is installed (see find_nats_server).
inline std::optional<nats_server> start_test_server(nats_server_options options = {}) {
  const auto program = find_nats_server();
  if (!program) return std::nullopt;
  return std::optional<nats_server>(std::in_place, *program, std::move(options));
}

}  // namespace agentbus::test

/// In a Catch2 test case: starts a nats-server named `server` (options optional:
/// `AGENTBUS_NATS_SERVER_OR_SKIP(server, {.jetstream = true})`), or ends the test with a warning
/// saying why it is skipped.
#define AGENTBUS_NATS_SERVER_OR_SKIP(server, ...)                                                            \
  auto server = agentbus::test::start_test_server(__VA_ARGS__);                                             \
  if (!server) {                                                                                            \
    WARN("skipped: nats-server is not installed (Debian: apt-get install nats-server; or set AGENTBUS_NATS_SERVER)"); \
    return;                                                                                                 \
  }

#endif  // AGENTBUS_TESTS_TRANSPORT_NATS_SERVER_HPP
