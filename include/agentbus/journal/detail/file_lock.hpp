// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_JOURNAL_DETAIL_FILE_LOCK_HPP
#define AGENTBUS_JOURNAL_DETAIL_FILE_LOCK_HPP

// The one-writer rule: a journal writer holds an exclusive flock() on <directory>/journal.lock
// for its whole life. flock locks belong to an open file description, so a second writer is
// refused whether it lives in another process or in the same one, and the kernel drops the
// lock when the holder dies, however it dies: no stale lock files to clean up after a crash.
// The holder writes its pid into the file, only so that the refusal can say who holds it.

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>

#include "agentbus/journal/options.hpp"
#include "agentbus/journal/detail/posix_file.hpp"

namespace agentbus::detail {

/// @brief Name of the lock file inside a journal directory.
inline constexpr const char* journal_lock_file_name = "journal.lock";

/// @brief An exclusive lock on a journal directory, released on destruction.
class directory_lock {
 public:
  directory_lock() noexcept = default;

  /// @brief Takes the lock on `dir` or throws journal_error{locked} naming the holder. A lock
  /// file created gets `file_mode` (journal_options::file_mode).
  explicit directory_lock(const std::filesystem::path& dir, unsigned file_mode = 0600) {
    const std::filesystem::path path = dir / journal_lock_file_name;
    fd_ = open_file(path, O_RDWR | O_CREAT, false, file_mode);
    int rc;
    do rc = ::flock(fd_.get(), LOCK_EX | LOCK_NB);
    while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      if (errno != EWOULDBLOCK) throw_io("lock", path, errno);
      char buf[32] = {};
      const ssize_t n = ::pread(fd_.get(), buf, sizeof buf - 1, 0);
      std::string holder = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
      throw journal_error(
          journal_error::code::locked,
          "agentbus journal: directory '" + dir.string() + "' is already open by another writer" +
              (holder.empty() ? std::string() : " (process " + holder + ")") + ": its lock file '" + path.string() +
              "' is held. Only one journal writer per directory: close the other one first, or read "
              "while it runs with open_journal_reader()");
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_.get(), 0) == 0) {
      // Best effort: the pid only improves the message another writer gets.
      (void)::pwrite(fd_.get(), pid.data(), pid.size(), 0);
    }
  }

  /// @brief True when the lock is held.
  explicit operator bool() const noexcept { return static_cast<bool>(fd_); }

 private:
  unique_fd fd_;  // closing it releases the lock
};

/// @brief Whether a writer may have `dir` open right now, without touching its lock (a probe
/// with flock would make a writer starting at that moment fail): the process whose pid the
/// last writer left in the lock file still exists. False for certain only when there is no
/// lock file, no pid in it, or no such process; a reused pid only errs on the safe side.
inline bool writer_may_be_running(const std::filesystem::path& dir) noexcept {
  const std::string path = (dir / journal_lock_file_name).string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  ::close(fd);
  if (n <= 0) return false;
  long pid = 0;
  for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) pid = pid * 10 + (buf[i] - '0');
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_JOURNAL_DETAIL_FILE_LOCK_HPP
