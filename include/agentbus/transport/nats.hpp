// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_TRANSPORT_NATS_HPP
#define AGENTBUS_TRANSPORT_NATS_HPP

// A connection to a NATS server (core NATS), for the NATS bridge (agentbus/bridge/nats.hpp).
// This header is the only one in agentbus that includes the NATS C client (cnats,
// <nats/nats.h>, Debian libnats-dev); link the CMake target agentbus::nats, which CMake offers
// when pkg-config finds libnats. Without the client (or with AGENTBUS_NO_NATS defined) this
// header defines AGENTBUS_HAS_NATS as 0 and nothing else, so it still compiles on its own, and
// agentbus/bridge/nats.hpp then explains what is missing when the bridge is used.
//
// What the connection does when the server is not there:
//   - at construction: nats_connection throws nats_error naming the URL and the client's
//     reason (connection refused comes back at once; an address that does not answer after
//     nats_options::connect_timeout). It never retries in the constructor, never hangs;
//   - later: the client reconnects (nats_options::max_reconnect attempts, reconnect_wait
//     apart), buffering up to reconnect_buffer_bytes of publishes meanwhile; a publish that
//     does not fit, or that comes after the client gave up (the connection is closed), fails
//     and the bridge counts it as dropped. Publishes still in the reconnect buffer when the
//     client gives up are counted as dropped too (the bridge counts what it published while
//     the connection was down). What was written to the socket just before the server went
//     away is lost uncounted: core NATS is at most once (JetStream is not: bridge/jetstream.hpp).
//
// The wire format the bridge writes (and reads back) on core NATS:
//   - subject: the agentbus topic, unchanged (the topic syntax is the NATS subject syntax;
//     patterns' `*` and `>` are NATS wildcards). Topics and subjects starting with `$` are
//     reserved (NATS uses $SYS, $JS, ...): the bridge refuses them;
//   - payload: the event's codec bytes (agentbus/storage/codec.hpp);
//   - headers (nats_header below): schema name, version and codec fingerprint (16 hex digits);
//     event id and correlation id (decimal); source; priority (low, normal, high); deadline
//     (Unix time in nanoseconds, when the event has one); publish time (Unix nanoseconds); the
//     origin (the sending bridge's id). The event's own string headers (traceparent, ...) go
//     as NATS headers of the same name.

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agentbus/detail/chrono.hpp"

#if defined(AGENTBUS_NO_NATS)
#define AGENTBUS_HAS_NATS 0
#elif !defined(__has_include)
/// @brief 1 when the NATS C client's header was found (this header then defines the
/// connection and agentbus/bridge/nats.hpp the bridge), else 0. (A preprocessor without
/// __has_include, such as Doxygen's, assumes the client is there.)
#define AGENTBUS_HAS_NATS 1
#elif __has_include(<nats/nats.h>)
#define AGENTBUS_HAS_NATS 1
#else
#define AGENTBUS_HAS_NATS 0
#endif

#if AGENTBUS_HAS_NATS
#include <nats/nats.h>
#endif

#if AGENTBUS_HAS_NATS

