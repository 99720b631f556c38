// Private to src/net: the Reactor over an Asio executor (the work loop's, or an EventLoop's).
#pragma once

#include <boost/asio.hpp>
#include <memory>

#include "common/reactor.h"

namespace presenced::net {

class AsioReactor final : public Reactor {
 public:
  // Every descriptor, timer and posted task runs on `executor`: one thread's io_context, or a
  // strand (then the callbacks never run concurrently).
  explicit AsioReactor(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}
  std::unique_ptr<FdWatch> Watch(int fd, FdCallbacks callbacks) override;
  std::unique_ptr<Timer> MakeTimer(std::function<void()> fire) override;
  void Post(std::function<void()> task) override;

 private:
  boost::asio::any_io_executor executor_;
};

}  // namespace presenced::net
