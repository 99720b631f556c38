#include "storage/memory_store.h"

#include <gtest/gtest.h>

namespace presenced::storage {
namespace {

std::vector<std::string> Query(Store& s, HistoryQuery q) {
  std::vector<std::string> out;
  s.QueryHistory(std::move(q), [&](Result<HistoryPage> r) {
    ASSERT_TRUE(r.ok());
    for (auto& e : r->events) out.push_back(*e);
  });
  return out;
}

void Add(Store& s, const std::string& ch, uint64_t serial, TimeMs t) {
  s.AppendEvent({ch, serial, t, std::make_shared<const std::string>(std::to_string(serial))});
}

TEST(MemoryStoreTest, IsBoundedPerChannelAndInChannels) {
  MemoryStore s(3, 2);
  for (uint64_t i = 1; i <= 5; ++i) Add(s, "a", i, 1);
  EXPECT_EQ(Query(s, {"a", std::nullopt, std::nullopt, 100, true, std::nullopt}),
            (std::vector<std::string>{"3", "4", "5"}));
  Add(s, "b", 1, 1);
  Add(s, "c", 1, 1);  // evicts "a", the least recently written
  EXPECT_TRUE(Query(s, {"a", std::nullopt, std::nullopt, 100, true, std::nullopt}).empty());
  EXPECT_EQ(Query(s, {"b", std::nullopt, std::nullopt, 100, true, std::nullopt}).size(), 1u);
}

}  // namespace
}  // namespace presenced::storage
