// engine/chunked_vector.hpp — an append-only array stored in fixed-size chunks.
//
// Elements never move: growth allocates one more chunk and never copies (no pause that
// grows with the state), and a reference to element i stays valid for the life of the
// array. The chunk directory is reserved in full when the first chunk is added (an empty
// array allocates nothing) and never reallocated after that, so another thread
// may read element i while the owner appends, provided it learned that i exists through a
// release/acquire pair (the read side of the sequencer relies on this for fields that
// never change after creation). By default a chunk holds at least 2 MiB, so it can be
// backed by huge pages (engine/chunk_memory.hpp). Standard library only.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/chunk_memory.hpp"

namespace slotd {

// The fewest elements per chunk (a power of two) that fill kChunkTargetBytes.
template <class T>
constexpr std::size_t big_chunk_bits() {
  std::size_t bits = 0;
  while ((std::size_t{1} << bits) * sizeof(T) < kChunkTargetBytes) ++bits;
  return bits;
}

template <class T, std::size_t kChunkBits = big_chunk_bits<T>()>
class ChunkedVector {
 public:
  using value_type = T;
  static constexpr std::size_t kChunkSize = std::size_t{1} << kChunkBits;
  static constexpr std::size_t kChunkBytes = kChunkSize * sizeof(T);
  // 2^(bits + 16) elements, but never more than 2^28 (ids are 32-bit, with room to spare).
  static constexpr std::size_t kMaxSize = std::min(std::size_t{1} << (kChunkBits + 16), std::size_t{1} << 28);
  static constexpr std::size_t kMaxChunks = kMaxSize / kChunkSize;
  static_assert(alignof(T) <= kChunkAlignment);

  ChunkedVector() : source_(&current_chunk_source()) {}
  ~ChunkedVector() { destroy(); }
  ChunkedVector(ChunkedVector&& other) noexcept
      : source_(other.source_), chunks_(std::move(other.chunks_)), size_(std::exchange(other.size_, 0)) {}
  ChunkedVector& operator=(ChunkedVector&& other) noexcept {
    if (this != &other) {
      destroy();
      source_ = other.source_;
      chunks_ = std::move(other.chunks_);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ChunkedVector(const ChunkedVector& other) : ChunkedVector() {
    for (std::size_t i = 0; i < other.size(); ++i) push_back(other[i]);
  }
  ChunkedVector& operator=(const ChunkedVector& other) {
    if (this != &other) {
      ChunkedVector copy(other);
      *this = std::move(copy);
    }
    return *this;
  }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  T& operator[](std::size_t i) { return chunks_[i >> kChunkBits][i & (kChunkSize - 1)]; }
  const T& operator[](std::size_t i) const { return chunks_[i >> kChunkBits][i & (kChunkSize - 1)]; }
  T& back() { return (*this)[size_ - 1]; }

  // Default-constructs the next element in place and returns it. A chunk's memory is
  // raw until its elements are constructed, one by one: nothing is written twice.
  T& emplace_back() {
    assert(size_ < kMaxSize);
    if ((size_ & (kChunkSize - 1)) == 0) {
      if (chunks_.capacity() == 0) chunks_.reserve(kMaxChunks);
      chunks_.push_back(static_cast<T*>(source_->allocate(kChunkBytes)));
    }
    T* slot = &chunks_[size_ >> kChunkBits][size_ & (kChunkSize - 1)];
    ::new (static_cast<void*>(slot)) T();
    ++size_;
    return *slot;
  }
  void push_back(const T& value) { emplace_back() = value; }

  // Bytes held by the chunks (allocated, whether used or not) and the directory.
  std::size_t memory_bytes() const {
    return chunks_.size() * kChunkBytes + chunks_.capacity() * sizeof(chunks_[0]);
  }

  template <class Self, class Ref>
  class Iterator {
   public:
    Iterator(Self* v, std::size_t i) : v_(v), i_(i) {}
    Ref operator*() const { return (*v_)[i_]; }
    Iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator==(const Iterator& o) const { return i_ == o.i_; }

   private:
    Self* v_;
    std::size_t i_;
  };
  auto begin() const { return Iterator<const ChunkedVector, const T&>(this, 0); }
  auto end() const { return Iterator<const ChunkedVector, const T&>(this, size_); }

 private:
  void destroy() {
    if constexpr (!std::is_trivially_destructible_v<T>) {
      for (std::size_t i = 0; i < size_; ++i) (*this)[i].~T();
    }
    size_ = 0;
    for (T* chunk : chunks_) source_->release(chunk, kChunkBytes);
    chunks_.clear();
  }

  const ChunkSource* source_;  // the chunks are released where they came from
  std::vector<T*> chunks_;
  std::size_t size_ = 0;
};

}  // namespace slotd
