// api/auth's random tokens: drawn from a per-thread pool of kernel randomness, never the
// same twice, and never repeated by a forked child.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <thread>
#include <vector>

#include "api/auth.hpp"

using namespace slotd;

TEST_CASE("random tokens over many pool refills and from two threads are all different") {
  // 16-byte tokens, 4 KiB pools: 20,000 tokens per thread refill each pool 78 times.
  std::vector<Token> a, b;
  std::thread other([&] {
    for (int i = 0; i < 20'000; ++i) b.push_back(random_token());
  });
  for (int i = 0; i < 20'000; ++i) a.push_back(random_token());
  other.join();
  std::set<Token> all(a.begin(), a.end());
  all.insert(b.begin(), b.end());
  CHECK(all.size() == a.size() + b.size());
  CHECK(all.count(Token{}) == 0);  // a wiped (zero) pool byte run is never handed out
}

TEST_CASE("a forked child does not draw the token its parent draws next") {
  (void)random_token();  // the parent's pool is now filled: the child inherits a copy
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const Token token = random_token();
    const bool written = write(fds[1], token.data(), token.size()) == static_cast<ssize_t>(token.size());
    _exit(written ? 0 : 1);
  }
  close(fds[1]);
  Token from_child{};
  const ssize_t got = read(fds[0], from_child.data(), from_child.size());
  close(fds[0]);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(got == static_cast<ssize_t>(from_child.size()));
  CHECK(random_token() != from_child);
}
