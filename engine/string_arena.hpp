// engine/string_arena.hpp — append-only storage for short immutable strings (patient
// names), so a booking holds an 8-byte reference instead of a heap-allocated string.
//
// Strings live in 2 MiB chunks (from the installed ChunkSource) that never move and are never freed while the arena lives;
// like ChunkedVector, the chunk directory is reserved in full with the first chunk, so another thread may read a
// string it learned about through a release/acquire pair. Standard library only.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/chunk_memory.hpp"

namespace slotd {

// Where a string is: chunk, offset and length packed in 64 bits (length < 64 KiB).
struct StrRef {
  std::uint64_t bits = 0;
  std::uint32_t chunk() const { return static_cast<std::uint32_t>(bits >> 40); }
  std::uint32_t offset() const { return static_cast<std::uint32_t>(bits >> 16) & 0xFFFFFF; }
  std::uint32_t length() const { return static_cast<std::uint32_t>(bits & 0xFFFF); }
};

class StringArena {
 public:
  static constexpr std::size_t kMaxLength = 0xFFFF;
  static constexpr std::size_t kChunkBytes = std::max(kChunkTargetBytes, kMaxLength + 1);  // a string fits
  static constexpr std::size_t kMaxChunks = std::size_t{1} << 16;
  static_assert(kChunkBytes <= (std::size_t{1} << 24), "offsets are 24 bits");

  StringArena() : source_(&current_chunk_source()) {}
  ~StringArena() { release(); }
  StringArena(StringArena&& other) noexcept
      : source_(other.source_), chunks_(std::move(other.chunks_)), used_(std::exchange(other.used_, 0)) {}
  StringArena& operator=(StringArena&& other) noexcept {
    if (this != &other) {
      release();
      source_ = other.source_;
      chunks_ = std::move(other.chunks_);
      used_ = std::exchange(other.used_, 0);
    }
    return *this;
  }
  StringArena(const StringArena& other) : StringArena() {
    if (!other.chunks_.empty()) chunks_.reserve(kMaxChunks);
    for (std::size_t i = 0; i < other.chunks_.size(); ++i) {
      const std::size_t used = i + 1 == other.chunks_.size() ? other.used_ : kChunkBytes;
      chunks_.push_back(static_cast<char*>(source_->allocate(kChunkBytes)));
      std::memcpy(chunks_.back(), other.chunks_[i], used);
    }
    used_ = other.used_;
  }
  StringArena& operator=(const StringArena& other) {
    if (this != &other) {
      StringArena copy(other);
      *this = std::move(copy);
    }
    return *this;
  }

  StrRef add(std::string_view s) {
    assert(s.size() <= kMaxLength);
    if (chunks_.empty() || used_ + s.size() > kChunkBytes) {
      assert(chunks_.size() < kMaxChunks);
      if (chunks_.capacity() == 0) chunks_.reserve(kMaxChunks);
      // not zeroed: only written bytes are read
      chunks_.push_back(static_cast<char*>(source_->allocate(kChunkBytes)));
      used_ = 0;
    }
    const std::uint64_t chunk = chunks_.size() - 1;
    std::memcpy(chunks_.back() + used_, s.data(), s.size());
    StrRef ref{chunk << 40 | std::uint64_t{used_} << 16 | s.size()};
    used_ += s.size();
    return ref;
  }

  std::string_view view(StrRef ref) const {
    if (ref.length() == 0) return {};
    return {chunks_[ref.chunk()] + ref.offset(), ref.length()};
  }

  std::size_t memory_bytes() const { return chunks_.size() * kChunkBytes; }

 private:
  void release() {
    for (char* chunk : chunks_) source_->release(chunk, kChunkBytes);
    chunks_.clear();
    used_ = 0;
  }

  const ChunkSource* source_;  // the chunks are released where they came from
  std::vector<char*> chunks_;
  std::size_t used_ = 0;  // bytes used in the last chunk
};

}  // namespace slotd
