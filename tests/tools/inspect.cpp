// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
// journal_inspector (agentbus/journal/inspect.hpp), the library behind agentbus-journal: its
// printer registry (register_printer<T> with the storage codecs, add_printer over raw records;
// what is shown when a payload cannot be decoded, and why) and its commands through run()
// (output streams, the program's name, exit statuses, tail -f stopped by request_stop). The
// command-line behaviour itself is tested on the installed tool by journal_tool_test.sh.
#include <agentbus/agentbus.hpp>
#include <agentbus/journal/inspect.hpp>
#include <agentbus/storage/codec.hpp>
#include <agentbus/storage/journal.hpp>

#include <catch2/catch.hpp>

#include "support/journal_dir.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace inspect_test {

// An event type with a std::string member, stored through the ADL codec hooks.
struct order {
  static constexpr std::string_view event_name = "test.inspect.order";
  static constexpr std::uint32_t event_version = 1;
  std::string customer;
  std::int32_t quantity = 0;
};
void agentbus_encode(agentbus::byte_writer& out, const order& o) {
  agentbus::encode(out, o.customer);
  agentbus::encode(out, o.quantity);
}
order agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<order>) {
  order o;
  o.customer = agentbus::codec<std::string>::decode(in);
  o.quantity = agentbus::codec<std::int32_t>::decode(in);
  return o;
}

// A type with no printer registered.
struct reading {
  static constexpr std::string_view event_name = "test.inspect.reading";
  static constexpr bool agentbus_bitwise_codec = true;
  std::uint32_t sensor = 0;
  std::uint32_t value = 0;
};

}  // namespace inspect_test

namespace {

using agentbus::journal_inspector;
using inspect_test::order;
using inspect_test::reading;
using temp_dir = agentbus::test::journal_dir;

// What run() wrote to its output and error streams (POSIX open_memstream).
struct captured {
  std::string out, err;
  int status = -1;
};

class capture {
 public:
  capture() : out_(::open_memstream(&out_buf_, &out_size_)), err_(::open_memstream(&err_buf_, &err_size_)) {
    REQUIRE(out_ != nullptr);
    REQUIRE(err_ != nullptr);
  }
  capture(const capture&) = delete;
  capture& operator=(const capture&) = delete;
  ~capture() {
    std::fclose(out_);
    std::fclose(err_);
    std::free(out_buf_);
    std::free(err_buf_);
  }
  std::FILE* out() const { return out_; }
  std::FILE* err() const { return err_; }
  captured result(int status) {
    std::fflush(out_);
    std::fflush(err_);
    return {std::string(out_buf_, out_size_), std::string(err_buf_, err_size_), status};
  }

 private:
  char* out_buf_ = nullptr;
  char* err_buf_ = nullptr;
  std::size_t out_size_ = 0, err_size_ = 0;
  std::FILE* out_;
  std::FILE* err_;
};

captured run(journal_inspector& inspector, std::vector<std::string_view> args) {
  capture c;
  inspector.set_output(c.out(), c.err());
  const int status = inspector.run(std::span<const std::string_view>(args));
  auto r = c.result(status);
  inspector.set_output(stdout, stderr);
  return r;
}

journal_inspector order_inspector() {
  journal_inspector inspector("shop-inspect");
  inspector.register_printer<order>(
      [](const order& o) { return "customer=" + o.customer + " quantity=" + std::to_string(o.quantity); });
  return inspector;
}

// Writes two orders and a reading through the bus (storage::journal): offsets 0, 1, 2.
void write_bus_records(const std::filesystem::path& dir) {
  agentbus::basic_bus<agentbus::storage::journal> bus(agentbus::journal_options{.directory = dir});
  (void)bus.publish("shop.orders", order{"Ada \"the first\" Lovelace", 3});
  (void)bus.publish("shop.orders", order{"Grace", 1});
  (void)bus.publish("shop.sensors", reading{7, 0x01020304});
}

// Appends a raw record (no bus) with the given schema identity and payload; returns its offset.
std::uint64_t append_raw(const std::filesystem::path& dir, std::string_view schema, std::uint32_t version,
                         std::uint64_t fingerprint, std::span<const std::byte> payload) {
  agentbus::journal j(agentbus::journal_options{.directory = dir});
  return j.append({.topic = "shop.raw", .schema = schema, .schema_version = version, .fingerprint = fingerprint,
                   .published_ns = 1, .payload = payload});
}

std::vector<std::byte> encoded(const order& o) {
  agentbus::byte_writer w;
  agentbus::encode(w, o);
  return {w.bytes().begin(), w.bytes().end()};
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  for (std::size_t from = 0; from < text.size();) {
    const std::size_t nl = text.find('\n', from);
    lines.push_back(text.substr(from, nl - from));
    from = nl == std::string::npos ? text.size() : nl + 1;
  }
  return lines;
}

}  // namespace

