// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_JOURNAL_DETAIL_POSIX_FILE_HPP
#define AGENTBUS_JOURNAL_DETAIL_POSIX_FILE_HPP

// The few POSIX file operations the journal needs, as small RAII types whose failures throw
// journal_error with the path, the system's reason and what to do about it. Linux (and other
// POSIX systems with fdatasync and posix_fallocate) only.

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "agentbus/journal/options.hpp"

namespace agentbus::detail {

/// @brief The system's description of `err`.
inline std::string errno_text(int err) { return std::strerror(err); }

/// @brief Throws journal_error{io}: "agentbus journal: cannot <what> '<path>': <reason>. <advice>".
[[noreturn]] inline void throw_io(std::string_view what, const std::filesystem::path& path, int err,
                                  std::string_view advice = {}) {
  std::string msg = "agentbus journal: cannot ";
  msg.append(what).append(" '").append(path.string()).append("': ").append(errno_text(err));
  if (err == ENOSPC)
    msg += ". The disk is full: free space, lower retention.max_bytes or segment_bytes";
  else if (err == EACCES || err == EPERM || err == EROFS)
    msg += ". Check the directory's permissions (the journal needs read and write access)";
  else if (!advice.empty())
    msg.append(". ").append(advice);
  throw journal_error(journal_error::code::io, msg);
}

/// @brief An owned file descriptor, closed on destruction.
class unique_fd {
 public:
  unique_fd() noexcept = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }

  /// @brief The descriptor, -1 when empty.
  int get() const noexcept { return fd_; }
  /// @brief True when a descriptor is held.
  explicit operator bool() const noexcept { return fd_ >= 0; }
  /// @brief Closes the descriptor (if any).
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

/// @brief Opens `path` with `flags` (O_CLOEXEC added); throws journal_error{io} on failure,
/// or returns an empty unique_fd when `missing_ok` and the file does not exist. A file that
/// O_CREAT creates gets `mode` (journal_options::file_mode; the umask applies).
inline unique_fd open_file(const std::filesystem::path& path, int flags, bool missing_ok = false,
                           unsigned mode = 0600) {
  int fd;
  do fd = ::open(path.c_str(), flags | O_CLOEXEC, static_cast<mode_t>(mode));
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (missing_ok && errno == ENOENT) return {};
    throw_io("open", path, errno);
  }
  return unique_fd(fd);
}

/// @brief Size of the open file.
inline std::uint64_t file_size(int fd, const std::filesystem::path& path) {
  struct stat st{};
  if (::fstat(fd, &st) != 0) throw_io("stat", path, errno);
  return static_cast<std::uint64_t>(st.st_size);
}

/// @brief Sets the file's size to `bytes` without allocating anything: growing it leaves a
/// hole (reads as zeros, takes no disk space) that allocate_range fills in later.
inline void resize_file(int fd, std::uint64_t bytes, const std::filesystem::path& path) {
  int rc;
  do rc = ::ftruncate(fd, static_cast<off_t>(bytes));
  while (rc != 0 && errno == EINTR);
  if (rc != 0) throw_io("set the size (" + std::to_string(bytes) + " bytes) of", path, errno);
}

/// @brief Allocates the blocks of [offset, offset + bytes) of the file (which must already be
/// at least that long), so that writes through a mapping there never hit a hole: no SIGBUS on
/// a full disk, the failure is this call's journal_error{io} instead. Blocks already allocated
/// are left as they are (their bytes too).
inline void allocate_range(int fd, std::uint64_t offset, std::uint64_t bytes, const std::filesystem::path& path) {
  if (bytes == 0) return;
  int err;
  do err = ::posix_fallocate(fd, static_cast<off_t>(offset), static_cast<off_t>(bytes));
  while (err == EINTR);
  if (err != 0)
    throw_io("allocate " + std::to_string(bytes) + " bytes (from byte " + std::to_string(offset) + ") of", path, err);
}

/// @brief fdatasync, retried on EINTR; throws journal_error{io} on failure.
inline void datasync(int fd, const std::filesystem::path& path) {
  int rc;
  do rc = ::fdatasync(fd);
  while (rc != 0 && errno == EINTR);
  if (rc != 0)
    throw_io("flush (fdatasync)", path, errno,
             "Records appended since the last successful flush may be lost; the journal stops accepting "
             "appends. Check the disk, then reopen the journal (recovery will validate what is there)");
}

/// @brief fsync of a directory, so that files created, renamed or deleted in it survive a power loss.
inline void sync_directory(const std::filesystem::path& dir) {
  unique_fd fd = open_file(dir, O_RDONLY | O_DIRECTORY);
  if (::fsync(fd.get()) != 0 && errno != EINVAL) throw_io("flush (fsync) the directory", dir, errno);
}

/// @brief Writes `bytes` at `offset` completely; throws journal_error{io} on failure.
inline void write_at(int fd, std::span<const std::byte> bytes, std::uint64_t offset, const std::filesystem::path& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_io("write", path, errno);
    }
    bytes = bytes.subspan(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
}

