// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_JOURNAL_INSPECT_HPP
#define AGENTBUS_JOURNAL_INSPECT_HPP

/// @file
/// @brief The journal inspector as a library: `agentbus-journal`'s commands (stats, dump, tail
/// [-f], verify) for your own program, which decodes your event types with their codecs.
///
/// The stock `agentbus-journal` tool shows a payload it cannot read as hex. An inspector built
/// on this header registers a printer per event type and shows those payloads decoded:
///
/// ```
/// #include <agentbus/journal/inspect.hpp>
/// #include <agentbus/storage/codec.hpp>     // your types' codecs (agentbus_encode/_decode, codec<T>)
///
/// int main(int argc, char** argv) {
///   agentbus::journal_inspector inspector("shop-journal");
///   inspector.register_printer<shop::order>(
///       [](const shop::order& o) { return "customer=" + o.customer + " items=" + std::to_string(o.items); });
///   return inspector.run(argc, argv);   // shop-journal dump DIR --topic 'shop.>' ...
/// }
/// ```
///
/// The command line, the output and the exit statuses are agentbus-journal's (`run` with
/// `--help` prints them; the stock tool is `journal_inspector{}.run(argc, argv)`). A record
/// is shown decoded (`dump`, `tail`; `--json`: `"payload_encoding":"decoded"`) when a printer
/// is registered for its schema name and version and --payload is auto, the default. A
/// payload the printer cannot decode (a codec_error, another codec fingerprint at the same
/// version, a version without a printer) is shown as the tool shows bytes, with the reason
/// (`(not decoded: ...)`; `--json`: `"decode_error"`). Everything is read-only and takes no
/// lock, so an inspector works while a writer appends. POSIX only, like the journal; the
/// standard library alone (no fmt).
///
/// register_printer<T> decodes with T's codec from `agentbus/storage/codec.hpp`, which the
/// program includes itself (the journal module sits below storage and names the codec
/// without including it); the schema name and version are `event_traits<T>`'s, as the bus's
/// storage::journal writes them. add_printer registers a printer over raw records, for any
/// schema and version (an old layout, records not written by the bus).

#include <atomic>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "agentbus/core/event_traits.hpp"
#include "agentbus/journal/detail/inspect_commands.hpp"
#include "agentbus/journal/journal.hpp"
#include "agentbus/journal/options.hpp"

namespace agentbus {

// Declared here, defined in agentbus/storage/codec.hpp (a module above the journal), which a
// program calling register_printer<T> includes for T's codec.
template <class T>
struct codec;
class byte_reader;

/// @brief A printer over raw records (journal_inspector::add_printer): the record's payload as
/// one line of text. Throwing a std::exception means "cannot decode": the inspector shows the
/// bytes and what() as the reason.
using payload_printer = detail::inspect::payload_printer;

/// @brief agentbus-journal as a library object: printers for your event types, then run() on
/// the command line. See the file comment.
///
/// Register printers before run(); run() may be called any number of times (not at once
/// from several threads, as `tail -f` shares one stop flag).
class journal_inspector {
 public:
  /// @brief An inspector whose messages and usage text name it `program` (default
  /// "agentbus-journal"; run(argc, argv) uses argv[0]'s file name when none was given).
  explicit journal_inspector(std::string program = {}) : program_(std::move(program)) {}

  /// @brief Shows payloads of event type T decoded: records whose schema is
  /// event_traits<T>::name() at version event_traits<T>::version() are decoded with T's codec
  /// (agentbus/storage/codec.hpp, included by the caller) and passed to `print`, which returns
  /// the text to show (anything convertible to std::string). A record written by another
  /// layout of T (its codec fingerprint differs) or bytes the codec rejects are not decoded:
  /// shown as bytes, with the reason. Replaces an earlier printer for the same schema and
  /// version.
  template <class T, class Print>
  journal_inspector& register_printer(Print print) {
    return register_printer_with<T, byte_reader>(std::move(print));
  }

  /// @brief Registers `print` for records of schema `schema` at version `version`, whatever
  /// wrote them (it receives the whole record; `record::payload` holds the bytes). Replaces
  /// an earlier printer for the same schema and version.
  journal_inspector& add_printer(std::string schema, std::uint32_t version, payload_printer print) {
    printers_.add(std::move(schema), version, std::move(print));
    return *this;
  }

  /// @brief True when a printer is registered for `schema` at `version`.
  bool has_printer(std::string_view schema, std::uint32_t version) const { return printers_.has(schema, version); }

  /// @brief What the inspector shows for `r`'s payload when a printer is registered for it:
  /// the printer's text; nullopt without a printer. Throws std::runtime_error with the reason
  /// when the printer cannot decode it.
  std::optional<std::string> payload_text(const record& r) const {
    auto d = printers_.decode(r);
    using decode_outcome = detail::inspect::printer_registry::result::outcome;
    if (d.what == decode_outcome::no_printer) return std::nullopt;
    if (d.what == decode_outcome::failed) throw std::runtime_error(d.text);
    return std::move(d.text);
  }

