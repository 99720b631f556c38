// presenced: the realtime presence server.
//
//   presenced [--config FILE] [--listen HOST:PORT] [...]   serve
//   presenced token CLIENT_ID [--channels a,b*] [--ttl-ms 3600000] [--roles worker]   a client
//   token
//
// Threads: the main thread runs the I/O threads (net::Server::Run), and the Dispatcher and Engine
// run in rounds on the server's own loop (EngineLoop on net::Server::WorkLoop: with one I/O
// thread, that thread); the store has its thread; a shutdown thread orchestrates SIGTERM/SIGINT;
// SIGHUP reloads the TLS certificate on an I/O thread.
// The adapter between the network layer and the engine is server/service.h.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <future>
#include <iostream>
#include <map>
#include <thread>

#include "cluster/node.h"
#include "cluster/replicator.h"
#include "common/clock.h"
#include "common/random.h"
#include "net/http_client.h"
#include "net/server.h"
#include "protocol/auth.h"
#include "protocol/dispatcher.h"
#include "redis/client.h"
#include "server/config.h"
#include "server/engine_loop.h"
#include "server/service.h"
#include "storage/memory_store.h"
#include "storage/redis_store.h"
#include "storage/sqlite_store.h"

namespace presenced::server {
namespace {

// Exit codes: 2 = bad configuration, 3 = data directory unusable (missing parent, not writable,
// locked by another presenced), 4 = database unusable (corrupt, newer schema).
int Serve(Config config) {
  auto data_dir = storage::DataDir::Lock(config.data_dir);
  if (!data_dir.ok()) {
    spdlog::critical("event=startup_failed reason=\"{}\"", data_dir.error().message);
    return 3;
  }
  std::vector<std::string> created;
  if (Status st = ResolveSecrets(config, created); !st) {
    spdlog::critical("event=startup_failed reason=\"{}\"", st.error().message);
    return 3;
  }
  for (const auto& path : created) {
    spdlog::warn(
        "event=secret_generated path={} note=\"keep it private; mint tokens with: presenced token "
        "CLIENT_ID\"",
        path);
  }
  auto listen = SplitListen(config.listen);

  SystemClock clock;
  SecureRandom random;
  protocol::Metrics metrics;
  std::unique_ptr<storage::Store> store;
  storage::RedisStore* redis_store = nullptr;  // started on the work loop, below
  if (config.storage == "redis") {
    redis::ClientOptions ro;
    ro.url = *redis::ParseUrl(config.cluster.redis_url);
    ro.name = "presenced-store";
    auto shared = std::make_unique<storage::RedisStore>(std::move(ro), config.sqlite, clock);
    redis_store = shared.get();
    store = std::move(shared);
  } else if (config.storage == "memory") {
    const storage::SqliteOptions& so = config.sqlite;
    store = std::make_unique<storage::MemoryStore>(
        so.history_max_per_channel > 0 ? so.history_max_per_channel : 100000, 100000,
        so.activity_max_per_user > 0 ? so.activity_max_per_user : 1000);
  } else {
    storage::SqliteOptions so = config.sqlite;
    so.path = config.data_dir + "/presenced.db";
    so.on_error = [](const std::string& why) {
      spdlog::error("event=storage_write_failed reason=\"{}\"", why);
    };
    auto opened = storage::SqliteStore::Open(so, clock);
    if (!opened.ok()) {
      spdlog::critical("event=startup_failed reason=\"{}\"", opened.error().message);
      return 4;
    }
    store = std::move(opened).value();
  }

  protocol::DispatcherOptions options = config.protocol;
  options.epoch = RandomId(random, 12);
  const bool cluster_mode = !config.cluster.redis_url.empty();
  // Cluster mode: the engine's time is the log's, and its randomness the entries' (every node's
  // engine applies the same entries alike).
  ManualClock log_clock(clock.NowMs());
  cluster::ReplayRandom replay_random;
  EngineLoop* loop_ptr = nullptr;  // the dispatcher posts to the loop that runs it
  protocol::Dispatcher dispatcher(
      options, cluster_mode ? static_cast<const Clock&>(log_clock) : clock,
      cluster_mode ? static_cast<RandomSource&>(replay_random) : random, *store, metrics,
      [&loop_ptr](std::function<void()> task) { loop_ptr->Post(std::move(task)); });
  EngineLoop loop(dispatcher, clock, config.loop);
  loop_ptr = &loop;
  Service service(loop, dispatcher, *store, metrics, config, clock);

  net::NetOptions net_options = config.net;
  net_options.host = listen->first;
  net_options.port = listen->second;
  SteadyClock steady_clock;  // liveness deadlines must not jump with the wall clock
  net::Server server(net_options, service, steady_clock);
  service.SetNetCounters(&server.counters());
  loop.Attach(server.WorkLoop());
  auto port = server.Listen();
  if (!port.ok()) {
    spdlog::critical("event=startup_failed reason=\"{}\"", port.error().message);
    return 2;
  }
  // SIGHUP reloads the certificate (a renewed one takes over without a restart); it never ends
  // the process, TLS or not. Caught from before the "listening" line on, so a script that waits
  // for that line may send it at once.
  server.OnHangup([&server, &config] {
    if (!server.tls()) {
      spdlog::info("event=sighup note=\"TLS is off: nothing to reload\"");
      return;
    }
    if (Status st = server.ReloadTls(); st) {
      spdlog::info("event=tls_reloaded note=\"TLS certificate reloaded from {} (key {})\"",
                   config.net.tls_cert, config.net.tls_key);
    } else {
      spdlog::error(
          "event=tls_reload_failed reason=\"{}\" note=\"the certificate loaded before stays in "
          "use\"",
          st.error().message);
    }
  });
  // Tests and scripts read this line to learn the port (listen may say port 0).
  std::printf("presenced listening on %s:%u epoch=%s\n", listen->first.c_str(), *port,
              options.epoch.c_str());
  std::fflush(stdout);
  spdlog::info("event=listening host={} port={} epoch={} data_dir={} storage={} io_threads={}",
               listen->first, *port, options.epoch, config.data_dir, config.storage,
               server.io_threads());
  if (server.tls()) {
    spdlog::info("event=tls cert={} key={} note=\"TLS is on: the port serves https and wss only\"",
                 config.net.tls_cert, config.net.tls_key);
  }

  // Cluster mode: the node's lease on Redis, the log's reader and the shared store, on the work
  // loop (docs/operations.md, "Clustering").
  std::unique_ptr<cluster::Node> node;
  std::unique_ptr<cluster::Replicator> replicator;
  if (cluster_mode) {
    service.SetRedisUp(false);
    node = std::make_unique<cluster::Node>(
        server.WorkReactor(), steady_clock, config.cluster,
        *redis::ParseUrl(config.cluster.redis_url),
        cluster::Node::Callbacks{
            .health =
                [&service, &node](bool up) {
                  service.SetRedisUp(up);
                  if (up) {
                    spdlog::info("event=redis_up node={} incarnation={}", node->node_id(),
                                 node->incarnation());
                  } else {
                    spdlog::warn("event=redis_down node={} reason=\"{}\"", node->node_id(),
                                 node->client().DownReason());
                  }
                },
            .fenced =
                [&service, &dispatcher, &node] {
                  service.CountFenced();
                  spdlog::warn(
                      "event=node_fenced node={} note=\"lease lost while redis served: "
                      "closing every connection with 4001\"",
                      node->node_id());
                  dispatcher.CloseAll(4001, "node lease lost");
                },
            .epoch =
                [&node, &dispatcher, &replicator,
                 previous = std::string()](const std::string& epoch) mutable {
                  spdlog::info("event=cluster_epoch node={} epoch={}", node->node_id(), epoch);
                  if (previous.empty()) {
                    dispatcher.SetEpoch(epoch);
                  } else {
                    // Redis lost its data: subscribers get the state anew under the new epoch,
                    // and the state is saved at once for nodes that join from now on.
                    spdlog::warn(
                        "event=cluster_epoch_changed node={} from={} to={} note=\"redis lost "
                        "its data: every subscription gets a sync\"",
                        node->node_id(), previous, epoch);
                    dispatcher.EpochChanged(epoch);
                    dispatcher.FlushOutbound();
                    if (replicator) replicator->SaveNow();
                  }
                  previous = epoch;
                },
        });
    spdlog::warn(
        "event=cluster_mode node={} redis={}:{} lease_ms={} note=\"presence is replicated "
        "through the log on redis (docs/operations.md, Clustering)\"",
        node->node_id(), redis::ParseUrl(config.cluster.redis_url)->host,
        redis::ParseUrl(config.cluster.redis_url)->port, config.cluster.lease_ms);
    redis::ClientOptions reader;
    reader.url = *redis::ParseUrl(config.cluster.redis_url);
    reader.name = "presenced-" + node->node_id() + "-log";
    replicator = std::make_unique<cluster::Replicator>(server.WorkReactor(), *node, reader,
                                                       log_clock, replay_random);
    dispatcher.SetReplication(replicator.get(), /*shared_store=*/config.storage == "redis");
    server.WorkReactor().Post(
        [&node, &replicator, &loop, &dispatcher, &service, &server, redis_store] {
          node->Start();
          if (redis_store != nullptr) redis_store->Start(server.WorkReactor());
          cluster::Replicator::StateHooks state{
              .save =
                  [&dispatcher, &service] {
                    service.CountSnapshotSaved();
                    return dispatcher.SaveState();
                  },
              .load =
                  [&dispatcher, &node, &service](std::string_view saved) {
                    Status st = dispatcher.LoadState(saved);
                    if (st) {
                      service.CountSnapshotLoaded();
                      spdlog::info("event=cluster_snapshot_loaded node={} bytes={}",
                                   node->node_id(), saved.size());
                    } else {
                      spdlog::error("event=cluster_snapshot_refused node={} error=\"{}\"",
                                    node->node_id(), st.error().message);
                    }
                    return st;
                  },
              .in_order = [&loop](std::function<void()> task) { loop.Post(std::move(task)); },
              .uncovered_gap =
                  [&node, &service] {
                    service.CountLogGap();
                    spdlog::error(
                        "event=cluster_log_gap node={} note=\"log entries were missed and no "
                        "snapshot covers them: this node's state may differ; restart it\"",
                        node->node_id());
                  },
          };
          replicator->Start(std::move(state), [&replicator, &loop,
                                               &dispatcher](std::vector<cluster::LogEntry> batch) {
            // Applied in a round of the loop, so the frames it queues leave at the round's end.
            loop.Post([&replicator, &dispatcher,
                       b = std::make_shared<std::vector<cluster::LogEntry>>(std::move(batch))] {
              for (const auto& e : *b) {
                dispatcher.Apply(replicator->Prepare(e));
                replicator->Applied(e);
              }
            });
          });
        });
  }

  // Token revocations: a single node's are in its store; a cluster's in its replicated state.
  if (!cluster_mode) {
    auto rows = store->LoadRevocations();
    if (rows.ok()) {
      dispatcher.RestoreRevocations(*rows);
    } else {
      spdlog::error("event=revocations_restore_failed error=\"{}\"", rows.error().message);
      return 4;
    }
  }

  // Webhooks (protocol-ext §4): a single node's outbox is in its store; a cluster's is in its
  // replicated state, delivered by one node.
  std::unique_ptr<HttpClient> webhook_client;
  if (!config.protocol.webhooks.endpoints.empty()) {
    webhook_client = net::MakeHttpClient(server, config.webhook_ca_file);
    if (!cluster_mode) {
      auto rows = store->LoadWebhooks();
      if (rows.ok()) {
        if (!rows->empty()) spdlog::info("event=webhooks_restored events={}", rows->size());
        dispatcher.RestoreWebhooks(std::move(rows).value());
      } else {
        spdlog::error("event=webhooks_restore_failed error=\"{}\"", rows.error().message);
      }
    }
    dispatcher.SetWebhookClient(webhook_client.get());
    loop.Post([] {});  // a first round: what the outbox kept is sent without waiting for traffic
    spdlog::info("event=webhooks endpoints={} retry_ms={}",
                 config.protocol.webhooks.endpoints.size(), config.protocol.webhooks.retry_ms);
  }

  std::thread shutdown_thread;
  server.OnSignal([&] {
    // On an I/O thread: hand the orchestration to its own thread so I/O keeps flowing while
    // sessions flush their last frames.
    shutdown_thread = std::thread([&] {
      spdlog::info("event=shutdown_started");
      server.StopAccepting();
      std::promise<void> drained;
      loop.Post([&] {
        dispatcher.Shutdown();  // members leave (disconnected); sessions close with 1001
        drained.set_value();
      });
      drained.get_future().wait();
      if (node) {
        // The closes just appended are stored by this node when it applies them (a shared store
        // takes each change from the node that asked): wait for them, up to 2 s.
        auto applied = std::make_shared<std::promise<void>>();
        loop.Post([&dispatcher, applied] {
          dispatcher.WhenApplied([applied] { applied->set_value(); });
        });
        applied->get_future().wait_for(std::chrono::seconds(2));
        // The lease goes at once (not after it expires), when Redis answers within a second.
        auto left = std::make_shared<std::promise<void>>();
        server.WorkReactor().Post([&node, left] { node->Leave([left] { left->set_value(); }); });
        left->get_future().wait_for(std::chrono::seconds(1));
      }
      store->Flush();  // everything acknowledged (and every last lastSeen) is on disk
      if (!server.WaitForSessions(std::chrono::seconds(5))) {
        spdlog::warn("event=shutdown_timeout note=\"some sessions did not close in 5s\"");
      }
      loop.Stop();
      server.Stop();
    });
  });
  server.Run();
  if (shutdown_thread.joinable()) shutdown_thread.join();
  replicator.reset();  // the loop has stopped: nothing of the node runs any more
  node.reset();
  loop.Stop();
  store->Flush();
  // The store's thread ends here, while the loop it posts its answers to still exists (stopped:
  // they are dropped), not after it.
  store.reset();
  spdlog::info("event=shutdown_complete");
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app{"presenced: realtime presence server"};
  app.set_help_all_flag("--help-all");
  app.set_version_flag("--version", "presenced " PRESENCED_VERSION_LINE);
  std::string config_file;
  app.add_option("--config", config_file, "TOML config file (also PRESENCED_CONFIG)");
  std::map<std::string, std::string> flags;
  for (const auto& s : Settings()) {
    // `--heartbeat-ms MS  ping interval; ... (milliseconds, 10 to 3600000; default 15000)`.
    std::string detail = s.unit;
    if (!s.range.empty()) detail += (detail.empty() ? "" : ", ") + s.range;
    if (!s.default_value.empty()) {
      detail += (detail.empty() ? "default " : "; default ") + s.default_value;
    }
    std::string help = s.help;
    if (!detail.empty()) help += " (" + detail + ")";
    const std::string type = s.unit == "milliseconds" ? "MS" : s.unit == "bytes" ? "BYTES" : s.type;
    app.add_option(s.flag, flags[s.key], help + " [env " + s.env + "]")->type_name(type);
  }

  auto* token = app.add_subcommand("token", "mint a client token (HS256 JWT) and print it");
  token->fallthrough();  // server settings (--data-dir, --jwt-secret) may follow the subcommand
  std::string client_id;
  std::string channels;
  int64_t ttl_ms = 3600 * 1000;
  token->add_option("client_id", client_id, "clientId (the token's sub)")->required();
  token->add_option("--channels", channels,
                    "comma-separated channel patterns (* = any run); default all");
  token->add_option("--ttl-ms", ttl_ms, "lifetime in milliseconds (1000 to 2592000000)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1000}, int64_t{30} * 86400 * 1000)
                  .description("from 1000 to 2592000000 (30 days)"));
  std::string roles;
  token->add_option("--roles", roles, "comma-separated roles (worker: may serve agent sessions)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are successes; every other parse error is a usage error (exit 2, as
    // for a bad setting).
    return app.exit(e) == 0 ? 0 : 2;
  }

  Config config;
  if (config_file.empty()) {
    if (const char* env = std::getenv("PRESENCED_CONFIG")) config_file = env;
  }
  if (!config_file.empty()) {
    if (Status st = ApplyTomlFile(config, config_file); !st) {
      std::fprintf(stderr, "presenced: %s\n", st.error().message.c_str());
      return 2;
    }
  }
  if (Status st = ApplyEnvironment(config); !st) {
    std::fprintf(stderr, "presenced: %s\n", st.error().message.c_str());
    return 2;
  }
  for (const auto& s : Settings()) {
    if (app.get_option(s.flag)->count() == 0) continue;
    if (Status st = ApplySetting(config, s.key, flags[s.key]); !st) {
      std::fprintf(stderr, "presenced: %s\n", st.error().message.c_str());
      return 2;
    }
  }
  if (Status st = Validate(config); !st) {
    std::fprintf(stderr, "presenced: %s\n", st.error().message.c_str());
    return 2;
  }

  // Logs go to stderr; stdout carries only the "listening" line (and minted tokens).
  spdlog::set_default_logger(spdlog::stderr_color_mt("presenced"));
  auto level = spdlog::level::from_str(config.log_level);
  spdlog::set_level(level);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z level=%l %v");
  for (const auto& note : Reconcile(config))
    spdlog::warn("event=config_adjusted note=\"{}\"", note);

  if (token->parsed()) {
    // The secret as the server resolves it (settings, then the data dir); never a new one, which
    // would sign tokens the running server refuses.
    auto from = ReadTokenSecret(config);
    if (!from.ok()) {
      std::fprintf(stderr, "presenced: %s\n", from.error().message.c_str());
      return 2;
    }
    if (from->empty()) {
      const bool flag = app.get_option("--jwt-secret")->count() > 0;
      const bool env = std::getenv("PRESENCED_JWT_SECRET") != nullptr;
      std::fprintf(stderr, "presenced: token secret from %s\n",
                   flag  ? "--jwt-secret"
                   : env ? "PRESENCED_JWT_SECRET"
                         : ("the config file " + config_file).c_str());
    } else {
      std::fprintf(stderr, "presenced: token secret from %s\n", from->c_str());
    }
    std::optional<std::vector<std::string>> patterns;
    if (!channels.empty()) patterns = CLI::detail::split(channels, ',');
    std::vector<std::string> role_list;
    if (!roles.empty()) role_list = CLI::detail::split(roles, ',');
    SystemClock clock;
    auto t = protocol::MintToken(config.protocol.jwt_secret, client_id, ttl_ms / 1000, patterns,
                                 clock.NowMs(), role_list);
    if (!t.ok()) {
      std::fprintf(stderr, "presenced: %s\n", t.error().message.c_str());
      return 2;
    }
    std::printf("%s\n", t->c_str());
    return 0;
  }
  return Serve(std::move(config));
}

}  // namespace
}  // namespace presenced::server

int main(int argc, char** argv) { return presenced::server::Main(argc, argv); }
