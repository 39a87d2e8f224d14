// api/feed_stream — the layer under a GET /ws connection's Beast websocket stream that
// puts many feed messages into one socket write.
//
// Beast writes one frame per async_write_some, and before this layer the feed wrote one
// message per event: with N subscribers that was N system calls per event. Here every
// write, Beast's own (the 101 answer, pong, ping, close) and the feed's messages, is
// appended in order to one buffer and sent with one async_write while the next buffer
// fills. Beast's writes complete at once (posted, never inline); their bytes are in the
// buffer by then, so nothing can come between the bytes of one frame.
//
// The feed's messages do not go through Beast's writer: append_text_frame() frames them
// here. A server's frames are not masked and slotd negotiates no extension, so a frame is
// a 2-to-10-byte header and the payload (RFC 6455, section 5.2).
//
// Included only by api/server.cpp, the one translation unit that includes Beast.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/teardown.hpp>

namespace slotd {

class FeedStream {
 public:
  using next_layer_type = boost::beast::tcp_stream;
  using executor_type = next_layer_type::executor_type;

  explicit FeedStream(boost::asio::ip::tcp::socket&& socket)
      : next_(std::move(socket)), drained_timer_(next_.get_executor()) {
    drained_timer_.expires_at(boost::asio::steady_timer::time_point::max());
  }

  executor_type get_executor() { return next_.get_executor(); }
  next_layer_type& next_layer() { return next_; }

  // The owner is kept alive while a buffer is in the socket; on_drained runs (on the
  // connection's thread) each time the buffer went out, or the socket failed.
  void attach(std::weak_ptr<void> owner, std::function<void()> on_drained) {
    owner_ = std::move(owner);
    on_drained_ = std::move(on_drained);
  }

  template <class MutableBufferSequence, class ReadHandler>
  auto async_read_some(const MutableBufferSequence& buffers, ReadHandler&& handler) {
    return next_.async_read_some(buffers, std::forward<ReadHandler>(handler));
  }

  // Beast's writes: copied into the buffer, completed through a post.
  template <class ConstBufferSequence, class WriteHandler>
  auto async_write_some(const ConstBufferSequence& buffers, WriteHandler&& handler) {
    return boost::asio::async_initiate<WriteHandler, void(boost::beast::error_code, std::size_t)>(
        [this](auto&& complete, const ConstBufferSequence& b) {
          std::size_t n = 0;
          if (!error_) {
            for (auto it = boost::asio::buffer_sequence_begin(b); it != boost::asio::buffer_sequence_end(b);
                 ++it) {
              const boost::asio::const_buffer piece(*it);
              pending_.append(static_cast<const char*>(piece.data()), piece.size());
              n += piece.size();
            }
          }
          boost::asio::post(next_.get_executor(),
                            boost::beast::bind_front_handler(std::move(complete), error_, n));
          flush();
        },
        handler, buffers);
  }

  // One text message, or one fragment of it: the first fragment is a text frame, the
  // others continuation frames; fin marks the message's last.
  void append_text_frame(std::string_view payload, bool first, bool fin) {
    char header[10];
    std::size_t size = 2;
    header[0] = static_cast<char>((fin ? 0x80 : 0x00) | (first ? 0x1 : 0x0));
    const std::uint64_t length = payload.size();
    if (length < 126) {
      header[1] = static_cast<char>(length);
    } else if (length <= 0xFFFF) {
      header[1] = 126;
      header[2] = static_cast<char>(length >> 8);
      header[3] = static_cast<char>(length);
      size = 4;
    } else {
      header[1] = 127;
      for (int i = 0; i < 8; ++i) header[2 + i] = static_cast<char>(length >> (56 - 8 * i));
      size = 10;
    }
    pending_.append(header, size);
    pending_.append(payload);
  }

  // Sends what is buffered, unless a write is in the socket (then when it is done).
  void flush() {
    if (writing_ || pending_.empty() || error_) return;
    writing_ = true;
    in_socket_.swap(pending_);
    pending_.clear();
    boost::asio::async_write(
        next_, boost::asio::buffer(in_socket_),
        [this, keep = owner_.lock()](boost::beast::error_code ec, std::size_t) {
          writing_ = false;
          // A burst's large buffer is not kept for a quiet connection's whole life.
          if (in_socket_.capacity() > kKeptCapacity) {
            std::string().swap(in_socket_);
          } else {
            in_socket_.clear();
          }
          if (ec) error_ = ec;
          if (on_drained_) on_drained_();  // may append the next messages
          flush();
          if (!busy()) drained_timer_.cancel();
        });
  }

  // A write is in the socket (further appends wait for it).
  bool writing() const { return writing_; }
  // Bytes here that the socket has not taken yet.
  std::size_t buffered() const { return pending_.size() + in_socket_.size(); }
  bool failed() const { return static_cast<bool>(error_); }
  bool busy() const { return !error_ && (writing_ || !pending_.empty()); }

  // Waits until the buffer is out (or the socket failed) before Beast tears the
  // connection down: the close frame must not be cut off.
  template <class Handler>
  friend void async_teardown(boost::beast::role_type role, FeedStream& stream, Handler&& handler) {
    boost::asio::async_compose<Handler, void(boost::beast::error_code)>(TeardownOp{stream, role}, handler,
                                                                        stream);
  }
  friend void teardown(boost::beast::role_type role, FeedStream& stream, boost::beast::error_code& ec) {
    using boost::beast::websocket::teardown;
    teardown(role, stream.next_layer(), ec);
  }

 private:
  static constexpr std::size_t kKeptCapacity = 16 << 10;

  struct TeardownOp {
    FeedStream& stream;
    boost::beast::role_type role;
    bool torn_down = false;

    template <class Self>
    void operator()(Self& self, boost::beast::error_code ec = {}) {
      if (torn_down) return self.complete(ec);
      if (stream.busy()) return stream.drained_timer_.async_wait(std::move(self));
      torn_down = true;
      using boost::beast::websocket::async_teardown;
      async_teardown(role, stream.next_layer(), std::move(self));
    }
  };

  next_layer_type next_;
  boost::asio::steady_timer drained_timer_;  // cancelled whenever the buffer drained
  std::weak_ptr<void> owner_;
  std::function<void()> on_drained_;
  std::string pending_;    // appended to
  std::string in_socket_;  // being written
  bool writing_ = false;
  boost::beast::error_code error_;
};

}  // namespace slotd
