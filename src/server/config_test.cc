#include "server/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

namespace presenced::server {
namespace {

TEST(ConfigTest, EverySettingHasAllThreeNames) {
  for (const auto& s : Settings()) {
    EXPECT_EQ(s.env.rfind("PRESENCED_", 0), 0u) << s.key;
    EXPECT_EQ(s.flag.rfind("--", 0), 0u) << s.key;
  }
  Config c;
  EXPECT_TRUE(ApplySetting(c, "heartbeat_ms", "500").ok());
  EXPECT_EQ(c.net.heartbeat_ms, 500);
  EXPECT_FALSE(ApplySetting(c, "heartbeat_ms", "5x").ok());
  EXPECT_FALSE(ApplySetting(c, "heartbeat_ms", "-1").ok());
  EXPECT_FALSE(ApplySetting(c, "no_such_thing", "1").ok());
}

TEST(ConfigTest, EveryNumericSettingHasAnUpperBound) {
  // PRESENCED_HEARTBEAT_MS=9223372036854775807 was accepted and overflowed at the first connect.
  for (const auto& s : Settings()) {
    Config c;
    const Status max = ApplySetting(c, s.key, "9223372036854775807");
    const Status over = ApplySetting(c, s.key, "99999999999999999999999");
    const Status real = ApplySetting(c, s.key, "1e300");
    if (s.key == "listen" || s.key == "data_dir" || s.key == "jwt_secret" || s.key == "api_key" ||
        s.key == "log_level" || s.key == "storage" || s.key == "redis_url" || s.key == "node_id" ||
        s.key == "agent_id_template" || s.key.starts_with("webhook_url") ||
        s.key == "webhook_secret" || s.key == "webhook_events" || s.key == "webhook_ca_file" ||
        s.key == "tls_cert" || s.key == "tls_key") {
      continue;  // text settings
    }
    EXPECT_FALSE(max.ok()) << s.key;
    EXPECT_FALSE(over.ok()) << s.key;
    EXPECT_FALSE(real.ok()) << s.key;
    if (!max.ok()) {
      EXPECT_NE(max.error().message.find(s.key), std::string::npos);
    }
  }
  Config c;
  EXPECT_TRUE(ApplySetting(c, "heartbeat_ms", "3600000").ok());
  EXPECT_FALSE(ApplySetting(c, "heartbeat_ms", "3600001").ok());
  EXPECT_EQ(c.net.heartbeat_ms, 3600000);  // a refused value changes nothing
  EXPECT_FALSE(ApplySetting(c, "rate_per_second", "inf").ok());
  EXPECT_FALSE(ApplySetting(c, "rate_per_second", "nan").ok());
}

TEST(ConfigTest, TomlFileThenEnvironment) {
  const auto path = std::filesystem::temp_directory_path() / "presenced_config_test.toml";
  {
    std::ofstream f(path);
    f << "listen = \"127.0.0.1:9000\"\nheartbeat_ms = 1234\nrate_per_second = 2.5\n";
  }
  Config c;
  ASSERT_TRUE(ApplyTomlFile(c, path.string()).ok());
  EXPECT_EQ(c.listen, "127.0.0.1:9000");
  EXPECT_EQ(c.net.heartbeat_ms, 1234);
  EXPECT_DOUBLE_EQ(c.protocol.rate_per_second, 2.5);
  setenv("PRESENCED_HEARTBEAT_MS", "99", 1);
  ASSERT_TRUE(ApplyEnvironment(c).ok());
  unsetenv("PRESENCED_HEARTBEAT_MS");
  EXPECT_EQ(c.net.heartbeat_ms, 99);
  {
    std::ofstream f(path);
    f << "hearbeat_ms = 5\n";  // a typo is an error, not silence
  }
  EXPECT_FALSE(ApplyTomlFile(c, path.string()).ok());
  {
    std::ofstream f(path);
    f << "listen = \n";
  }
  EXPECT_FALSE(ApplyTomlFile(c, path.string()).ok());
  std::filesystem::remove(path);
}

// toml++ 3.3.0 (Debian) classifies some non-ASCII code points as whitespace through a generated
// table whose default case is __builtin_unreachable (upstream marzer/tomlplusplus #190, #295;
// fixed by returning false in #305). These are the two inputs reported upstream; the server must
// read the first as written and refuse the second with its file's name, never misbehave.
TEST(ConfigTest, NonAsciiAfterLineEndingBackslashAndStrayCombiningMark) {
  Config c;
  ASSERT_TRUE(ApplyTomlText(c, "listen = \"\"\"\\\n\xc2\xa7\"\"\"\n", "unicode.toml").ok());
  EXPECT_EQ(c.listen, "\xc2\xa7");
  const Status stray = ApplyTomlText(c, "\xcc\xaa", "unicode.toml");
  ASSERT_FALSE(stray.ok());
  EXPECT_NE(stray.error().message.find("unicode.toml"), std::string::npos);
  EXPECT_FALSE(ApplyTomlText(c, "heartbeat_ms = 5 \xc4\x80\n", "unicode.toml").ok());
}

TEST(ConfigTest, ValidatesAcrossSettings) {
  Config c;
  EXPECT_TRUE(Validate(c).ok());
  c.protocol.default_remain_present_for_ms = c.protocol.max_remain_present_for_ms + 1;
  EXPECT_TRUE(Validate(c).ok());  // reconciled, not refused
  EXPECT_EQ(Reconcile(c).size(), 1u);
  EXPECT_EQ(c.protocol.default_remain_present_for_ms, c.protocol.max_remain_present_for_ms);
  c.storage = "floppy";
  EXPECT_FALSE(Validate(c).ok());
  c = Config();
  c.listen = "nohost";
  EXPECT_FALSE(Validate(c).ok());
  auto hp = SplitListen("[::1]:80");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->first, "::1");
  EXPECT_EQ(hp->second, 80);
}

TEST(ConfigTest, TlsNeedsTheCertificateAndItsKey) {
  Config c;
  ASSERT_TRUE(ApplySetting(c, "tls_cert", "/etc/presenced/cert.pem").ok());
  EXPECT_EQ(c.net.tls_cert, "/etc/presenced/cert.pem");
  Status st = Validate(c);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("tls_key is not set"), std::string::npos) << st.error().message;
  ASSERT_TRUE(ApplySetting(c, "tls_key", "/etc/presenced/key.pem").ok());
  EXPECT_EQ(c.net.tls_key, "/etc/presenced/key.pem");
  EXPECT_TRUE(Validate(c).ok());  // the files are the network layer's to read, at Listen
  c = Config();
  ASSERT_TRUE(ApplySetting(c, "tls_key", "/etc/presenced/key.pem").ok());
  st = Validate(c);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("tls_cert is not set"), std::string::npos)
      << st.error().message;
}

