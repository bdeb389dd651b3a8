// FileTokenStore under two writers in two processes (the daemon and
// `authorize`): each rotates its own mailbox's refresh token many times at
// once with the other; with the store's flock no rotation is lost.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "oauth/token_store.hpp"

using xo::oauth::FileTokenStore;
using xo::oauth::StoredGrant;

namespace {

constexpr int kRotations = 40;

void rotate(const std::string& path, const std::string& mailbox) {
    FileTokenStore store(path);
    for (int i = 1; i <= kRotations; ++i) {
        StoredGrant g;
        g.refresh_token = mailbox + "-r" + std::to_string(i);
        g.updated = i;
        store.put("conn", mailbox, g);
    }
}

}  // namespace

TEST(TokenStore, TwoProcessesRotatingLoseNothing) {
    auto dir = std::filesystem::temp_directory_path() / ("xo-store-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::string path = (dir / "tokens.store").string();
    { FileTokenStore init(path); }   // creates the key file before the writers race

    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        int rc = 0;
        try {
            rotate(path, "child@contoso.test");
        } catch (...) {
            rc = 1;
        }
        ::_exit(rc);
    }
    rotate(path, "parent@contoso.test");
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    FileTokenStore check(path);
    auto all = check.all();
    ASSERT_EQ(all.size(), 2u);
    for (const char* m : {"child@contoso.test", "parent@contoso.test"}) {
        auto g = check.get("conn", m);
        ASSERT_TRUE(g) << m << " lost";
        EXPECT_EQ(g->refresh_token, std::string(m) + "-r" + std::to_string(kRotations)) << m;
    }
    std::filesystem::remove_all(dir);
}
