// The usual helper for std::visit with one lambda per alternative. Standard library only.
#pragma once

namespace slotd {

template <class... Ts>
struct overloaded : Ts... {
  using Ts::operator()...;
};
// Clang 14 does not deduce aggregate template arguments (P1816) by itself.
template <class... Ts>
overloaded(Ts...) -> overloaded<Ts...>;

}  // namespace slotd
