// SameSecret: the token comparison of the controller's RPCs and the gateway.
#include "core/secret.h"

#include "gtest/gtest.h"

namespace meridian {
namespace {

TEST(SameSecretTest, OnlyTheExactValueMatches) {
  EXPECT_TRUE(SameSecret("Bearer s3cret", "Bearer s3cret"));
  EXPECT_FALSE(SameSecret("Bearer s3creT", "Bearer s3cret"));  // last byte
  EXPECT_FALSE(SameSecret("bearer s3cret", "Bearer s3cret"));  // first byte
  EXPECT_FALSE(SameSecret("Bearer s3cre", "Bearer s3cret"));   // a prefix
  EXPECT_FALSE(SameSecret("Bearer s3crets", "Bearer s3cret"));  // longer
  // A value that repeats the expected one is longer, not equal.
  EXPECT_FALSE(SameSecret("abab", "ab"));
  EXPECT_FALSE(SameSecret("", "Bearer s3cret"));
  // Nothing matches an empty expected secret, not even an empty one.
  EXPECT_FALSE(SameSecret("", ""));
  EXPECT_FALSE(SameSecret("x", ""));
}

}  // namespace
}  // namespace meridian
