#include "master/credentials.h"

#include <fmt/format.h>

#include <ci/core/crypto.h>
#include <ci/core/log.h>

#include "master/protocol.h"

namespace ci::master {

Credentials::Credentials(const config::Config& config, const Clock& clock)
    : config_(config), clock_(clock) {
    for (const auto& [class_name, worker_class] : config.slaves) {
        if (const auto* fixed = std::get_if<config::StaticWorkers>(&worker_class)) {
            for (std::size_t i = 0; i < fixed->passwords.size(); ++i) {
                static_.emplace(fmt::format("{}/{}", class_name, i),
                                Static{class_name, fixed->passwords[i], fixed->max_builds});
            }
        }
    }
}

std::optional<Login>
Credentials::login(const std::string& name, const std::string& proof, const std::string& nonce) {
    if (const auto found = static_.find(name); found != static_.end()) {
        if (!crypto::constant_time_equal(proof, protocol::proof(found->second.password, nonce))) {
            return std::nullopt;
        }
        return Login{found->second.worker_class, found->second.max_builds, false};
    }
    const std::lock_guard lock(mutex_);
    return latent_login_locked(name, proof, nonce);
}

std::optional<Login> Credentials::latent_login_locked(const std::string& name,
                                                      const std::string& proof,
                                                      const std::string& nonce) {
    const auto found = latent_.find(name);
    if (found == latent_.end()) {
        // As much work as a wrong secret.
        (void)crypto::constant_time_equal(proof, protocol::proof(nonce, nonce));
        return std::nullopt;
    }
    auto& credential = found->second;
    if (credential.expires && *credential.expires < clock_.now()) {
        log::warn("worker {}: its one-time token expired unused", name);
        latent_.erase(found);
        (void)save_locked(name, nullptr);
        return std::nullopt;
    }
    const bool current =
        crypto::constant_time_equal(proof, protocol::proof_with_key(credential.key, nonce));
    const bool previous =
        !credential.previous.empty() &&
        crypto::constant_time_equal(proof, protocol::proof_with_key(credential.previous, nonce));
    if (!current && !previous) {
        return std::nullopt;
    }
    // Both sides now derive the next secret from the one just proven (it is never sent); the
    // master keeps its key. A used one-time token does not stay valid as the previous secret.
    Latent next = credential;
    const std::string& used = current ? credential.key : credential.previous;
    auto next_secret = protocol::next_secret_with_key(used, nonce);
    (void)log::add_secret(next_secret);
    if (current) {
        next.previous = credential.expires ? std::string() : credential.key;
    }
    next.key = protocol::secret_key(next_secret);
    next.expires.reset();
    // Stored before the welcome tells the worker to rotate: a master killed after it answers
    // knows the key the worker will prove next (and the one before, should the welcome be lost).
    if (auto saved = save_locked(name, &next); !saved) {
        log::error("worker {}: its next key could not be stored ({}); refused, it tries again",
                   name,
                   saved.error().message);
        return std::nullopt;
    }
    credential = std::move(next);
    return Login{credential.worker_class, credential.max_builds, true};
}

Result<WorkerToken> Credentials::issue_token(const std::string& worker_class,
                                             std::string name_suffix,
                                             std::chrono::seconds lifetime) {
    const auto found = config_.slaves.find(worker_class);
    const auto* ec2 =
        found == config_.slaves.end() ? nullptr : std::get_if<config::Ec2Workers>(&found->second);
    if (ec2 == nullptr) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("\"{}\" is not an EC2 worker class of the config (slaves.<class> "
                                "with ami); static workers log in with their passwords",
                                worker_class));
    }
    auto token = crypto::random_token(32);
    if (!token) {
        return fail(token.error());
    }
    if (name_suffix.empty()) {
        auto random = crypto::random_token(4);
        if (!random) {
            return fail(random.error());
        }
        name_suffix = std::move(*random);
    }
    if (name_suffix.find('/') != std::string::npos) {
        return fail(ErrorCode::InvalidArgument, "a worker name suffix has no '/'");
    }
    (void)log::add_secret(*token);
    WorkerToken issued{
        fmt::format("{}/{}", worker_class, name_suffix), *token, clock_.now() + lifetime};
    {
        const std::lock_guard lock(mutex_);
        if (latent_.contains(issued.name) || static_.contains(issued.name)) {
            return fail(ErrorCode::Conflict,
                        fmt::format("worker {} already has credentials", issued.name));
        }
        Latent latent{
            worker_class, ec2->max_builds, protocol::secret_key(*token), {}, issued.expires};
        if (auto saved = save_locked(issued.name, &latent); !saved) {
            return fail(saved.error());
        }
        latent_.emplace(issued.name, std::move(latent));
    }
    log::info(
        "one-time token issued for worker {} (valid for {} s)", issued.name, lifetime.count());
    return issued;
}

void Credentials::revoke(const std::string& name) {
    const std::lock_guard lock(mutex_);
    if (latent_.erase(name) > 0) {
        if (auto deleted = save_locked(name, nullptr); !deleted) {
            log::error("worker {}: deleting its stored key: {}", name, deleted.error().message);
        }
    }
}

Status Credentials::save_locked(const std::string& name, const Latent* latent) {
    if (!store_) {
        return {};
    }
    if (latent == nullptr) {
        return store_->delete_worker_key(name);
    }
    return store_->save_worker_key(store::WorkerKey{
        name, latent->worker_class, latent->key, latent->previous, latent->expires});
}

Status Credentials::persist_to(std::unique_ptr<store::Store> store,
                               const std::set<std::string>& keep) {
    auto stored = store->worker_keys();
    if (!stored) {
        return fail(stored.error());
    }
    const std::lock_guard lock(mutex_);
    std::map<std::string, Latent> restored;
    for (const auto& record : *stored) {
        const auto found = config_.slaves.find(record.worker_class);
        const auto* ec2 = found == config_.slaves.end()
                              ? nullptr
                              : std::get_if<config::Ec2Workers>(&found->second);
        if (latent_.contains(record.worker)) {
            continue; // issued by this run (written again at its next change)
        }
        if (!keep.contains(record.worker) || ec2 == nullptr || static_.contains(record.worker)) {
            if (auto deleted = store->delete_worker_key(record.worker); !deleted) {
                return deleted;
            }
            continue;
        }
        restored.emplace(record.worker,
                         Latent{record.worker_class,
                                ec2->max_builds,
                                record.key,
                                record.previous_key,
                                record.token_expires});
    }
    latent_.merge(restored);
    store_ = std::move(store);
    return {};
}

std::optional<bool> Credentials::token_unused(const std::string& name) {
    const std::lock_guard lock(mutex_);
    const auto found = latent_.find(name);
    if (found == latent_.end()) {
        return std::nullopt;
    }
    return found->second.expires.has_value();
}

} // namespace ci::master
