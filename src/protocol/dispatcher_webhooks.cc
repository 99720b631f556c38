// The Dispatcher's webhooks (protocol-ext §4): which engine and session events become webhook
// events, the outbox's persistence (the store on a single node, the log in a cluster), and which
// node delivers. The Dispatcher's thread.
//
// Cluster entries (dispatcher_cluster.cc applies them):
//   hello {}                   this incarnation is live (appended when it first can, and again
//                              after it re-registered); the first live one delivers
//   bye   {}                   it is leaving (SIGTERM)
//   wh    {"e":endpoint,"s":seq}  the deliverer's report: the event left that endpoint's queue
#include <algorithm>
#include <boost/json/serialize.hpp>

#include "protocol/codec.h"
#include "protocol/dispatcher.h"
#include "protocol/json_out.h"

namespace presenced::protocol {

void Dispatcher::SetWebhookClient(HttpClient* client) {
  deliverer_.reset();
  if (client == nullptr || !webhooks_.enabled()) return;
  const presenced::Clock& clock =
      replication_ != nullptr ? static_cast<const presenced::Clock&>(wall_) : clock_;
  deliverer_ = std::make_unique<webhooks::Deliverer>(
      webhooks_, clock, *client,
      webhooks::Deliverer::Callbacks{
          .done = [this](size_t endpoint, uint64_t seq,
                         bool delivered) { WebhookDone(endpoint, seq, delivered); },
          .post = post_,
          .count =
              [this](std::string_view result) {
                if (result == "ok") {
                  metrics_.webhook_ok_total.fetch_add(1, std::memory_order_relaxed);
                } else if (result == "error") {
                  metrics_.webhook_error_total.fetch_add(1, std::memory_order_relaxed);
                } else {
                  metrics_.webhook_dropped_total.fetch_add(1, std::memory_order_relaxed);
                }
              },
      });
  if (replication_ != nullptr) NodesChanged();
}

void Dispatcher::RestoreWebhooks(std::vector<storage::StoredWebhook> rows) {
  const auto& endpoints = webhooks_.options().endpoints;
  std::vector<webhooks::StoredEvent> events;
  for (auto& r : rows) {
    const auto at = std::find(endpoints.begin(), endpoints.end(), r.endpoint);
    if (at == endpoints.end()) continue;  // an endpoint no longer configured: not sent
    webhooks::Event e;
    e.seq = r.seq;
    e.id = std::move(r.id);
    e.created_at = r.created_at;
    e.body = std::make_shared<const std::string>(std::move(r.body));
    events.push_back({static_cast<size_t>(at - endpoints.begin()), std::move(e)});
  }
  webhooks_.Restore(std::move(events));
}

void Dispatcher::Webhook(webhooks::Type type, const std::string& data) {
  const uint64_t overflowed = webhooks_.overflowed();
  const webhooks::Event* e = webhooks_.Add(type, data, clock_.NowMs(), options_.epoch);
  if (e == nullptr) return;
  metrics_.webhook_overflow_total.fetch_add(webhooks_.overflowed() - overflowed,
                                            std::memory_order_relaxed);
  if (replication_ != nullptr) return;  // the log is its durability
  for (const std::string& endpoint : webhooks_.options().endpoints) {
    store_.PutWebhook(storage::StoredWebhook{endpoint, e->seq, e->id, e->created_at, *e->body});
  }
}

void Dispatcher::PresenceWebhooks(const engine::PresenceEvent& event) {
  using webhooks::Type;
  const bool enter = event.action == engine::Action::kEnter;
  const bool leave = event.action == engine::Action::kLeave;
  if (!enter && !leave) return;
  std::string channel;
  AppendQuoted(channel, event.channel);
  const std::string just_channel = "{\"channel\":" + channel + "}";
  if (enter && event.channel_members == 1 && webhooks_.Wants(webhooks::kChannelOccupied)) {
    Webhook(webhooks::kChannelOccupied, just_channel);
  }
  const Type member_type = enter ? webhooks::kMemberEntered : webhooks::kMemberLeft;
  if (webhooks_.Wants(member_type)) {
    std::string data = "{\"channel\":" + channel + ",\"member\":";
    AppendMember(data, event.member);
    if (leave) {
      data += ",\"reason\":\"";
      data += engine::LeaveReasonName(event.reason);
      data += '"';
    }
    data += '}';
    Webhook(member_type, data);
  }
  if (leave && event.channel_members == 0 && webhooks_.Wants(webhooks::kChannelVacated)) {
    Webhook(webhooks::kChannelVacated, just_channel);
  }
}

void Dispatcher::PumpWebhooks() {
  if (deliverer_ == nullptr || !delivering_ || webhooks_.total_depth() == 0) return;
  deliverer_->Pump();
}

void Dispatcher::WebhookDone(size_t endpoint, uint64_t seq, bool delivered) {
  (void)delivered;  // given up: counted (presenced_webhook_deliveries_total{result="dropped"})
  if (replication_ == nullptr) return PopWebhook(endpoint, seq);
  json::object o;
  o["k"] = "wh";
  o["e"] = endpoint;
  o["s"] = seq;
  // Lost (Redis down): the report is made again, from the event still at the head, once the
  // deliverer sends it again (at least once).
  replication_->Append(json::serialize(o), [this, endpoint, seq](const Error&) {
    if (deliverer_) deliverer_->Settled(endpoint, seq);
  });
}

void Dispatcher::PopWebhook(size_t endpoint, uint64_t seq) {
  if (!webhooks_.Pop(endpoint, seq)) return;
  if (replication_ == nullptr) {
    store_.DeleteWebhook(webhooks_.options().endpoints[endpoint], seq);
  }
  if (deliverer_) deliverer_->Settled(endpoint, seq);
}

void Dispatcher::NodesChanged() {
  delivering_ = !nodes_.empty() && replication_ != nullptr && nodes_.front() == hello_origin_ &&
                hello_origin_ == replication_->Origin();
}

}  // namespace presenced::protocol