  /// @brief Where run() writes its output and its messages (default stdout and stderr).
  journal_inspector& set_output(std::FILE* out, std::FILE* err) noexcept {
    out_ = out;
    err_ = err;
    return *this;
  }

  /// @brief Runs a command line as agentbus-journal would: `argv[1..]` are the command and
  /// its options (`dump DIR --json`, `verify DIR`, `--help`, ...). Returns the exit status:
  /// 0 success, 1 record damage found or the journal cannot be read, 2 bad usage, 3 (verify)
  /// index damage alone. Never throws for a bad command line or an unreadable journal (it
  /// says so on the error stream and returns the status).
  int run(int argc, char** argv) const {
    std::vector<std::string_view> args;
    for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
    std::string name = program_;
    if (name.empty() && argc > 0 && argv[0] != nullptr && *argv[0] != '\0') {
      const std::string_view path = argv[0];
      name = path.substr(path.find_last_of('/') == std::string_view::npos ? 0 : path.find_last_of('/') + 1);
    }
    return run_as(std::move(name), args);
  }

  /// @brief Runs the command line `args`, without the program name: `{"dump", dir, "--json"}`.
  int run(std::span<const std::string_view> args) const { return run_as(program_, args); }

  /// @brief The same, from a list: `inspector.run({"verify", dir})`.
  int run(std::initializer_list<std::string_view> args) const {
    return run(std::span<const std::string_view>(args.begin(), args.size()));
  }

  /// @brief The usage text (what `--help` prints).
  std::string usage() const { return context_for(program_).usage(); }

  /// @brief Ends a running `tail -f` at its next poll, in any inspector of the process, as
  /// SIGINT and SIGTERM do while it runs. Async-signal-safe.
  static void request_stop() noexcept { detail::inspect::stop_requested.store(true, std::memory_order_relaxed); }

 private:
  template <class T, class Reader, class Print>
  journal_inspector& register_printer_with(Print print) {
    // Reader is agentbus::byte_reader, named through a template parameter so that this
    // compiles where only its declaration is known, and is instantiated where it is defined.
    // One error per mistake: each check in a branch of its own, nothing else instantiated.
    if constexpr (!requires { sizeof(Reader); } || !requires(Reader& in) {
                    { codec<T>::decode(in) } -> std::same_as<T>;
                    { codec<T>::fingerprint() } -> std::convertible_to<std::uint64_t>;
                  }) {
      static_assert(requires { sizeof(Reader); } && requires(Reader& in) { codec<T>::decode(in); },
                    "agentbus: journal_inspector::register_printer<T> decodes with T's codec: include "
                    "<agentbus/storage/codec.hpp> and give T a codec there (agentbus_encode/agentbus_decode "
                    "hooks, a codec<T> specialization, or agentbus_bitwise_codec)");
      return *this;
    } else if constexpr (!std::is_invocable_v<Print&, const T&>) {
      static_assert(std::is_invocable_v<Print&, const T&>,
                    "agentbus: journal_inspector::register_printer<T>(print): print takes a const T&");
      return *this;
    } else if constexpr (!std::is_convertible_v<std::invoke_result_t<Print&, const T&>, std::string>) {
      static_assert(std::is_convertible_v<std::invoke_result_t<Print&, const T&>, std::string>,
                    "agentbus: journal_inspector::register_printer<T>(print): print returns the text to show "
                    "(convertible to std::string)");
      return *this;
    } else {
      printers_.add(std::string(event_traits<T>::name()), event_traits<T>::version(),
                    [print = std::move(print)](const record& r) mutable -> std::string {
                      if (r.fingerprint != 0 && r.fingerprint != codec<T>::fingerprint())
                        throw std::runtime_error(
                            "the codec fingerprint differs from this program's type at the same schema version "
                            "(the type changed without a version bump)");
                      Reader in(r.payload);
                      const T value = codec<T>::decode(in);
                      if (in.remaining() != 0)
                        throw std::runtime_error(detail::inspect::cat(
                            in.remaining(), " bytes left over after decoding (wrong type or layout)"));
                      return std::string(print(value));
                    });
      return *this;
    }
  }

  detail::inspect::context context_for(std::string name) const {
    detail::inspect::context c;
    c.out = out_;
    c.err = err_;
    if (!name.empty()) c.program = std::move(name);
    c.printers = &printers_;
    return c;
  }

  int run_as(std::string name, std::span<const std::string_view> args) const {
    return detail::inspect::run(context_for(std::move(name)), args);
  }

  std::string program_;
  detail::inspect::printer_registry printers_;
  std::FILE* out_ = stdout;
  std::FILE* err_ = stderr;
};

}  // namespace agentbus

#endif  // AGENTBUS_JOURNAL_INSPECT_HPP
