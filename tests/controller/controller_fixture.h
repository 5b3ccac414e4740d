// A controller in process for tests: a real SQLite store in a temporary
// directory, a FakeClock, no loop thread (the test calls Tick()), nodes
// registered through the API. Shared by controller_test and endpoints_test.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "controller/controller.h"
#include "gtest/gtest.h"

namespace meridian::controller {

class ControllerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("ctl-", ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                        "-", ::getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    Open();
  }
  void TearDown() override {
    ctl_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  // Opens the store and starts the controller on it (again after a reset).
  void Open() {
    store::StoreOptions so;
    so.path = dir_ + "/state.db";
    store_ = *store::Store::Open(so);
    ControllerOptions o;
    o.start_loop = false;
    o.heartbeat_timeout_s = 5;
    o.address = "127.0.0.1:7000";
    ctl_ = std::make_unique<Controller>(o, store_.get(), &clock_);
    ASSERT_TRUE(ctl_->Start().ok());
  }
  // Everything enqueued so far is durable.
  void Sync() { ASSERT_TRUE(store_->Write(store::Batch()).ok()); }

  void AddNode(const std::string& name, const std::string& region, int64_t cpu_milli = 2000,
               const std::string& zone = "") {
    v1::Node n;
    n.set_name(name);
    n.set_region(region);
    n.set_zone(zone);
    n.set_cpu_milli(cpu_milli);
    n.set_memory_mib(4096);
    n.set_address(absl::StrCat("127.0.0.1:", 9000 + nodes_++));
    ASSERT_TRUE(ctl_->Register(n).ok());
  }

  std::string dir_;
  FakeClock clock_{1000};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Controller> ctl_;
  int nodes_ = 0;
};

}  // namespace meridian::controller