TEST_CASE("journal_inspector shows payloads of registered types decoded with their codecs", "[tools][inspect]") {
  temp_dir dir("inspect");
  write_bus_records(dir.path);
  auto inspector = order_inspector();
  CHECK(inspector.has_printer("test.inspect.order", 1));
  CHECK_FALSE(inspector.has_printer("test.inspect.order", 2));
  CHECK_FALSE(inspector.has_printer("test.inspect.reading", 1));
  const std::string path = dir.path.string();

  SECTION("dump: the printer's text, escaped for one line; other types as bytes") {
    const auto r = run(inspector, {"dump", path});
    CHECK(r.status == 0);
    CHECK(r.err.empty());
    const auto lines = lines_of(r.out);
    REQUIRE(lines.size() == 3);
    CHECK(lines[0].ends_with("test.inspect.order@1  32 B  -  customer=Ada \"the first\" Lovelace quantity=3"));
    CHECK(lines[1].ends_with("customer=Grace quantity=1"));
    CHECK(lines[2].ends_with("test.inspect.reading@1  8 B  -  0700000004030201"));  // hex, as agentbus-journal shows it
  }
  SECTION("--json: payload_encoding decoded, the text as a JSON string") {
    const auto r = run(inspector, {"dump", path, "--json", "--limit", "1"});
    CHECK(r.status == 0);
    CHECK(r.out.find(R"("size":32,"payload_encoding":"decoded","payload":"customer=Ada \"the first\" Lovelace quantity=3"})") !=
          std::string::npos);
  }
  SECTION("--payload hex and --preview: the bytes, or a shorter text") {
    auto r = run(inspector, {"dump", path, "--payload", "hex", "--limit", "1", "--preview", "4"});
    CHECK(r.out.ends_with("  18000000...\n"));  // the u32 length of the customer's name first
    r = run(inspector, {"dump", path, "--limit", "1", "--preview", "8"});
    CHECK(r.out.ends_with("  customer...\n"));
  }
  SECTION("tail shows the same") {
    const auto r = run(inspector, {"tail", path, "-n", "2", "--topic", "shop.orders"});
    REQUIRE(lines_of(r.out).size() == 2);
    CHECK(lines_of(r.out)[1].ends_with("customer=Grace quantity=1"));
  }
  SECTION("payload_text") {
    auto reader = agentbus::open_journal_reader(dir.path, 0);
    agentbus::record rec;
    REQUIRE(reader.next(rec) == agentbus::read_status::ok);
    CHECK(inspector.payload_text(rec) == "customer=Ada \"the first\" Lovelace quantity=3");
    REQUIRE(reader.next(rec) == agentbus::read_status::ok);
    REQUIRE(reader.next(rec) == agentbus::read_status::ok);
    CHECK_FALSE(inspector.payload_text(rec).has_value());  // a reading: no printer
  }
  SECTION("the stock inspector (no printers) shows the same records as bytes") {
    journal_inspector stock;
    const auto r = run(stock, {"dump", path});
    CHECK(r.status == 0);
    CHECK(lines_of(r.out)[1].ends_with("  05000000477261636501000000"));
  }
}

