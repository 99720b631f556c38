// Random bytes for identifiers: connection ids and the secret connection keys used for resume.
//
// SecureRandom reads the kernel CSPRNG (getrandom) and is thread-safe. SeededRandom is a
// deterministic generator for tests and simulations; it is not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>

namespace presenced {

class RandomSource {
 public:
  virtual ~RandomSource() = default;
  virtual void Fill(std::span<uint8_t> out) = 0;
};

class SecureRandom final : public RandomSource {
 public:
  void Fill(std::span<uint8_t> out) override;
};

class SeededRandom final : public RandomSource {
 public:
  explicit SeededRandom(uint64_t seed) : engine_(seed) {}
  void Fill(std::span<uint8_t> out) override;

 private:
  std::mt19937_64 engine_;
};

// `bytes` random bytes as lowercase hex (2 * bytes characters).
std::string RandomHex(RandomSource& random, size_t bytes);

// A short random identifier of `length` characters from [A-Za-z0-9], safe in URLs and JSON.
std::string RandomId(RandomSource& random, size_t length);

}  // namespace presenced
