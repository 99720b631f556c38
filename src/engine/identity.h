// Identity: the (clientId, connectionId) pair of a connection, shared by reference between the
// connection and the events it caused, so an event outlives its connection without copying
// strings. Engine-internal; not thread-safe (the count is plain).
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace presenced::engine {

// The one user every observer connection belongs to (an operator's tool connected with the API
// key: presencectl watch, the dashboard). It subscribes and reads like any connection, but it is
// nobody: not in `who`, not counted in user_count(), no online/offline of its own, no lastSeen.
// Tokens may not name it (the protocol refuses a `sub` starting with "presenced:").
inline constexpr std::string_view kObserverClientId = "presenced:observer";

struct Identity {
  std::string client_id;
  std::string connection_id;
  std::string device;
  unsigned refs = 0;
};

// An owning pointer to an Identity (intrusive count, 8 bytes).
class IdentityRef {
 public:
  IdentityRef() = default;
  explicit IdentityRef(Identity* p) : p_(p) {
    if (p_) ++p_->refs;
  }
  IdentityRef(const IdentityRef& o) : IdentityRef(o.p_) {}
  IdentityRef(IdentityRef&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  IdentityRef& operator=(IdentityRef o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~IdentityRef() {
    if (p_ && --p_->refs == 0) delete p_;
  }
  static IdentityRef Make(std::string client_id, std::string connection_id, std::string device) {
    return IdentityRef(
        new Identity{std::move(client_id), std::move(connection_id), std::move(device), 0});
  }
  const Identity* operator->() const { return p_; }
  const Identity& operator*() const { return *p_; }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  Identity* p_ = nullptr;
};

}  // namespace presenced::engine
