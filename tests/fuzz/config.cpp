// The YAML configuration loader from a string (config::load_config_string).
// Checks: it never throws, and every diagnostic names the file and a line.
#include "config/config.hpp"
#include "fuzz_util.hpp"

using xo::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    std::string yaml(reinterpret_cast<const char*>(data), size);
    auto r = xo::config::load_config_string(yaml, "fuzz.yaml");
    for (const auto& d : r.diagnostics) check(d.text().rfind("fuzz.yaml", 0) == 0, "diagnostic without the file name");
    return 0;
}
