#pragma once

// Who may log in as a worker: static workers with their passwords (slaves.<class>.passwords),
// and latent (EC2) workers with a one-time token, then the secret each login derives for the
// next one (protocol::next_secret). Of a latent worker's token or secret it keeps only the key
// (protocol::secret_key, a SHA-256), and, once persist_to() gave it a store, writes each key
// there before the login that derived it is answered: a master restarted after kill -9 lets the
// workers of the instances it adopts log in again. Owns its lock; every member is thread-safe.

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include <ci/config/config.h>
#include <ci/core/clock.h>
#include <ci/master/master.h>
#include <ci/store/store.h>

namespace ci::master {

/// A worker whose proof was accepted.
struct Login {
    std::string worker_class;
    int max_builds = 1;
    bool rotate = false; ///< a latent worker: both sides now derive its next secret
};

class Credentials {
public:
    /// Static workers from `config` (`<class>/<i>` for each password). `clock` must outlive it.
    Credentials(const config::Config& config, const Clock& clock);

    /// Checks a Hello's proof of `name` against `nonce`. nullopt when refused: an unknown name
    /// costs as much work as a wrong secret, so a refusal's timing does not tell which names
    /// exist. A latent worker's secret rotates with each login; the previous one stays valid
    /// until the new one is used (the welcome that told the worker to rotate may be lost).
    [[nodiscard]] std::optional<Login>
    login(const std::string& name, const std::string& proof, const std::string& nonce);

    /// A one-time token for a new worker of the EC2 class `worker_class` (see
    /// Master::issue_worker_token).
    [[nodiscard]] Result<WorkerToken> issue_token(const std::string& worker_class,
                                                  std::string name_suffix,
                                                  std::chrono::seconds lifetime);

    /// Forgets the latent worker `name` (its instance ended): it can no longer log in. Static
    /// workers are not affected. Idempotent.
    void revoke(const std::string& name);

    /// From now on each latent worker's key is written to `store` (issued, rotated, revoked),
    /// synchronously, under the lock; first the keys a previous run stored are taken back, but
    /// only those of `keep` (the workers of the instances the EC2 pool adopts): the others are
    /// deleted. Fails with the store's error (then nothing was taken back).
    [[nodiscard]] Status persist_to(std::unique_ptr<store::Store> store,
                                    const std::set<std::string>& keep);
    /// Whether the latent worker `name` still has its one-time token unused (never logged in);
    /// nullopt when it has no credentials.
    [[nodiscard]] std::optional<bool> token_unused(const std::string& name);

private:
    struct Static {
        std::string worker_class;
        std::string password;
        int max_builds = 1;
    };
    struct Latent {
        std::string worker_class;
        int max_builds = 1;
        std::string key;                 ///< protocol::secret_key of its current secret
        std::string previous;            ///< the key before, valid until `key` is used
        std::optional<WallTime> expires; ///< set while the one-time token is unused
    };

    std::optional<Login> latent_login_locked(const std::string& name,
                                             const std::string& proof,
                                             const std::string& nonce);
    // Writes (or, for nullptr, deletes) `name`'s key in the store, when there is one.
    Status save_locked(const std::string& name, const Latent* latent);

    const config::Config& config_;
    const Clock& clock_;
    std::map<std::string, Static> static_; // immutable after construction
    std::mutex mutex_;
    std::map<std::string, Latent> latent_;
    std::unique_ptr<store::Store> store_; // null until persist_to()
};

} // namespace ci::master