namespace agentbus {

/// @brief Names of the NATS headers the bridge writes and reads (see the top of this header).
namespace nats_header {
/// @brief The prefix of every header agentbus owns; other headers are the event's own.
inline constexpr std::string_view prefix = "Agentbus-";
/// @brief Schema name (event_traits<T>::name()).
inline constexpr const char* schema = "Agentbus-Schema";
/// @brief Schema version (decimal).
inline constexpr const char* schema_version = "Agentbus-Schema-Version";
/// @brief The codec's fingerprint (16 lowercase hex digits).
inline constexpr const char* fingerprint = "Agentbus-Fingerprint";
/// @brief The event id in the sending process (decimal).
inline constexpr const char* event_id = "Agentbus-Event-Id";
/// @brief Correlation id (decimal; absent when 0).
inline constexpr const char* correlation_id = "Agentbus-Correlation-Id";
/// @brief Source agent (absent when empty).
inline constexpr const char* source = "Agentbus-Source";
/// @brief Priority: low, normal or high.
inline constexpr const char* priority = "Agentbus-Priority";
/// @brief Deadline as Unix time in nanoseconds (absent when the event has none).
inline constexpr const char* deadline = "Agentbus-Deadline";
/// @brief Publish time as Unix time in nanoseconds.
inline constexpr const char* published = "Agentbus-Published";
/// @brief The id of the bridge that sent the event: loop prevention.
inline constexpr const char* origin = "Agentbus-Origin";
/// @brief On a reply: why there is no reply value (a request_errc name: timeout, no_responders,
/// server_failed, ...); the payload is then empty.
inline constexpr const char* error = "Agentbus-Error";
/// @brief On a reply with Agentbus-Error: the readable explanation.
inline constexpr const char* error_detail = "Agentbus-Error-Detail";
/// @brief With nats_options::signing_key: HMAC-SHA256 of the message's canonical bytes (64
/// lowercase hex digits; see agentbus/bridge/detail/signing.hpp and docs/wire-format.md).
inline constexpr const char* signature = "Agentbus-Signature";
/// @brief How the payload is encoded beyond its codec: `zstd` (nats_options::compress_above;
/// see agentbus/bridge/detail/compression.hpp); absent for the codec bytes as they are.
inline constexpr const char* encoding = "Agentbus-Encoding";
/// @brief JetStream's own deduplication header (the server drops a repeat inside the stream's window).
inline constexpr const char* msg_id = "Nats-Msg-Id";
}  // namespace nats_header

/// @brief The NATS client failed: could not connect, publish or subscribe. what() names the
/// operation, the URL and the client's reason.
class nats_error : public std::runtime_error {
 public:
  /// @brief An error with `what` and the client's status code (natsStatus).
  nats_error(const std::string& what, int status) : std::runtime_error(what), status_(status) {}
  /// @brief The client's status code (a natsStatus value; 0 when none).
  int status() const noexcept { return status_; }