TEST_CASE("journal_inspector shows a payload it cannot decode as bytes, with the reason", "[tools][inspect]") {
  temp_dir dir("inspect");
  const auto good = encoded(order{"Ada", 2});
  const std::uint64_t fingerprint = agentbus::codec<order>::fingerprint();
  const auto path = dir.path.string();
  auto inspector = order_inspector();
  agentbus::record rec;
  std::string reason;

  struct bad_case {
    const char* name;
    std::uint32_t version;
    std::uint64_t fingerprint;
    std::vector<std::byte> payload;
    const char* reason;
  };
  std::vector<std::byte> cut(good.begin(), good.begin() + 5);
  std::vector<std::byte> longer = good;
  longer.push_back(std::byte{9});
  const bad_case c = GENERATE_COPY(
      bad_case{"another version", 2, fingerprint, good, "no printer for version 2 of 'test.inspect.order' (versions 1)"},
      bad_case{"another layout", 1, fingerprint ^ 1,
               good, "the codec fingerprint differs from this program's type at the same schema version"},
      bad_case{"bytes the codec rejects", 1, fingerprint, cut, "string length exceeds the payload"},
      bad_case{"bytes left over", 1, 0, longer, "1 bytes left over after decoding"});
  INFO(c.name);
  append_raw(dir.path, "test.inspect.order", c.version, c.fingerprint, c.payload);

  auto r = run(inspector, {"dump", path, "--payload", "auto"});
  CHECK(r.status == 0);  // not damage: the record is intact, this program cannot read it
  CHECK(r.out.find("  (not decoded: ") != std::string::npos);
  CHECK(r.out.find(c.reason) != std::string::npos);
  r = run(inspector, {"dump", path, "--json"});
  CHECK(r.out.find(R"("payload_encoding":"hex","payload":")") != std::string::npos);
  CHECK(r.out.find(R"("decode_error":")") != std::string::npos);

  auto reader = agentbus::open_journal_reader(dir.path, 0);
  REQUIRE(reader.next(rec) == agentbus::read_status::ok);
  CHECK_THROWS_WITH(inspector.payload_text(rec), Catch::Contains(c.reason));
}

TEST_CASE("journal_inspector shows a payload as bytes when its printer throws a non-standard exception",
          "[tools][inspect]") {
  // Only std::exception was caught: a printer (or the codec under it) throwing 42 ended the dump.
  temp_dir dir("inspect");
  const std::string text = "plain bytes";
  append_raw(dir.path, "raw.kind", 3, 0, std::as_bytes(std::span(text)));
  journal_inspector inspector;
  inspector.add_printer("raw.kind", 3, [](const agentbus::record&) -> std::string { throw 42; });  // NOLINT
  const auto r = run(inspector, {"dump", dir.path.string()});
  CHECK(r.status == 0);
  CHECK(r.out.find("  (not decoded: ") != std::string::npos);
  CHECK(r.out.find("not a std::exception") != std::string::npos);
}

TEST_CASE("journal_inspector add_printer decodes raw records by schema and version", "[tools][inspect]") {
  temp_dir dir("inspect");
  const std::string text = "plain bytes";
  append_raw(dir.path, "raw.kind", 3, 0, std::as_bytes(std::span(text)));
  append_raw(dir.path, "raw.kind", 4, 0, std::as_bytes(std::span(text)));
  journal_inspector inspector;
  inspector.add_printer("raw.kind", 3, [](const agentbus::record& r) {
    return std::to_string(r.payload.size()) + " bytes on " + std::string(r.topic);
  });
  inspector.add_printer("raw.kind", 3, [](const agentbus::record& r) {  // replaces the first
    return std::string(r.topic) + ": " + std::to_string(r.payload.size()) + " bytes";
  });
  const auto r = run(inspector, {"dump", dir.path.string()});
  const auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].ends_with("raw.kind@3  11 B  -  shop.raw: 11 bytes"));
  CHECK(lines[1].ends_with("raw.kind@4  11 B  -  \"plain bytes\"  (not decoded: no printer for version 4 of 'raw.kind' (versions 3))"));
}

