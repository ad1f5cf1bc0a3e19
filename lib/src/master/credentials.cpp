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
        return std::nullopt;
    }
    const bool current =
        crypto::constant_time_equal(proof, protocol::proof(credential.secret, nonce));
    const bool previous =
        !credential.previous.empty() &&
        crypto::constant_time_equal(proof, protocol::proof(credential.previous, nonce));
    if (!current && !previous) {
        return std::nullopt;
    }
    // Both sides now derive the next secret from the one just proven (it is never sent). A used
    // one-time token does not stay valid as the previous secret.
    const std::string used = current ? credential.secret : credential.previous;
    auto next = protocol::next_secret(used, nonce);
    (void)log::add_secret(next);
    if (current) {
        credential.previous = credential.expires ? std::string() : credential.secret;
    }
    credential.secret = std::move(next);
    credential.expires.reset();
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
        latent_.emplace(issued.name,
                        Latent{worker_class, ec2->max_builds, *token, {}, issued.expires});
    }
    log::info(
        "one-time token issued for worker {} (valid for {} s)", issued.name, lifetime.count());
    return issued;
}

void Credentials::revoke(const std::string& name) {
    const std::lock_guard lock(mutex_);
    latent_.erase(name);
}

} // namespace ci::master