 private:
  int status_;
};

/// @brief Why the bridge did not send or deliver something (see nats_bridge_problem).
enum class nats_problem_kind : std::uint8_t {
  send_failed,      ///< a local event could not be sent (counted in dropped)
  decode_error,     ///< a NATS message's bytes did not decode, or its subject is not a valid topic
  schema_mismatch,  ///< a NATS message has another schema name, version or fingerprint than the import's type
  expired,          ///< a NATS message arrived after its deadline
  bad_signature,    ///< a NATS message without a valid Agentbus-Signature (nats_options::signing_key)
  not_stored,       ///< a delayed event (agentbus-not-before) reached a bus that stores nothing to hold it
};

/// @brief One problem, as handed to the problem handler. The views live for the call only.
struct nats_bridge_problem {
  nats_problem_kind kind;   ///< what went wrong
  std::string_view topic;   ///< the topic or subject concerned
  std::string_view what;    ///< a readable explanation
};

/// @brief Receives the bridge's problems, on the thread that met them (a publisher or the client's
/// delivery thread): keep it short and do not throw.
using nats_problem_handler = std::function<void(const nats_bridge_problem&)>;

/// @brief How to reach the server and which topics cross (the patterns are for the bridge).
///
/// `agentbus::nats_options{.url = "nats://127.0.0.1:4222", .outgoing = {"orders.>"}, .incoming = {"prices.*"}}`
struct nats_options {
  std::string url = "nats://127.0.0.1:4222";  ///< server URL (a comma-separated list is allowed)
  std::string name{};                         ///< connection name shown by the server (default: the bridge id)
  std::vector<std::string> outgoing{};  ///< patterns that may go out (empty: any export_type pattern)
  std::vector<std::string> incoming{};  ///< patterns that may come in (empty: any import_type pattern)
  std::chrono::milliseconds connect_timeout{2000};  ///< per connection attempt
  int max_reconnect = 60;                           ///< reconnect attempts after a loss; 0 = none
  std::chrono::milliseconds reconnect_wait{1000};   ///< between reconnect attempts
  int reconnect_buffer_bytes = 8 * 1024 * 1024;     ///< publishes kept while reconnecting
  std::string user{};      ///< user name (with password), passed to the client
  std::string password{};  ///< password
  std::string token{};     ///< authentication token
  bool tls = false;                 ///< require TLS (also implied by any tls_* file below or a tls:// URL)
  std::string tls_ca_file{};        ///< PEM file of the CA(s) that signed the server's certificate
  std::string tls_cert_file{};      ///< PEM client certificate (chain), for servers that verify clients
  std::string tls_key_file{};       ///< PEM private key of tls_cert_file
  std::string tls_hostname{};       ///< the name the server's certificate must carry (default: the URL's host)
  bool send_asap = false;  ///< send each publish at once instead of batching (latency over throughput)
  /// How many messages one import (import_type, import_requests, and the replies to
  /// export_requests) may have waiting for the bus before the client drops the next ones as a
  /// slow consumer (counted in stats().dropped_incoming). Raise it for bursts a synchronous
  /// handler cannot keep up with; negative: no limit (memory grows as long as the bus is slower
  /// than the subject). 0 is refused (std::invalid_argument). nats_bridge only: a
  /// jetstream_client's consumers pull what they ask for and ignore both.
  int incoming_pending_messages = 65536;
  int incoming_pending_bytes = 64 * 1024 * 1024;  ///< the same, in payload bytes (negative: no limit; 0 is refused)
  /// Shared secret: when not empty, every message sent is signed (HMAC-SHA256, the header
  /// Agentbus-Signature) and every message received must carry a valid signature, else it is
  /// rejected and counted (stats().signature_failures). Needs OpenSSL's libcrypto (see
  /// agentbus/bridge/detail/signing.hpp). Every process on the subjects must use the same key.
  std::string signing_key{};
  /// Payloads of at least this many codec bytes go out compressed with zstd (the header
  /// Agentbus-Encoding: zstd), when that makes them smaller; 0 (the default): never. Needs zstd
  /// (see agentbus/bridge/detail/compression.hpp). Receivers built with zstd read them always.
  std::size_t compress_above = 0;
  int compress_level = 3;  ///< zstd's level for compress_above (1 fast ... 19 small)
  nats_problem_handler on_problem{};  ///< receives what was not sent or delivered (see nats_problem_handler)
};

namespace detail {

inline std::string nats_status_text(natsStatus s) {
  std::string text = natsStatus_GetText(s);
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  if (detail != nullptr && *detail != '\0' && std::string_view(detail).find(text) == std::string_view::npos) {
    text += " (";
    text += detail;
    text += ')';
  }
  return text;
}

[[noreturn]] inline void throw_nats(std::string_view what, std::string_view url, natsStatus s) {
  std::string m = "agentbus: nats: ";
  m += what;
  if (!url.empty()) {
    m += " (";
    m += url;
    m += ')';
  }
  m += ": ";
  m += nats_status_text(s);
  throw nats_error(m, static_cast<int>(s));
}

/// What a header value becomes on the wire, where it must survive cnats's parser (3.4): up
/// to a NUL (values are C strings), CR and LF as spaces (the client's writer does that), and
/// without leading or trailing spaces and tabs (the parser drops them). Empty once that is
/// done, the value cannot cross at all: the parser would take the next header line for it.
/// Returns `value` itself when it is already in that form (the usual case), else the form
/// built in `scratch`.
inline std::string_view wire_header_value(std::string_view value, std::string& scratch) {
  value = value.substr(0, value.find('\0'));
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  const bool clean = !value.empty() && !blank(value.front()) && !blank(value.back()) &&
                     value.find_first_of("\r\n") == std::string_view::npos;
  if (clean) return value;
  std::size_t first = 0, last = value.size();
  while (first < last && blank(value[first])) ++first;
  while (last > first && blank(value[last - 1])) --last;
  scratch.assign(value.substr(first, last - first));
  for (char& c : scratch)
    if (c == '\r' || c == '\n') c = ' ';
  return scratch;
}

/// A natsMsg owned until destroyed.
class nats_message {
 public:
  /// A message on `subject` with `reply` as its reply subject (none when null).
  nats_message(const std::string& subject, const void* data, std::size_t size, const char* reply = nullptr) {
    if (size > static_cast<std::size_t>(INT32_MAX)) throw nats_error("agentbus: nats: payload larger than 2 GiB", 0);
    const natsStatus s = natsMsg_Create(&msg_, subject.c_str(), reply, static_cast<const char*>(data),
                                        static_cast<int>(size));
    if (s != NATS_OK) throw_nats("cannot build a message", {}, s);
  }
  nats_message(nats_message&& other) noexcept : msg_(std::exchange(other.msg_, nullptr)) {}
  nats_message& operator=(nats_message&&) = delete;
  nats_message(const nats_message&) = delete;
  nats_message& operator=(const nats_message&) = delete;
  ~nats_message() { natsMsg_Destroy(msg_); }