/// @brief Reads up to `out.size()` bytes at `offset` (fewer at the end of the file); returns how
/// many were read. Throws journal_error{io} on failure. Unlike a mapping, reading a hole of a
/// sparse file this way cannot raise SIGBUS (a full tmpfs does that to a mapped hole).
inline std::size_t read_at(int fd, std::span<std::byte> out, std::uint64_t offset, const std::filesystem::path& path) {
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_io("read", path, errno);
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

/// @brief End of the last region of the file that holds data (per SEEK_DATA/SEEK_HOLE), which
/// lets recovery skip the untouched (allocated or sparse) tail of a segment without reading it. Falls
/// back to the file size when the file system cannot tell.
inline std::uint64_t data_extent_end(int fd, std::uint64_t size) noexcept {
  std::uint64_t end = 0;
  off_t pos = 0;
  for (int regions = 0; regions < 65536; ++regions) {
    const off_t data = ::lseek(fd, pos, SEEK_DATA);
    if (data < 0) return errno == ENXIO ? end : size;
    const off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return size;
    end = static_cast<std::uint64_t>(hole);
    if (end >= size) return size;
    pos = hole;
  }
  return size;
}

/// @brief Starts writing the file's dirty pages back without waiting for it (Linux
/// sync_file_range; elsewhere nothing). Keeps the page cache's dirty backlog short so that a
/// later fdatasync has less to do. Best effort: errors are left for fdatasync to report.
inline void start_writeback(int fd) noexcept {
#if defined(SYNC_FILE_RANGE_WRITE)
  (void)::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#else
  (void)fd;
#endif
}

/// @brief fdatasync of the file at `path` through a descriptor of its own (the data belongs to
/// the file, not to a descriptor); false when the file is gone (deleted by retention).
inline bool datasync_path(const std::filesystem::path& path) {
  unique_fd fd = open_file(path, O_RDONLY, true);
  if (!fd) return false;
  datasync(fd.get(), path);
  return true;
}

/// @brief Fills the page tables of [p, p + n) (page aligned) by read faults, which brings the
/// pages into the page cache (zero-filled for allocated space and holes) without dirtying them.
/// Done by the background thread ahead of the writer: instantiating a page costs a zeroing
/// and a fault, which is most of what an append into a fresh page would otherwise pay.
inline void populate_pages(std::byte* p, std::size_t n) noexcept {
#if defined(MADV_POPULATE_READ)
  if (::madvise(p, n, MADV_POPULATE_READ) == 0) return;
#endif
  for (std::size_t off = 0; off < n; off += 4096) (void)*static_cast<volatile const std::byte*>(p + off);
}

/// @brief Fills the page tables of [p, p + n) (page aligned) for writing: the write faults
/// (for a file: the file system's page_mkwrite, which marks the pages dirty) happen here rather
/// than on the first store into each page. The pages become dirty (zeros until written), so
/// only a small window just ahead of the writer is ever populated this way. No-op where the
/// kernel lacks MADV_POPULATE_WRITE (Linux < 5.14): touching the pages with stores instead
/// could clobber what a concurrent writer has just put there.
inline void populate_pages_for_write(std::byte* p, std::size_t n) noexcept {
#if defined(MADV_POPULATE_WRITE)
  (void)::madvise(p, n, MADV_POPULATE_WRITE);
#elif defined(__linux__)
  (void)::madvise(p, n, 23);  // MADV_POPULATE_WRITE, for headers older than the kernel
#else
  (void)p;
  (void)n;
#endif
}

/// @brief Drops the page-table entries of [p, p + n) (page aligned) in a shared file mapping;
/// the pages stay in the page cache, dirty ones still dirty, and a later access faults them
/// back in. Why: writing back a page that a process has mapped writable write-protects it,
/// one TLB shootdown (an interrupt to every CPU running the process) per page. Dropped in
/// one call, the entries cost one flush for the whole range, and the write-back finds
/// nothing left to protect.
inline void drop_mapped_pages(std::byte* p, std::size_t n) noexcept {
  if (n != 0) (void)::madvise(p, n, MADV_DONTNEED);
}

/// @brief A memory mapping of (part of) a file, unmapped on destruction.
class mapping {
 public:
  mapping() noexcept = default;
  mapping(mapping&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  mapping& operator=(mapping&& o) noexcept {
    if (this != &o) {
      reset();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  mapping(const mapping&) = delete;
  mapping& operator=(const mapping&) = delete;
  ~mapping() { reset(); }

  /// @brief Maps the first `size` bytes of `fd` shared; `writable` for the writer. Pages are
  /// faulted in on first use (see populate_pages for doing that ahead of time).
  static mapping map(int fd, std::uint64_t size, bool writable, const std::filesystem::path& path) {
    mapping m;
    if (size == 0) return m;
    void* p = ::mmap(nullptr, static_cast<std::size_t>(size), writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
                     fd, 0);
    if (p == MAP_FAILED) throw_io("map (mmap)", path, errno);
    m.data_ = static_cast<std::byte*>(p);
    m.size_ = static_cast<std::size_t>(size);
    return m;
  }

  /// @brief The mapped bytes.
  std::byte* data() const noexcept { return data_; }
  /// @brief Bytes mapped.
  std::size_t size() const noexcept { return size_; }
  /// @brief The mapped bytes as a span.
  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  /// @brief Unmaps.
  void reset() noexcept {
    if (data_ != nullptr) ::munmap(data_, size_);
    data_ = nullptr;
    size_ = 0;
  }

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_JOURNAL_DETAIL_POSIX_FILE_HPP