TEST(ConfigTest, ClusterSettings) {
  Config c;
  ASSERT_TRUE(ApplySetting(c, "redis_url", "redis://:pw@127.0.0.1:6390/1").ok());
  ASSERT_TRUE(ApplySetting(c, "node_id", "eu-1.a_b").ok());
  ASSERT_TRUE(ApplySetting(c, "node_lease_ms", "1500").ok());
  EXPECT_TRUE(Validate(c).ok());
  EXPECT_EQ(c.cluster.lease_ms, 1500);
  EXPECT_FALSE(ApplySetting(c, "node_lease_ms", "299").ok());
  // Unset storage is redis in cluster mode, sqlite otherwise; a set one is kept.
  Config cluster = c;
  Reconcile(cluster);
  EXPECT_EQ(cluster.storage, "redis");
  Config single;
  Reconcile(single);
  EXPECT_EQ(single.storage, "sqlite");
  Config chosen = c;
  chosen.storage = "sqlite";
  Reconcile(chosen);
  EXPECT_EQ(chosen.storage, "sqlite");

  Config bad;
  bad.cluster.redis_url = "redis://host:99999";
  EXPECT_FALSE(Validate(bad).ok());
  bad = Config();
  bad.storage = "redis";
  EXPECT_NE(Validate(bad).error().message.find("needs redis_url"), std::string::npos);
  bad.cluster.redis_url = "redis://h";
  EXPECT_TRUE(Validate(bad).ok());
  bad = Config();
  bad.cluster.node_id = "a b";
  EXPECT_FALSE(Validate(bad).ok());
  bad.cluster.node_id = std::string(65, 'a');
  EXPECT_FALSE(Validate(bad).ok());
}

TEST(ConfigTest, TomlTextIsReadLikeAFile) {
  Config c;
  ASSERT_TRUE(ApplyTomlText(c, "heartbeat_ms = 500\nstorage = \"memory\"\n", "inline.toml").ok());
  EXPECT_EQ(c.net.heartbeat_ms, 500);
  EXPECT_EQ(c.storage, "memory");
  const Status bad = ApplyTomlText(c, "heartbeat_ms = \n", "inline.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("inline.toml"), std::string::npos);
}

TEST(ConfigTest, TomlFloatsKeepEveryDigit) {
  // Found by fuzz/config.cc: floats went through a stream's six significant digits, so
  // rate_burst = 1234567.0 became 1234570.
  Config c;
  ASSERT_TRUE(
      ApplyTomlText(c, "rate_burst = 1234567.0\nrate_per_second = 2500.125\n", "t.toml").ok());
  EXPECT_EQ(c.protocol.rate_burst, 1234567.0);
  EXPECT_EQ(c.protocol.rate_per_second, 2500.125);
}

TEST(ConfigTest, TomlFloatForAnIntegerSettingIsRefused) {
  // Found by fuzz/config.cc: the value was read as an integer before its type was checked, and
  // toml++ converted 2e80 to int64_t (undefined behaviour).
  Config c;
  const Status st = ApplyTomlText(c, "heartbeat_ms = 2e80\n", "t.toml");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("heartbeat_ms"), std::string::npos);
  EXPECT_EQ(c.net.heartbeat_ms, Config().net.heartbeat_ms);
}

TEST(ConfigTest, GeneratesSecretsOncePrivately) {
  const auto dir = std::filesystem::temp_directory_path() / "presenced_secret_test";
  std::filesystem::remove_all(dir);
  Config c;
  c.data_dir = dir.string();
  std::vector<std::string> created;
  ASSERT_TRUE(ResolveSecrets(c, created).ok());
  EXPECT_EQ(created.size(), 2u);
  EXPECT_EQ(c.protocol.jwt_secret.size(), 64u);
  struct stat st;
  ASSERT_EQ(stat((dir / "jwt-secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Config again;
  again.data_dir = dir.string();
  created.clear();
  ASSERT_TRUE(ResolveSecrets(again, created).ok());
  EXPECT_TRUE(created.empty());
  EXPECT_EQ(again.protocol.jwt_secret, c.protocol.jwt_secret);
  EXPECT_EQ(again.protocol.api_key, c.protocol.api_key);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace presenced::server
