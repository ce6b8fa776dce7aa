// SPDX-License-Identifier: MIT
// Tutorial 06 — your own journal inspector: agentbus-journal that decodes your event types.
//
// The stock agentbus-journal shows a payload it cannot read as hex: it knows nothing of your
// types. agentbus/journal/inspect.hpp is that tool as a library: register a printer for each
// of your event types (decoded with the codec your program already has), call run(), and the
// program is agentbus-journal — every command, option and exit status — showing your events
// decoded.
//
//   example_06_journal_inspector               a demo: writes a few events to a temporary journal,
//                                              runs its own `dump` and `verify` on it and checks
//                                              that the reviews show decoded
//   example_06_journal_inspector dump DIR      on the journal tutorial 04 leaves (--keep DIR): its
//                                              orders decoded
//   example_06_journal_inspector dump DIR ...  the inspector itself: stats, dump, tail [-f],
//                                              verify, --help, as agentbus-journal
//
// It needs the standard library alone (no fmt), like the header.

#include <agentbus/agentbus.hpp>
#include <agentbus/journal/inspect.hpp>
#include <agentbus/storage/journal.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

// 1. An event type with std::string members, stored through two codec hooks (tutorial 04).
namespace shop {
struct review_posted {
  static constexpr std::string_view event_name = "shop.review_posted";
  static constexpr std::uint32_t event_version = 1;
  std::string author;
  std::string text;
  std::uint8_t stars = 0;
};

void agentbus_encode(agentbus::byte_writer& out, const review_posted& r) {
  agentbus::encode(out, r.author);
  agentbus::encode(out, r.text);
  agentbus::encode(out, r.stars);
}
review_posted agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<review_posted>) {
  review_posted r;
  r.author = agentbus::codec<std::string>::decode(in);
  r.text = agentbus::codec<std::string>::decode(in);
  r.stars = agentbus::codec<std::uint8_t>::decode(in);
  return r;
}

// A type this inspector has no printer for: shown as bytes, as agentbus-journal would.
struct parcel_weighed {
  static constexpr std::string_view event_name = "shop.parcel_weighed";
  static constexpr bool agentbus_bitwise_codec = true;
  std::uint32_t order = 0;
  std::uint32_t grams = 0;
};
}  // namespace shop

// 2. The inspector: a printer per type it knows, by schema name and version (what the bus
//    wrote with each record).
agentbus::journal_inspector make_inspector() {
  agentbus::journal_inspector inspector("example_06_journal_inspector");
  // A type of this program: decoded with its codec, then printed.
  inspector.register_printer<shop::review_posted>([](const shop::review_posted& r) {
    return r.author + " gave " + std::to_string(r.stars) + "/5: " + r.text;
  });
  // Tutorial 04's orders, whose C++ type this program does not have: a printer over the raw
  // record, read in the layout tutorial 04's hooks write (an int, a string, a vector of ints).
  inspector.add_printer("shop.order_placed", 1, [](const agentbus::record& r) {
    agentbus::byte_reader in(r.payload);
    const int id = agentbus::codec<int>::decode(in);
    const std::string customer = agentbus::codec<std::string>::decode(in);
    const std::vector<int> items = agentbus::codec<std::vector<int>>::decode(in);
    return "order #" + std::to_string(id) + " for " + customer + ", " + std::to_string(items.size()) + " items";
  });
  return inspector;
}

int main(int argc, char** argv) {
  // 3. With a command line, it is the tool: `example_06_journal_inspector dump DIR --json`.
  if (argc > 1) return make_inspector().run(argc, argv);

  // 4. Without one, a demo: a journal with a few events, then the inspector's own dump.
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("agentbus_example_06_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  {
    agentbus::basic_bus<agentbus::storage::journal> bus(agentbus::journal_options{.directory = dir});
    (void)bus.publish("shop.reviews", shop::review_posted{"Ada Lovelace", "the engine runs", 5}, {.source = "web"});
    (void)bus.publish("shop.reviews", shop::review_posted{"Grace Hopper", "found a moth", 4}, {.source = "web"});
    (void)bus.publish("shop.parcels", shop::parcel_weighed{1, 1250}, {.source = "warehouse"});
  }
  std::printf("journal: %s (deleted at exit)\n", dir.string().c_str());

  // run() writes where set_output says: here into a buffer (POSIX open_memstream), so that the
  // demo can check what it shows; a real inspector leaves stdout and stderr.
  char* text = nullptr;
  std::size_t size = 0;
  std::FILE* out = ::open_memstream(&text, &size);
  if (out == nullptr) return 1;
  auto inspector = make_inspector();
  inspector.set_output(out, stderr);
  const std::string path = dir.string();
  const int dumped = inspector.run({"dump", path, "--preview", "0"});
  const int verified = inspector.run({"verify", path});
  std::fclose(out);
  const std::string shown(text, size);
  std::free(text);
  std::filesystem::remove_all(dir);
  std::fwrite(shown.data(), 1, shown.size(), stdout);

  // 5. What the demo promises: the reviews decoded, the parcel as bytes, a clean journal.
  const bool decoded = shown.find("Ada Lovelace gave 5/5: the engine runs") != std::string::npos &&
                       shown.find("Grace Hopper gave 4/5: found a moth") != std::string::npos;
  const bool parcel_as_bytes = shown.find("shop.parcel_weighed@1  8 B  warehouse  01000000e2040000") != std::string::npos;
  std::printf("reviews decoded: %s; parcel shown as bytes: %s; dump exit %d, verify exit %d\n", decoded ? "yes" : "NO",
              parcel_as_bytes ? "yes" : "NO", dumped, verified);
  return decoded && parcel_as_bytes && dumped == 0 && verified == 0 ? 0 : 1;
}
