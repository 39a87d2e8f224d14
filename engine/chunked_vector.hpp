// engine/chunked_vector.hpp — an append-only array stored in fixed-size chunks.
//
// Elements never move: growth allocates one more chunk and never copies (no pause that
// grows with the state), and a reference to element i stays valid for the life of the
// array. The chunk directory is reserved once and never reallocated, so another thread
// may read element i while the owner appends, provided it learned that i exists through a
// release/acquire pair (the read side of the sequencer relies on this for fields that
// never change after creation). Standard library only.
#pragma once

#include <cassert>
#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace slotd {

template <class T, std::size_t kChunkBits = 12>
class ChunkedVector {
 public:
  using value_type = T;
  static constexpr std::size_t kChunkSize = std::size_t{1} << kChunkBits;
  static constexpr std::size_t kMaxChunks = std::size_t{1} << 16;
  static constexpr std::size_t kMaxSize = kChunkSize * kMaxChunks;

  ChunkedVector() { chunks_.reserve(kMaxChunks); }
  ~ChunkedVector() { destroy(); }
  ChunkedVector(ChunkedVector&& other) noexcept
      : chunks_(std::move(other.chunks_)), size_(std::exchange(other.size_, 0)) {}
  ChunkedVector& operator=(ChunkedVector&& other) noexcept {
    if (this != &other) {
      destroy();
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

  T& operator[](std::size_t i) { return chunks_[i >> kChunkBits].get()[i & (kChunkSize - 1)]; }
  const T& operator[](std::size_t i) const {
    return chunks_[i >> kChunkBits].get()[i & (kChunkSize - 1)];
  }
  T& back() { return (*this)[size_ - 1]; }

  // Default-constructs the next element in place and returns it. A chunk's memory is
  // raw until its elements are constructed, one by one: nothing is written twice.
  T& emplace_back() {
    assert(size_ < kMaxSize);
    if ((size_ & (kChunkSize - 1)) == 0) {
      chunks_.emplace_back(static_cast<T*>(::operator new(kChunkSize * sizeof(T), std::align_val_t{alignof(T)})));
    }
    T* slot = &chunks_[size_ >> kChunkBits].get()[size_ & (kChunkSize - 1)];
    ::new (static_cast<void*>(slot)) T();
    ++size_;
    return *slot;
  }
  void push_back(const T& value) { emplace_back() = value; }

  // Bytes held by the chunks (allocated, whether used or not) and the directory.
  std::size_t memory_bytes() const {
    return chunks_.size() * kChunkSize * sizeof(T) + chunks_.capacity() * sizeof(chunks_[0]);
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
  struct FreeChunk {
    void operator()(T* p) const { ::operator delete(p, std::align_val_t{alignof(T)}); }
  };
  void destroy() {
    if constexpr (!std::is_trivially_destructible_v<T>) {
      for (std::size_t i = 0; i < size_; ++i) (*this)[i].~T();
    }
    size_ = 0;
    chunks_.clear();
  }

  std::vector<std::unique_ptr<T, FreeChunk>> chunks_;
  std::size_t size_ = 0;
};

}  // namespace slotd
