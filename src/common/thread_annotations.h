// Clang thread-safety annotations (-Wthread-safety) and a Mutex they understand, after leveldb's
// port/thread_annotations.h and port::Mutex. libstdc++'s std::mutex carries no annotations, so
// every mutex in presenced is a presenced::Mutex: clang then checks at compile time that each
// GUARDED_BY field is touched only with its mutex held. Other compilers ignore the annotations.
//
// `make thread-safety` builds everything with clang and -Wthread-safety -Werror (CI runs it).
#pragma once

#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define PRESENCED_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define PRESENCED_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) PRESENCED_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY PRESENCED_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) PRESENCED_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) PRESENCED_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRE(...) PRESENCED_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) PRESENCED_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) PRESENCED_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define EXCLUSIVE_LOCKS_REQUIRED(...) PRESENCED_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define LOCKS_EXCLUDED(...) PRESENCED_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ASSERT_EXCLUSIVE_LOCK(...) PRESENCED_THREAD_ANNOTATION(assert_capability(__VA_ARGS__))
#define NO_THREAD_SAFETY_ANALYSIS PRESENCED_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace presenced {

// A std::mutex the analysis can see. BasicLockable, so CondVar (std::condition_variable_any)
// waits on it directly.
class CAPABILITY("mutex") Mutex {
 public:
  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }
  bool try_lock() TRY_ACQUIRE(true) { return mu_.try_lock(); }
  // For the analysis: the caller holds the lock (inside a condition variable's predicate).
  void AssertHeld() const ASSERT_EXCLUSIVE_LOCK() {}

 private:
  std::mutex mu_;
};

// Holds a Mutex for its scope.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() RELEASE() { mu_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

// Waits on a Mutex the caller holds (through a MutexLock): wait(mu, pred) and friends.
using CondVar = std::condition_variable_any;

}  // namespace presenced
