// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_BRIDGE_DETAIL_SIGNING_HPP
#define AGENTBUS_BRIDGE_DETAIL_SIGNING_HPP

// Signed messages (nats_options::signing_key): every message the bridge sends carries
// Agentbus-Signature, the HMAC-SHA256 under the shared key of the message's canonical bytes,
// and every message it receives must carry a valid one, else it is rejected and counted.
//
// The canonical bytes (docs/wire-format.md, "Signatures"), so that a client in another language
// can sign and verify:
//
//   "agentbus-signature-v1\n" subject "\n" reply-subject-or-empty "\n"
//   for each header name except Agentbus-Signature, in bytewise order, for each of its values
//   in the order they appear:  name ":" value "\n"
//   "\n" payload-bytes
//
// The HMAC comes from OpenSSL's libcrypto (Debian libssl-dev): CMake links it into
// agentbus::nats and defines AGENTBUS_NATS_SIGNING=1 when it finds it. Without it, a bridge
// given a signing key throws nats_error at construction rather than send unsigned messages.

#include "agentbus/transport/nats.hpp"

#if AGENTBUS_HAS_NATS

#include <algorithm>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#if defined(AGENTBUS_NATS_SIGNING) && AGENTBUS_NATS_SIGNING
#include <openssl/evp.h>
#include <openssl/hmac.h>
#define AGENTBUS_HAS_NATS_SIGNING 1
#else
#define AGENTBUS_HAS_NATS_SIGNING 0
#endif

namespace agentbus::detail {

/// The canonical bytes of `msg` that its signature covers (see the top of this header).
inline std::string canonical_signed_bytes(natsMsg* msg) {
  std::string out = "agentbus-signature-v1\n";
  if (const char* subject = natsMsg_GetSubject(msg)) out += subject;
  out += '\n';
  if (const char* reply = natsMsg_GetReply(msg)) out += reply;
  out += '\n';
  const char** keys = nullptr;
  int key_count = 0;
  if (natsMsgHeader_Keys(msg, &keys, &key_count) == NATS_OK) {
    std::vector<std::string_view> names;
    for (int k = 0; k < key_count; ++k)
      if (std::string_view(keys[k]) != nats_header::signature) names.emplace_back(keys[k]);
    std::sort(names.begin(), names.end());
    for (const std::string_view name : names) {
      const std::string key(name);
      const char** values = nullptr;
      int value_count = 0;
      if (natsMsgHeader_Values(msg, key.c_str(), &values, &value_count) == NATS_OK) {
        for (int v = 0; v < value_count; ++v) {
          out += key;
          out += ':';
          out += values[v];
          out += '\n';
        }
        std::free(static_cast<void*>(values));
      }
    }
    std::free(static_cast<void*>(keys));
  }
  out += '\n';
  if (const char* data = natsMsg_GetData(msg)) out.append(data, static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
  return out;
}

/// Signs and verifies messages with one shared key (empty: signing is off).
class message_signer {
 public:
  message_signer() = default;
  /// A signer with `key`; nats_error when agentbus was built without libcrypto.
  explicit message_signer(std::string key) : key_(std::move(key)) {
#if !AGENTBUS_HAS_NATS_SIGNING
    if (!key_.empty())
      throw nats_error(
          "agentbus: nats: nats_options::signing_key needs HMAC-SHA256 from OpenSSL's libcrypto, and this program was "
          "built without it (install libssl-dev and link agentbus::nats, which then defines AGENTBUS_NATS_SIGNING=1)",
          0);
#endif
  }

  /// True when messages are signed and checked.
  bool enabled() const noexcept { return !key_.empty(); }

  /// The signature of `msg` as 64 lowercase hex digits.
  std::string signature(natsMsg* msg) const {
#if AGENTBUS_HAS_NATS_SIGNING
    const std::string bytes = canonical_signed_bytes(msg);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), reinterpret_cast<const unsigned char*>(bytes.data()),
             bytes.size(), digest, &length) == nullptr)
      throw nats_error("agentbus: nats: HMAC-SHA256 failed", 0);
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * length);
    for (unsigned int i = 0; i < length; ++i) {
      out += hex[digest[i] >> 4];
      out += hex[digest[i] & 15];
    }
    return out;
#else
    (void)msg;
    return {};
#endif
  }

  /// Adds Agentbus-Signature to `msg` (its headers and payload final, added one header per
  /// add: the *_one_by_one functions of envelope.hpp). NATS_OK or the error.
  natsStatus sign(nats_message& msg) const {
    if (!enabled()) return NATS_OK;
    return msg.add_header(nats_header::signature, signature(msg.get()).c_str());
  }

  /// True when `msg` carries a valid signature (always true when signing is off). Compares in
  /// constant time.
  bool verify(natsMsg* msg) const {
    if (!enabled()) return true;
    const char* claimed = nullptr;
    if (natsMsgHeader_Get(msg, nats_header::signature, &claimed) != NATS_OK || claimed == nullptr) return false;
    const std::string expected = signature(msg);
    const std::string_view got(claimed);
    if (got.size() != expected.size()) return false;
    unsigned char diff = 0;
    for (std::size_t i = 0; i < got.size(); ++i) diff |= static_cast<unsigned char>(got[i] ^ expected[i]);
    return diff == 0;
  }

 private:
  std::string key_;
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_HAS_NATS

#endif  // AGENTBUS_BRIDGE_DETAIL_SIGNING_HPP
