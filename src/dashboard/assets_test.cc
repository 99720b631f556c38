#include "dashboard/assets.h"

#include <gtest/gtest.h>

namespace presenced::dashboard {
namespace {

TEST(DashboardAssetsTest, IndexIsEmbeddedAsHtml) {
  const Asset* index = FindAsset("/index.html");
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(index->content_type, "text/html; charset=utf-8");
  EXPECT_TRUE(index->body.starts_with("<!doctype html>"));
  EXPECT_NE(index->body.find("/dashboard/app.js"), std::string_view::npos);
}

TEST(DashboardAssetsTest, ScriptsAndStylesHaveTheirContentTypes) {
  // Browsers refuse an ES module served with a non-JavaScript type.
  for (const char* path : {"/app.js", "/presenced-client.js", "/virtual-list.js"}) {
    const Asset* a = FindAsset(path);
    ASSERT_NE(a, nullptr) << path;
    EXPECT_EQ(a->content_type, "text/javascript; charset=utf-8") << path;
    EXPECT_FALSE(a->body.empty()) << path;
  }
  const Asset* css = FindAsset("/style.css");
  ASSERT_NE(css, nullptr);
  EXPECT_EQ(css->content_type, "text/css; charset=utf-8");
}

TEST(DashboardAssetsTest, BodiesAreTheFilesByteForByte) {
  // The last byte survives (no terminator lost or added): every file ends with a newline.
  const Asset* index = FindAsset("/index.html");
  ASSERT_NE(index, nullptr);
  EXPECT_TRUE(index->body.ends_with("</html>\n"));
  EXPECT_EQ(index->body.find('\0'), std::string_view::npos);
}

TEST(DashboardAssetsTest, UnknownPathsAreNotFound) {
  EXPECT_EQ(FindAsset("/nope.js"), nullptr);
  EXPECT_EQ(FindAsset(""), nullptr);
  EXPECT_EQ(FindAsset("/"), nullptr);
  EXPECT_EQ(FindAsset("index.html"), nullptr);  // paths start with a slash
  EXPECT_EQ(FindAsset("/../index.html"), nullptr);
}

}  // namespace
}  // namespace presenced::dashboard
