// SPDX-License-Identifier: MIT
// A peer's server for one benchmark run (redis-server, nats-server, ...): a child of this
// process on 127.0.0.1, on a free port, with a temporary directory of its own, stopped by its
// own PID. Never a server found by name, never a packaged service's port (6379, 4222).
//
// The free port, the bounded polling and the nats-server lookup come from the test suite's
// helper (tests/transport/nats_server.hpp), so that the tests and the benchmarks find and wait
// for servers the same way.
#ifndef AGENTBUS_BENCH_SUPPORT_SERVER_PROCESS_HPP
#define AGENTBUS_BENCH_SUPPORT_SERVER_PROCESS_HPP

#include "transport/nats_server.hpp"  // agentbus::test::unused_port, wait_until, find_nats_server

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace agentbus::bench {

/// How to run one kind of server.
struct server_command {
  std::string program;  ///< a path, or a name looked up on PATH
  /// The arguments after the program, for the port it must listen on and its own directory.
  std::function<std::vector<std::string>(int port, const std::string& dir)> arguments;
  int stop_signal = SIGTERM;  ///< the signal that asks it for a clean shutdown
};

/// A running server; the destructor stops it. Throws std::runtime_error (with the reason and the
/// end of the server's output) when it cannot be started or does not accept connections in time.
class server_process {
 public:
  explicit server_process(server_command command, std::chrono::milliseconds ready_within = std::chrono::seconds(5))
      : command_(std::move(command)) {
    std::string templ = (std::filesystem::temp_directory_path() / "agentbus-bench-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = templ;
    // The port is free when chosen but another program may take it before the server binds
    // it: a server that exits at once gets a second and third port.
    std::string last_error;
    for (int attempt = 0; attempt < 3; ++attempt) {
      port_ = agentbus::test::unused_port();
      if (!launch()) {
        last_error = "cannot start " + command_.program + ": fork failed";
        break;
      }
      if (wait_ready(ready_within, last_error)) return;
      stop_child();
      if (not_installed_) break;  // another port will not help
    }
    remove_dir();
    throw std::runtime_error(last_error);
  }
  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;
  ~server_process() { stop(); }

  int port() const noexcept { return port_; }
  const std::string& dir() const noexcept { return dir_; }

  /// Stops the server by its PID and removes its directory. Bounded: a server that has not
  /// exited 10 s after the stop signal is killed.
  void stop() noexcept {
    stop_child();
    remove_dir();
  }

 private:
  bool launch() {
    std::vector<std::string> args = command_.arguments(port_, dir_);
    args.insert(args.begin(), command_.program);
    // Not left running if the benchmark dies (a crash, a CI timeout's SIGKILL): servers are
    // started from main's thread, which lives as long as they do.
    const pid_t pid = agentbus::test::spawn_child(std::move(args), dir_ + "/output.log");
    if (pid < 0) return false;
    pid_ = pid;
    return true;
  }

  bool wait_ready(std::chrono::milliseconds limit, std::string& error) {
    int status = 0;
    bool exited = false;
    const bool ready = agentbus::test::wait_until(
        [&] {
          if (::waitpid(pid_, &status, WNOHANG) == pid_) return exited = true;
          return accepts_connections();
        },
        limit);
    if (ready && !exited) return true;
    if (exited) {
      pid_ = -1;  // reaped
      not_installed_ = WIFEXITED(status) && WEXITSTATUS(status) == 127;
      if (not_installed_)
        error = command_.program + " is not installed (not found on PATH)";
      else
        error = command_.program + " exited at start: " + output_tail();
    } else {
      error = command_.program + " did not accept connections within " + std::to_string(limit.count()) +
              " ms: " + output_tail();
    }
    return false;
  }

  bool accepts_connections() const {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port_));
    const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    return ok;
  }

  /// The last lines the server wrote (its own log file when it keeps one there, else its output).
  std::string output_tail() const {
    std::string text;
    for (const char* name : {"/output.log", "/server.log"}) {
      std::ifstream in(dir_ + name);
      text += std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    }
    if (text.size() > 600) text = "..." + text.substr(text.size() - 600);
    return text.empty() ? std::string("(no output)") : text;
  }

  void stop_child() noexcept {
    if (pid_ <= 0) return;
    ::kill(pid_, command_.stop_signal);
    int status = 0;
    const bool exited =
        agentbus::test::wait_until([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, std::chrono::seconds(10));
    if (!exited) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);  // SIGKILL cannot be ignored: this returns
    }
    pid_ = -1;
  }

  void remove_dir() noexcept {
    if (dir_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    dir_.clear();
  }

  server_command command_;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
  bool not_installed_ = false;
};

}  // namespace agentbus::bench

#endif  // AGENTBUS_BENCH_SUPPORT_SERVER_PROCESS_HPP
