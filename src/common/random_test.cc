#include "common/random.h"

#include <gtest/gtest.h>

#include <set>

namespace presenced {
namespace {

TEST(RandomTest, HexHasTwoDigitsPerByte) {
  SecureRandom random;
  std::string key = RandomHex(random, 16);
  EXPECT_EQ(key.size(), 32u);
  EXPECT_EQ(key.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(RandomTest, IdsUseTheUrlSafeAlphabet) {
  SecureRandom random;
  std::string id = RandomId(random, 12);
  EXPECT_EQ(id.size(), 12u);
  for (char c : id) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << id;
}

TEST(RandomTest, SecureKeysDoNotRepeat) {
  SecureRandom random;
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(seen.insert(RandomHex(random, 16)).second);
}

TEST(RandomTest, SeededRandomIsDeterministic) {
  SeededRandom a(42), b(42);
  EXPECT_EQ(RandomId(a, 20), RandomId(b, 20));
}

}  // namespace
}  // namespace presenced
