#include "api/http_message.hpp"

namespace slotd {
namespace {

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

}  // namespace

std::string_view framing_error(const RequestFraming& f) {
  if (f.transfer_encoding_fields > 1) return "more than one Transfer-Encoding header";
  if (f.transfer_encoding_fields == 1 && f.version < 11) return "Transfer-Encoding in an HTTP/1.0 request";
  if (f.transfer_encoding_fields == 1) {
    std::string_view te = f.transfer_encoding;
    while (!te.empty() && (te.back() == ' ' || te.back() == '\t')) te.remove_suffix(1);
    while (!te.empty() && (te.front() == ' ' || te.front() == '\t')) te.remove_prefix(1);
    if (!equals_ignoring_case(te, "chunked")) return "Transfer-Encoding other than chunked";
    if (f.content_length_fields > 0) return "both Transfer-Encoding and Content-Length";
  }
  if (f.content_length_fields > 1) return "more than one Content-Length header";
  if (f.content_length_fields == 1 &&
      (f.content_length.empty() || f.content_length.find_first_not_of("0123456789") != std::string_view::npos)) {
    return "Content-Length must be one decimal number";
  }
  if (f.version >= 11 && f.host_fields != 1) {
    return "an HTTP/1.1 request needs exactly one Host header";
  }
  return {};
}

}  // namespace slotd
