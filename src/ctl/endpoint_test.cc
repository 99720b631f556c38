#include "ctl/endpoint.h"

#include <gtest/gtest.h>

namespace presenced::ctl {
namespace {

// Suites are named Presencectl* so `ctest -R ctl` selects them with the integration tests.

TEST(PresencectlEndpointTest, ParsesHostPortAndPrefix) {
  auto e = ParseEndpoint("http://example.com:8080/presence/");
  ASSERT_TRUE(e.ok()) << e.error().message;
  EXPECT_EQ(e->host, "example.com");
  EXPECT_EQ(e->port, 8080);
  EXPECT_EQ(e->host_header, "example.com:8080");
  EXPECT_EQ(e->prefix, std::vector<std::string>{"presence"});
  EXPECT_EQ(e->Target({"v1", "who"}), "/presence/v1/who");
}

TEST(PresencectlEndpointTest, DefaultsToPort80AndAnEmptyPrefix) {
  auto e = ParseEndpoint("http://127.0.0.1");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->port, 80);
  EXPECT_EQ(e->host_header, "127.0.0.1");
  EXPECT_EQ(e->Target({"v1", "channels"}), "/v1/channels");
}

TEST(PresencectlEndpointTest, Ipv6HostIsResolvedWithoutBrackets) {
  auto e = ParseEndpoint("http://[::1]:7070");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "::1");
  EXPECT_EQ(e->host_header, "[::1]:7070");
}

TEST(PresencectlEndpointTest, RefusesWhatItCannotSpeak) {
  for (const char* url : {"https://example.com", "example.com:7070", "http://u:p@host",
                          "http://host/?q=1", "http://host:0", "not a url"}) {
    auto e = ParseEndpoint(url);
    EXPECT_FALSE(e.ok()) << url;
    if (!e.ok()) {
      EXPECT_NE(e.error().message.find("--url"), std::string::npos);
    }
  }
}

TEST(PresencectlEndpointTest, TargetEncodesEverySegmentAndParameter) {
  auto e = ParseEndpoint("http://h");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->Target({"v1", "channels", "a/b c?#%", "history"}, {{"limit", "5"}}),
            "/v1/channels/a%2Fb%20c%3F%23%25/history?limit=5");
  EXPECT_EQ(e->Target({"v1", "who"}, {{"channel", "x&y=z+1"}}), "/v1/who?channel=x%26y%3Dz%2B1");
}

}  // namespace
}  // namespace presenced::ctl
