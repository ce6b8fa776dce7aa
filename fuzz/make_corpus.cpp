// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
//
// Writes the seed corpus of fuzz/journal_fuzz.cpp (committed in fuzz/corpus/; run this again
// only when the input layout or the record format changes):
//
//   clang++ -std=c++20 -I include fuzz/make_corpus.cpp -o /tmp/make_corpus && /tmp/make_corpus fuzz/corpus
//
// Each seed is: flags byte, u16 index length, segment bytes, index bytes (see journal_fuzz.cpp).

#include <agentbus/journal/detail/file_header.hpp>
#include <agentbus/journal/detail/record_format.hpp>
#include <agentbus/journal/detail/segment.hpp>
#include <agentbus/journal/detail/segment_index.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace agentbus;
using namespace agentbus::detail;

struct image {
  std::vector<std::byte> seg;  // segment bytes after the 64-byte file header
  std::vector<std::uint64_t> positions;  // file positions of the frames
  std::vector<index_entry> entries;
};

image records(int n) {
  image im;
  const std::array<header, 2> hs{{{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, {"k", "v"}}};
  std::uint64_t pos = file_header_bytes;
  for (int i = 0; i < n; ++i) {
    std::vector<std::byte> payload(static_cast<std::size_t>(7 + i * 13), static_cast<std::byte>('a' + i));
    record_input in;
    in.topic = "tasks.planner.created";
    in.schema = "test.task";
    in.schema_version = 2;
    in.source = i % 2 ? "planner" : "";
    in.published_ns = 1'700'000'000'000'000'000 + i;
    in.event_id = static_cast<std::uint64_t>(i) + 1;
    in.headers = std::span(hs).first(static_cast<std::size_t>(i % 3));
    in.payload = payload;
    const std::uint64_t body = record_body_bytes(in);
    const std::uint64_t size = frame_bytes(body);
    std::vector<std::uint64_t> frame(size / 8);
    encode_record(reinterpret_cast<std::byte*>(frame.data()), in, static_cast<std::uint64_t>(i), body);
    const auto* b = reinterpret_cast<const std::byte*>(frame.data());
    im.seg.insert(im.seg.end(), b, b + size);
    im.positions.push_back(pos);
    if (i % 2 == 1) im.entries.push_back({static_cast<std::uint64_t>(i), pos, in.published_ns});
    pos += size;
  }
  return im;
}

std::vector<std::byte> index_bytes(const std::vector<index_entry>& entries) {
  std::vector<std::byte> out(entries.size() * index_entry_bytes);
  for (std::size_t i = 0; i < entries.size(); ++i) write_index_entry(out.data() + i * index_entry_bytes, entries[i]);
  return out;
}

void write_seed(const fs::path& dir, const std::string& name, std::uint8_t flags, const std::vector<std::byte>& seg,
                const std::vector<std::byte>& idx = {}) {
  std::vector<std::byte> out;
  out.push_back(static_cast<std::byte>(flags));
  out.push_back(static_cast<std::byte>(idx.size() & 0xFF));
  out.push_back(static_cast<std::byte>(idx.size() >> 8));
  out.insert(out.end(), seg.begin(), seg.end());
  out.insert(out.end(), idx.begin(), idx.end());
  std::ofstream f(dir / name, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus DIR\n");
    return 2;
  }
  const fs::path dir = argv[1];
  fs::create_directories(dir);
  const image im = records(6);

  write_seed(dir, "empty", 0, {});
  write_seed(dir, "valid_records", 0, im.seg);
  write_seed(dir, "valid_records_with_index", 2, im.seg, index_bytes(im.entries));
  write_seed(dir, "verify_and_outside_reader", 4 | 8, im.seg);
  {
    auto torn = im.seg;
    torn.resize(torn.size() - 20);
    write_seed(dir, "torn_last_record", 0, torn);
    write_seed(dir, "torn_last_record_with_index", 2 | 8, torn, index_bytes(im.entries));
  }
  {
    auto garbled = im.seg;
    garbled[static_cast<std::size_t>(im.positions[2] - file_header_bytes + 70)] ^= std::byte{0x20};
    write_seed(dir, "garbled_middle_record", 0, garbled);
    write_seed(dir, "garbled_middle_record_verify", 2 | 4, garbled, index_bytes(im.entries));
  }
  {
    auto hole = im.seg;
    for (int k = 0; k < 4; ++k) hole[static_cast<std::size_t>(im.positions[3] - file_header_bytes) + static_cast<std::size_t>(k)] = std::byte{0};
    write_seed(dir, "zeroed_length_word", 8, hole);
  }
  {
    auto sealed = im.seg;
    std::array<std::byte, 8> seal{};
    store_le<std::uint32_t>(seal.data(), seal_marker);
    sealed.insert(sealed.end(), seal.begin(), seal.end());
    const std::string junk = "junk after the seal";
    for (char c : junk) sealed.push_back(static_cast<std::byte>(c));
    write_seed(dir, "seal_then_garbage", 0, sealed);
  }
  {
    std::vector<std::byte> own(file_header_bytes);
    write_file_header(own.data(), {file_kind::segment, journal_format_version, 0, 0});
    own.insert(own.end(), im.seg.begin(), im.seg.end());
    std::vector<std::byte> idx(file_header_bytes);
    write_file_header(idx.data(), {file_kind::index, journal_format_version, 0, 4096});
    const auto entries = index_bytes(im.entries);
    idx.insert(idx.end(), entries.begin(), entries.end());
    write_seed(dir, "own_headers", 1 | 2, own, idx);
    std::vector<std::byte> newer(file_header_bytes);
    write_file_header(newer.data(), {file_kind::segment, journal_format_version + 1, 0, 0});
    newer.insert(newer.end(), im.seg.begin(), im.seg.end());
    write_seed(dir, "newer_format_version", 1, newer);
  }
  std::printf("seed corpus written to %s\n", dir.c_str());
  return 0;
}