  /// Adds a header (key and value copied by the client), the value in its wire form
  /// (wire_header_value); a value that is empty in that form is not added (NATS_OK): it
  /// could not cross.
  natsStatus add_header(const char* key, const char* value) noexcept {
    const std::string_view raw = value != nullptr ? std::string_view(value) : std::string_view();
    try {
      thread_local std::string scratch;
      const std::string_view wire = wire_header_value(raw, scratch);
      if (wire.empty()) return NATS_OK;
      if (wire.data() == raw.data() && wire.size() == raw.size()) return natsMsgHeader_Add(msg_, key, value);
      return natsMsgHeader_Add(msg_, key, scratch.c_str());
    } catch (...) {
      return NATS_NO_MEMORY;
    }
  }
  natsMsg* get() const noexcept { return msg_; }
  /// Hands the message over (to a client call that takes ownership, such as js_PublishMsgAsync).
  natsMsg* release() noexcept { return std::exchange(msg_, nullptr); }

 private:
  natsMsg* msg_ = nullptr;
};

}  // namespace detail

/// @brief One connection to a NATS server: connects in the constructor (nats_error when it
/// cannot: see the top of this header), closes in the destructor. Thread safe, like the client.
class nats_connection {
 public:
  /// @brief Connects to `options.url`; throws nats_error (never hangs beyond
  /// `options.connect_timeout` per server URL).
  explicit nats_connection(const nats_options& options, std::string_view default_name = {}) : url_(options.url) {
    natsOptions* opts = nullptr;
    natsStatus s = natsOptions_Create(&opts);
    if (s != NATS_OK) detail::throw_nats("cannot create client options", url_, s);
    const std::string name = options.name.empty() ? std::string(default_name) : options.name;
    if (s == NATS_OK) s = natsOptions_SetURL(opts, url_.c_str());
    if (s == NATS_OK && !name.empty()) s = natsOptions_SetName(opts, name.c_str());
    if (s == NATS_OK) s = natsOptions_SetTimeout(opts, options.connect_timeout.count());
    if (s == NATS_OK) s = natsOptions_SetAllowReconnect(opts, options.max_reconnect > 0);
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, options.max_reconnect);
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, options.reconnect_wait.count());
    if (s == NATS_OK) s = natsOptions_SetReconnectBufSize(opts, options.reconnect_buffer_bytes);
    if (s == NATS_OK) s = natsOptions_SetRetryOnFailedConnect(opts, false, nullptr, nullptr);
    // A connection never receives what it published itself (the bridge also checks the origin).
    if (s == NATS_OK) s = natsOptions_SetNoEcho(opts, true);
    if (s == NATS_OK) s = natsOptions_SetSendAsap(opts, options.send_asap);
    if (s == NATS_OK && !options.user.empty())
      s = natsOptions_SetUserInfo(opts, options.user.c_str(), options.password.c_str());
    if (s == NATS_OK && !options.token.empty()) s = natsOptions_SetToken(opts, options.token.c_str());
    const bool tls = options.tls || !options.tls_ca_file.empty() || !options.tls_cert_file.empty();
    if (s == NATS_OK && tls) s = natsOptions_SetSecure(opts, true);
    if (s == NATS_OK && !options.tls_ca_file.empty())
      s = natsOptions_LoadCATrustedCertificates(opts, options.tls_ca_file.c_str());
    if (s == NATS_OK && (!options.tls_cert_file.empty() || !options.tls_key_file.empty()))
      s = natsOptions_LoadCertificatesChain(opts, options.tls_cert_file.c_str(), options.tls_key_file.c_str());
    if (s == NATS_OK && !options.tls_hostname.empty())
      s = natsOptions_SetExpectedHostname(opts, options.tls_hostname.c_str());
    if (s != NATS_OK) {
      natsOptions_Destroy(opts);
      detail::throw_nats("invalid connection options", url_, s);
    }
    s = natsConnection_Connect(&conn_, opts);
    natsOptions_Destroy(opts);
    if (s != NATS_OK) {
      natsConnection_Destroy(conn_);  // accepts nullptr
      detail::throw_nats(s == NATS_NO_SERVER ? "cannot connect: no server is listening there"
                                                       : "cannot connect",
                         url_, s);
    }
  }
  nats_connection(const nats_connection&) = delete;
  nats_connection& operator=(const nats_connection&) = delete;
  /// @brief Flushes what is buffered (briefly), closes and frees the connection.
  ~nats_connection() {
    if (natsConnection_Status(conn_) == NATS_CONN_STATUS_CONNECTED) (void)natsConnection_FlushTimeout(conn_, 1000);
    natsConnection_Close(conn_);
    natsConnection_Destroy(conn_);
  }

  /// @brief The client's connection (for calls this wrapper does not offer).
  natsConnection* get() const noexcept { return conn_; }
  /// @brief The URL it was given.
  const std::string& url() const noexcept { return url_; }
  /// @brief True while connected (false while reconnecting or once closed).
  bool connected() const noexcept { return natsConnection_Status(conn_) == NATS_CONN_STATUS_CONNECTED; }
  /// @brief Waits until the server has processed everything sent so far; nats_error on timeout.
  void flush(std::chrono::milliseconds timeout = std::chrono::milliseconds{2000}) const {
    const natsStatus s = natsConnection_FlushTimeout(conn_, timeout.count());
    if (s != NATS_OK) detail::throw_nats("flush failed", url_, s);
  }

 private:
  std::string url_;
  natsConnection* conn_ = nullptr;
};

