// api/errors — the one error shape of the API layer: an ApiError value ({status, code,
// message}) becomes {"error":{"code","message"}} with its status. Functions that may fail
// on client input return Result<T>; engine refusals (Rejection) map to ApiError here.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "api/http.hpp"
#include "engine/engine.hpp"

namespace slotd {

struct ApiError {
  unsigned status = 400;
  std::string code;
  std::string message;
  unsigned retry_after_s = 0;  // for 429/503: sent as Retry-After
  // For 421 wrong_node (api/partition.hpp): the base URL of the node that owns the id's
  // partition, sent as error.owner, and as Location (with the same target) on a GET.
  std::string owner;
};

// A value or the ApiError that explains why there is none.
template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(ApiError error) : v_(std::move(error)) {}
  explicit operator bool() const { return v_.index() == 0; }
  T& operator*() { return std::get<0>(v_); }
  const T& operator*() const { return std::get<0>(v_); }
  T* operator->() { return &std::get<0>(v_); }
  const ApiError& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, ApiError> v_;
};

HttpResponse error_response(const ApiError& error);
HttpResponse error_response(unsigned status, std::string_view code, std::string_view message);
ApiError rejection_error(Rejection r);
unsigned status_of(Rejection r);

ApiError bad_query(std::string_view message);
ApiError unauthorized();
ApiError forbidden_booking();

}  // namespace slotd