TEST_CASE("journal_inspector runs agentbus-journal's commands under its own name", "[tools][inspect]") {
  temp_dir dir("inspect");
  write_bus_records(dir.path);
  auto inspector = order_inspector();
  const std::string path = dir.path.string();

  SECTION("stats: records, topics, files and their disk use") {
    const auto r = run(inspector, {"stats", path});
    CHECK(r.status == 0);
    CHECK(r.out.find("records      3\n") != std::string::npos);
    CHECK(r.out.find(" of files, ") != std::string::npos);
    CHECK(r.out.find(" on disk)\n") != std::string::npos);
    CHECK(r.out.find("  2  shop.orders\n") != std::string::npos);
    const auto j = run(inspector, {"stats", path, "--json"});
    CHECK(j.out.find("\"records\":3,") != std::string::npos);
    CHECK(j.out.find("\"disk_bytes\":") != std::string::npos);
  }
  SECTION("verify") {
    const auto r = run(inspector, {"verify", path});
    CHECK(r.status == 0);
    CHECK(r.out.ends_with("result       OK\n"));
  }
  SECTION("usage errors name the program; --help is the usage under its name") {
    auto r = run(inspector, {"dump"});
    CHECK(r.status == 2);
    CHECK(r.err == "shop-inspect: 'dump' needs the journal directory\n(see 'shop-inspect --help')\n");
    r = run(inspector, {"frobnicate", path});
    CHECK(r.status == 2);
    r = run(inspector, {"--help"});
    CHECK(r.status == 0);
    CHECK(r.out == inspector.usage());
    CHECK(r.out.find("  shop-inspect dump DIR [--from OFFSET]") != std::string::npos);
    CHECK(r.out.find("agentbus-journal") == std::string::npos);
  }
  SECTION("no journal there: status 1 and why") {
    const auto r = run(inspector, {"stats", (dir.path / "missing").string()});
    CHECK(r.status == 1);
    CHECK(r.err.starts_with("shop-inspect: '"));
  }
  SECTION("run(argc, argv) takes its name from argv[0] when it was given none") {
    journal_inspector unnamed;
    capture c;
    unnamed.set_output(c.out(), c.err());
    std::string prog = "/usr/local/bin/my-inspector", cmd = "dump";
    char* argv[] = {prog.data(), cmd.data(), nullptr};
    const auto r = c.result(unnamed.run(2, argv));
    CHECK(r.status == 2);
    CHECK(r.err.starts_with("my-inspector: 'dump' needs the journal directory"));
  }
}

TEST_CASE("journal_inspector tail -f follows a writer until request_stop", "[tools][inspect][concurrency]") {
  temp_dir dir("inspect");
  auto inspector = order_inspector();
  agentbus::basic_bus<agentbus::storage::journal> bus(agentbus::journal_options{.directory = dir.path});
  (void)bus.publish("shop.orders", order{"first", 1});
  // The output goes to a file that this thread reads through a stream of its own.
  const auto out_path = dir.path.parent_path() / (dir.path.filename().string() + ".out");
  std::FILE* out = std::fopen(out_path.c_str(), "w");
  REQUIRE(out != nullptr);
  inspector.set_output(out, stderr);
  auto shown = [&] {
    std::ifstream in(out_path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  auto wait_for = [&](std::string_view text) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (shown().find(text) == std::string::npos && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return shown().find(text) != std::string::npos;
  };
  std::atomic<bool> done{false};
  int status = -1;
  std::thread tail([&] {
    status = inspector.run({"tail", dir.path.string(), "-f", "--poll-ms", "5"});
    done = true;
  });
  CHECK(wait_for("customer=first"));
  (void)bus.publish("shop.orders", order{"second", 2});  // appended while tail -f follows
  CHECK(wait_for("customer=second"));
  CHECK_FALSE(done.load());
  while (!done.load()) {  // until the tail has seen it (it clears the flag when it starts)
    journal_inspector::request_stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  tail.join();
  std::fclose(out);
  const std::string text = shown();
  std::filesystem::remove(out_path);
  CHECK(status == 0);
  const auto lines = lines_of(text);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].ends_with("customer=first quantity=1"));
  CHECK(lines[1].ends_with("customer=second quantity=2"));
}
