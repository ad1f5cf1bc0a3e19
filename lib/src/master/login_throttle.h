#pragma once

// Wrong proofs on the worker port, by address: each one from an address makes its next try
// wait longer (a delay that doubles, up to a cap), and they are logged once per interval with a
// count rather than once per try. Pure: the caller passes the time; no lock (the worker server
// uses it on its one I/O thread).

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>

namespace ci::master {

class LoginThrottle {
public:
    using Clock = std::chrono::steady_clock;

    struct Limits {
        std::chrono::milliseconds first_delay{250}; ///< after the first wrong proof
        std::chrono::milliseconds max_delay{10000}; ///< the delay stops doubling here
        /// An address without a wrong proof for this long starts again from no delay.
        std::chrono::seconds forget_after{600};
        std::chrono::seconds log_interval{60}; ///< at most one log line per address per interval
        std::size_t max_addresses = 10000;     ///< the oldest are forgotten beyond this
    };

    LoginThrottle() = default;
    explicit LoginThrottle(Limits limits) : limits_(limits) {}

    /// How long a hello from `address` waits before its proof is checked.
    [[nodiscard]] std::chrono::milliseconds delay(const std::string& address,
                                                  Clock::time_point now) const;

    /// Records a wrong proof from `address` (for worker `name`). Returns the line to log, when
    /// one is due: the first wrong proof of an interval, with how many were not logged before.
    [[nodiscard]] std::optional<std::string>
    failed(const std::string& address, const std::string& name, Clock::time_point now);

    /// A good proof from `address`: its delay is gone.
    void succeeded(const std::string& address);

    /// Addresses remembered (tests).
    [[nodiscard]] std::size_t size() const { return addresses_.size(); }

private:
    struct Address {
        int failures = 0;
        Clock::time_point last{};
        std::optional<Clock::time_point> logged; ///< when a line was last logged
        int unlogged = 0;                        ///< wrong proofs since then, not logged
    };
    Limits limits_;
    std::map<std::string, Address> addresses_;
};

} // namespace ci::master
