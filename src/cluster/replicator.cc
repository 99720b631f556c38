#include "cluster/replicator.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstring>

namespace presenced::cluster {

void ReplayRandom::Seed(std::string_view seed) {
  key_.assign(seed);
  counter_ = 0;
}

void ReplayRandom::Fill(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    unsigned char block[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    uint8_t counter[8];
    for (int i = 0; i < 8; ++i) counter[i] = static_cast<uint8_t>(counter_ >> (8 * i));
    ++counter_;
    HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), counter, sizeof counter, block,
         &len);
    const size_t n = std::min<size_t>(len, out.size() - done);
    std::memcpy(out.data() + done, block, n);
    done += n;
  }
}

Replicator::Replicator(Reactor& reactor, Node& node, redis::ClientOptions reader_options,
                       ManualClock& log_clock, ReplayRandom& random)
    : reactor_(reactor),
      node_(node),
      log_(reactor, node.client(), std::move(reader_options)),
      clock_(log_clock),
      random_(random) {}

void Replicator::Start(std::function<void(std::vector<LogEntry>)> on_batch) {
  log_.Read(
      "0-0",
      [on_batch = std::move(on_batch)](std::vector<LogEntry>& entries) {
        on_batch(std::move(entries));
      },
      [this] { ++gaps_; });
}

ReplicatedEntry Replicator::Prepare(const LogEntry& e) {
  clock_.Set(std::max(clock_.NowMs(), e.time));
  origin_ = e.node + "/" + e.incarnation;
  return ReplicatedEntry{e.time, e.node == node_.node_id() && e.incarnation == node_.incarnation(),
                         origin_, e.body};
}

void Replicator::Append(std::string body, std::function<void(const Error&)> failed) {
  queue_.push_back(std::move(body));
  failed_.push_back(std::move(failed));
  if (flush_posted_) return;
  flush_posted_ = true;
  reactor_.Post([this, alive = alive_] {
    if (*alive) Flush();
  });
}

void Replicator::Flush() {
  flush_posted_ = false;
  std::vector<std::string> bodies;
  bodies.swap(queue_);
  auto failed = std::make_shared<std::vector<std::function<void(const Error&)>>>();
  failed->swap(failed_);
  auto fail_all = [failed](const std::string& why) {
    const Error e = MakeError(ErrorCode::kInternal, why);
    for (auto& f : *failed) f(e);
  };
  if (!node_.up()) return fail_all("redis is down: " + node_.client().DownReason());
  log_.Append(node_.node_id(), node_.incarnation(), std::move(bodies),
              [fail_all](const redis::Reply& r) {
                if (!r.ok()) fail_all(r.str);
              });
}

std::string Replicator::NewSeed() { return RandomHex(secure_, 16); }

}  // namespace presenced::cluster
