// The usual helper for std::visit with one lambda per alternative. Standard library only.
#pragma once

namespace slotd {

template <class... Ts>
struct overloaded : Ts... {
  using Ts::operator()...;
};

}  // namespace slotd
