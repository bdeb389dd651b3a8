// xo-authbench: the local credential check alone, in process: warm (a password
// verified before: an HMAC and a constant-time compare) and cold (scrypt).
#include <chrono>
#include <iostream>

#include "auth/authenticator.hpp"
#include "auth/password.hpp"

int main() {
    using clock = std::chrono::steady_clock;
    xo::config::Config cfg;
    for (int i = 0; i < 20; ++i)
        cfg.users.push_back({"user" + std::to_string(i), xo::auth::hash_password("pw" + std::to_string(i)), "c",
                             "u@example.com", 0});
    xo::auth::Authenticator a(cfg);
    auto t0 = clock::now();
    for (int i = 0; i < 20; ++i) a.check("user" + std::to_string(i), "pw" + std::to_string(i));
    double cold = 20 / std::chrono::duration<double>(clock::now() - t0).count();
    int n = 0;
    t0 = clock::now();
    while (clock::now() - t0 < std::chrono::seconds(1))
        for (int i = 0; i < 100; ++i, ++n) a.check("user" + std::to_string(i % 20), "pw" + std::to_string(i % 20));
    double warm = n / std::chrono::duration<double>(clock::now() - t0).count();
    std::cout << "{\"warm_per_second\": " << warm << ", \"cold_per_second\": " << cold << "}\n";
}