template <class Bus>
class nats_bridge;  // agentbus/bridge/nats.hpp

namespace transport {

/// @brief Events cross to other processes through a NATS server: a bus
/// `basic_bus<S, transport::nats>` (any storage policy S) connects when it is constructed
/// (from nats_options: `bus(storage_options, bus_options, nats_options)`, or
/// `bus(nats_options)`) and owns a nats_bridge, reached through `bus.transport()`, that is
/// closed before the bus shuts down. Which topics cross is said on the bridge
/// (export_type / import_type / export_requests / import_requests): nothing crosses until
/// then. Include <agentbus/bridge/nats.hpp> to use it.
struct nats {
  /// @brief Marks this type as a transport policy.
  using transport_tag = void;
  /// @brief Events leave the process.
  static constexpr bool bridges = true;
  /// @brief Where the server is and which patterns may cross.
  using options = nats_options;
  /// @brief What the bus holds: its bridge.
  template <class Bus>
  using attachment = nats_bridge<Bus>;
};

}  // namespace transport

/// @brief Releases the NATS client library's threads and memory. Optional: call it once at the
/// end of main(), after every connection is destroyed (sanitizers then see no leak).
inline void nats_library_close() noexcept { nats_Close(); }

}  // namespace agentbus

#else  // no NATS client

namespace agentbus {

template <class Bus>
class nats_bridge;  // agentbus/bridge/nats.hpp (its stand-in explains what is missing)

namespace transport {

/// @brief Stands in for the NATS transport when the NATS C client is missing: a bus that uses
/// it fails to compile with the bridge's explanation (install libnats-dev, link agentbus::nats).
struct nats {
  /// @brief Marks this type as a transport policy.
  using transport_tag = void;
  /// @brief Events would leave the process.
  static constexpr bool bridges = true;
  /// @brief Nothing to configure without the client.
  struct options {};
  /// @brief The bridge's stand-in.
  template <class Bus>
  using attachment = nats_bridge<Bus>;
};

}  // namespace transport

}  // namespace agentbus

#endif  // AGENTBUS_HAS_NATS

#endif  // AGENTBUS_TRANSPORT_NATS_HPP
