// SPDX-License-Identifier: MIT
// Starting a server (nats-server, redis-server) as a child that cannot outlive the test or
// benchmark that started it: the kernel kills it when its parent dies (PR_SET_PDEATHSIG), so a
// crash, an assertion that aborts, or a CI timeout's SIGKILL leaves no server running. Used by
// tests/transport/nats_server.hpp and bench/support/server_process.hpp.
#ifndef AGENTBUS_TESTS_SUPPORT_CHILD_PROCESS_HPP
#define AGENTBUS_TESTS_SUPPORT_CHILD_PROCESS_HPP

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace agentbus::test {

/// Starts `args[0]` (a path, or a name searched on PATH) with `args`: stdin from /dev/null,
/// stdout and stderr into the file `output` (created or truncated), or inherited when `output`
/// is empty. The child is SIGKILLed when the thread that called this ends or the process dies
/// (PR_SET_PDEATHSIG fires on the thread: start servers from a thread that lives as long as
/// they do, such as main's). Returns the child's pid, or -1 when fork failed; a child whose
/// program could not be run exits with 127.
inline pid_t spawn_child(std::vector<std::string> args, const std::string& output) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  // Everything the child needs is prepared before fork(): this program may run other threads,
  // so between fork and exec the child makes system calls only (and execvp, whose PATH search
  // in glibc does not allocate).
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(126);  // the parent died before prctl took effect
  const int null_fd = ::open("/dev/null", O_RDONLY);
  if (null_fd >= 0) ::dup2(null_fd, 0);
  if (!output.empty()) {
    const int out_fd = ::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out_fd >= 0) {
      ::dup2(out_fd, 1);
      ::dup2(out_fd, 2);
    }
  }
  ::execvp(argv[0], argv.data());
  ::_exit(127);
}

}  // namespace agentbus::test

#endif  // AGENTBUS_TESTS_SUPPORT_CHILD_PROCESS_HPP
