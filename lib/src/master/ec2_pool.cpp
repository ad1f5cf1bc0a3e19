#include "master/ec2_pool.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <ci/aws/credentials.h>
#include <ci/core/crypto.h>
#include <ci/core/log.h>
#include <ci/http/client.h>

#include "master/dispatch.h"

namespace ci::master {

namespace {

class ClientApi final : public Ec2Api {
public:
    explicit ClientApi(std::unique_ptr<aws::Ec2Client> client) : client_(std::move(client)) {}
    Result<std::vector<aws::Instance>> run_instances(const aws::RunInstancesInput& input) override {
        return client_->run_instances(input);
    }
    Result<std::vector<aws::Instance>>
    describe_instances(const std::vector<aws::Filter>& filters) override {
        return client_->describe_instances(filters);
    }
    Status terminate_instances(const std::vector<std::string>& ids) override {
        return status_of(client_->terminate_instances(ids));
    }
    Status stop_instances(const std::vector<std::string>& ids) override {
        return status_of(client_->stop_instances(ids));
    }
    Status start_instances(const std::vector<std::string>& ids) override {
        return status_of(client_->start_instances(ids));
    }
    Result<std::vector<aws::Image>>
    describe_images(const std::vector<aws::Filter>& filters) override {
        return client_->describe_images({"self"}, filters);
    }

private:
    static Status status_of(const Result<std::vector<aws::StateChange>>& result) {
        if (!result) {
            return fail(result.error());
        }
        return {};
    }
    std::unique_ptr<aws::Ec2Client> client_;
};

// How a failed RunInstances is taken: nothing launched (and why), or maybe something.
LaunchFailure classify(const Error& error) {
    if (error.code != ErrorCode::AwsService || !error.native || *error.native >= 500) {
        return LaunchFailure::Unknown; // no answer, or a server error: it may have launched
    }
    const auto& text = error.message;
    const auto has = [&](std::string_view code) { return text.find(code) != std::string::npos; };
    if (has("RequestLimitExceeded") || has("Throttling")) {
        return LaunchFailure::Throttled;
    }
    if (has("InsufficientInstanceCapacity") || has("InsufficientCapacity") || has("Spot")) {
        return LaunchFailure::Capacity;
    }
    return LaunchFailure::Refused;
}

store::LatentInstance to_record(const PoolInstance& instance) {
    store::LatentInstance record;
    record.instance_id = instance.instance_id;
    record.worker_class = instance.worker_class;
    record.client_token = instance.client_token;
    record.state = to_string(instance.state);
    record.launched = instance.launched;
    record.terminated = instance.ended_at;
    record.worker = instance.worker;
    record.instance_type = instance.instance_type;
    record.market = to_string(instance.market);
    return record;
}

PoolInstance from_record(const store::LatentInstance& record) {
    PoolInstance instance;
    instance.worker = record.worker;
    instance.worker_class = record.worker_class;
    instance.client_token = record.client_token;
    instance.instance_id = record.instance_id;
    instance.instance_type = record.instance_type;
    instance.state = instance_state_from(record.state).value_or(InstanceState::Running);
    instance.market = record.market == "spot" ? Market::Spot : Market::OnDemand;
    instance.launched = record.launched;
    instance.ended_at = record.terminated;
    return instance;
}

InstanceView to_view(const PoolInstance& instance) {
    return InstanceView{instance.worker,
                        instance.worker_class,
                        instance.instance_id,
                        instance.instance_type,
                        to_string(instance.market),
                        to_string(instance.state),
                        instance.launched};
}

// What reconcile lists: this master's instances that are not terminated. EC2 keeps listing a
// terminated instance for about an hour, and a busy master would page through all of them at
// each reconcile (moto keeps them for ever); one the pool knows that is no longer listed has
// ended for the pool all the same (LatentPool::reconcile).
std::vector<aws::Filter> reconcile_filters(const std::string& master_host) {
    return {
        {"tag:ci:master", {master_host}},
        {"instance-state-name", {"pending", "running", "shutting-down", "stopping", "stopped"}}};
}

// A price as EC2 takes it: "0.1", not "0.100000".
std::string price_text(double price) {
    return fmt::format("{}", price);
}

} // namespace

std::shared_ptr<Ec2Api> make_ec2_api(const config::Config& config,
                                     const std::string& region,
                                     const Clock& clock,
                                     std::chrono::milliseconds timeout) {
    http::ClientOptions options;
    options.timeout = timeout;
    options.connect_timeout = std::min(options.connect_timeout, timeout);
    options.retry = aws::aws_retry_policy();
    std::shared_ptr<http::Client> http = http::make_client(options);
    aws::CredentialsChainOptions chain;
    if (!config.aws.identifier.empty()) {
        chain.explicit_credentials =
            aws::Credentials{config.aws.identifier, config.aws.secret_identifier, {}};
    }
    chain.http = http;
    chain.clock = &clock;
    auto credentials = aws::make_credentials_chain(std::move(chain));
    aws::Ec2Endpoint endpoint{region, config::ec2_endpoint_url(config.aws)};
    return std::make_shared<ClientApi>(
        std::make_unique<aws::Ec2Client>(http, std::move(credentials), clock, endpoint));
}

Result<std::unique_ptr<Ec2Pool>> Ec2Pool::create(Parts parts) {
    std::unique_ptr<Ec2Pool> pool(new Ec2Pool(std::move(parts)));
    auto opened = store::open_sqlite(pool->p_.store_path);
    if (!opened) {
        return fail(opened.error());
    }
    pool->store_ = std::move(*opened);
    auto stored = pool->store_->live_instances();
    if (!stored) {
        return fail(stored.error());
    }
    // The workers of the instances that may still be adopted keep their stored keys; the
    // others' keys are deleted. The credentials write every key through their own connection.
    std::set<std::string> adoptable;
    for (const auto& record : *stored) {
        const auto state = instance_state_from(record.state);
        // A stopped instance's worker logs in again when it is started: its key stays.
        if (state == InstanceState::Launching || state == InstanceState::Pending ||
            state == InstanceState::Running || state == InstanceState::Stopping ||
            state == InstanceState::Stopped) {
            adoptable.insert(record.worker);
        }
    }
    auto keys = store::open_sqlite(pool->p_.store_path);
    if (!keys) {
        return fail(keys.error());
    }
    if (auto persisted = pool->p_.credentials.persist_to(std::move(*keys), adoptable); !persisted) {
        return fail(persisted.error());
    }
    std::vector<PoolInstance> restored;
    std::size_t adopted = 0;
    for (const auto& record : *stored) {
        auto instance = from_record(record);
        const auto unused = pool->p_.credentials.token_unused(instance.worker);
        instance.orphaned = !unused.has_value();
        instance.connected_once = unused.has_value() && !*unused;
        adopted += instance.orphaned ? 0 : 1;
        restored.push_back(std::move(instance));
    }
    if (!restored.empty()) {
        log::warn("ec2: {} instance(s) stored by the previous run of the master: {} adopted "
                  "(their workers may log in again), {} terminated (their workers cannot)",
                  restored.size(),
                  adopted,
                  restored.size() - adopted);
    }
    pool->pool_.restore(std::move(restored), pool->p_.clock.now());
    pool->publish();
    return pool;
}

Ec2Pool::Ec2Pool(Parts parts)
    : p_(std::move(parts)),
      pool_(pool_classes(p_.config),
            PoolRandom{[] { return crypto::random_token(8).value_or(""); },
                       [] {
                           const auto bytes = crypto::random_token(4);
                           const auto value = std::stoul(bytes.value_or("0"), nullptr, 16);
                           return static_cast<double>(value) / 4294967296.0;
                       }}) {}

Ec2Pool::~Ec2Pool() {
    stop();
}

void Ec2Pool::start() {
    thread_ = std::jthread([this](const std::stop_token& stop) { run(stop); });
}

void Ec2Pool::wake() {
    {
        const std::lock_guard lock(mutex_);
        wanted_ = true;
    }
    wake_.notify_one();
}

void Ec2Pool::stop() {
    {
        const std::lock_guard lock(mutex_);
        if (stopped_) {
            return;
        }
        stopped_ = true;
    }
    if (thread_.joinable()) {
        thread_.request_stop();
        wake_.notify_one();
        thread_.join();
        // A launch whose answer was lost has no instance id yet: one more listing finds it by
        // its tag, so that it ends with the others instead of waiting for the next start.
        if (std::ranges::any_of(pool_.instances(), [](const PoolInstance& instance) {
                return instance.state == InstanceState::Launching && instance.instance_id.empty();
            })) {
            reconcile();
        }
        // A graceful stop ends the instances with the master (a crash leaves them for the next
        // start to adopt).
        std::vector<std::string> ids;
        for (const auto& instance : pool_.instances()) {
            if (!instance.instance_id.empty() && instance.state != InstanceState::Terminated &&
                instance.state != InstanceState::Terminating) {
                ids.push_back(instance.instance_id);
            }
        }
        if (!ids.empty()) {
            log::info("ec2: terminating {} instance(s) as the master stops", ids.size());
            end_instances(ids, "the master stops", false);
            persist();
        }
    }
}

void Ec2Pool::run(const std::stop_token& stop) {
    step(true);
    std::unique_lock lock(mutex_);
    while (!stop.stop_requested()) {
        wake_.wait_for(lock, stop, std::chrono::seconds(1), [&] { return wanted_; });
        if (stop.stop_requested()) {
            return;
        }
        wanted_ = false;
        lock.unlock();
        step(false);
        lock.lock();
    }
}

void Ec2Pool::step(bool reconcile_now) {
    const auto now = p_.clock.now();
    if (reconcile_now || !next_reconcile_ || now >= *next_reconcile_) {
        next_reconcile_ = now + p_.reconcile_every;
        reconcile();
    }
    perform(pool_.tick(view(), p_.clock.now()));
    persist();
    publish();
}

PoolView Ec2Pool::view() {
    PoolView view;
    const auto loads = p_.workers.loads();
    for (const auto& load : loads) {
        view.connected[load.name] = load.running;
    }
    if (held_) {
        return view;
    }
    auto pending = store_->requests(store::RequestState::Pending);
    if (!pending) {
        log::error("ec2: reading the pending requests: {}", pending.error().message);
        return view;
    }
    std::vector<QueuedRequest> queue;
    for (const auto& request : *pending) {
        queue.push_back(QueuedRequest{request.id, request.request.builder});
    }
    std::set<std::int64_t> assignable;
    for (const auto& assignment : assign(queue, loads, {}, p_.config)) {
        assignable.insert(assignment.request);
    }
    for (const auto& request : queue) {
        if (assignable.contains(request.id)) {
            continue;
        }
        const auto builder = p_.config.builders.find(request.builder);
        if (builder == p_.config.builders.end()) {
            continue;
        }
        // The first EC2 class of the builder's workers is the one that grows.
        for (const auto& worker_class : builder->second.workers) {
            const auto found = p_.config.slaves.find(worker_class);
            if (found != p_.config.slaves.end() &&
                std::holds_alternative<config::Ec2Workers>(found->second)) {
                ++view.waiting[worker_class];
                break;
            }
        }
    }
    return view;
}

std::string Ec2Pool::region_of(const std::string& worker_class) const {
    const auto found = p_.config.slaves.find(worker_class);
    if (found != p_.config.slaves.end()) {
        if (const auto* ec2 = std::get_if<config::Ec2Workers>(&found->second);
            ec2 != nullptr && !ec2->region.empty()) {
            return ec2->region;
        }
    }
    return p_.config.aws.region;
}

std::shared_ptr<Ec2Api> Ec2Pool::api_for(const std::string& worker_class) {
    const auto region = region_of(worker_class);
    auto& api = apis_[region];
    if (!api) {
        api = p_.api ? p_.api(region) : make_ec2_api(p_.config, region, p_.clock, p_.timeout);
    }
    return api;
}

void Ec2Pool::reconcile() {
    std::set<std::string> regions{p_.config.aws.region};
    for (const auto& [name, settings] : p_.config.slaves) {
        if (std::holds_alternative<config::Ec2Workers>(settings)) {
            regions.insert(region_of(name));
        }
    }
    std::vector<ObservedInstance> observed;
    for (const auto& region : regions) {
        auto& api = apis_[region];
        if (!api) {
            api = p_.api ? p_.api(region) : make_ec2_api(p_.config, region, p_.clock, p_.timeout);
        }
        auto listed = api->describe_instances(reconcile_filters(p_.config.buildmaster.host));
        if (!listed) {
            // Nothing is concluded from a failed listing; the next reconcile tries again.
            alert(fmt::format("reconcile: listing the instances of region {}: {}",
                              region,
                              listed.error().message));
            next_reconcile_ = p_.clock.now() + std::chrono::seconds(30);
            return;
        }
        for (const auto& instance : *listed) {
            const auto tag = [&](const char* key) {
                const auto found = instance.tags.find(key);
                return found == instance.tags.end() ? std::string() : found->second;
            };
            observed.push_back(ObservedInstance{instance.instance_id,
                                                instance.state,
                                                tag("ci:class"),
                                                tag("ci:worker"),
                                                instance.lifecycle == "spot"});
        }
    }
    perform(pool_.reconcile(observed, p_.clock.now()));
    persist();
}

void Ec2Pool::perform(const std::vector<PoolAction>& actions) {
    for (const auto& action : actions) {
        if (const auto* launch_action = std::get_if<LaunchAction>(&action)) {
            launch(*launch_action);
        } else if (const auto* end = std::get_if<TerminateAction>(&action)) {
            log::info("ec2: terminating {}: {}", fmt::join(end->instance_ids, ", "), end->reason);
            // The end is stored (terminating) before the call: a crash between the two is
            // verified by the next start's reconcile.
            persist();
            end_instances(end->instance_ids, end->reason, false);
        } else if (const auto* stop_action = std::get_if<StopAction>(&action)) {
            log::info("ec2: stopping {} (worker {}): idle",
                      stop_action->instance_id,
                      stop_action->worker);
            persist();
            end_instances({stop_action->instance_id}, "idle", true);
        } else if (const auto* start_action = std::get_if<StartAction>(&action)) {
            log::info("ec2: starting {} again (worker {})",
                      start_action->instance_id,
                      start_action->worker);
            persist();
            const auto started =
                api_for(start_action->worker.substr(0, start_action->worker.rfind('/')))
                    ->start_instances({start_action->instance_id});
            if (!started) {
                perform(pool_.start_failed(start_action->instance_id,
                                           classify(started.error()),
                                           started.error().message,
                                           p_.clock.now()));
            }
        } else if (const auto* drain = std::get_if<DrainAction>(&action)) {
            p_.workers.drain(drain->worker);
        } else if (const auto* lost_action = std::get_if<LostAction>(&action)) {
            lost(*lost_action);
        } else if (const auto* alert_action = std::get_if<AlertAction>(&action)) {
            alert(alert_action->message);
        }
    }
}

Result<std::string> Ec2Pool::image_for(const std::string& worker_class) {
    const auto now = p_.clock.now();
    if (const auto cached = images_.find(worker_class); cached != images_.end() &&
                                                        now < cached->second.until &&
                                                        now >= cached->second.until - image_ttl) {
        return cached->second.image_id;
    }
    auto found = look_up_image(worker_class);
    if (found) {
        images_[worker_class] = CachedImage{*found, now + image_ttl};
    }
    return found;
}

Result<std::string> Ec2Pool::look_up_image(const std::string& worker_class) {
    const auto& ec2 = std::get<config::Ec2Workers>(p_.config.slaves.at(worker_class));
    std::vector<aws::Filter> filters{{"tag:base_name", {ec2.ami}}, {"state", {"available"}}};
    for (const auto& [key, value] : p_.config.aws.image_tags) {
        filters.push_back({"tag:" + key, {value}});
    }
    auto images = api_for(worker_class)->describe_images(filters);
    if (!images) {
        return fail(images.error());
    }
    // The newest by its timestamp tag (the image builder's), else by its creation date.
    const aws::Image* newest = nullptr;
    const auto key = [](const aws::Image& image) {
        const auto found = image.tags.find("timestamp");
        return std::make_pair(found == image.tags.end() ? std::string() : found->second,
                              image.creation_date);
    };
    for (const auto& image : *images) {
        if (newest == nullptr || key(*newest) < key(image)) {
            newest = &image;
        }
    }
    if (newest == nullptr) {
        std::string tags;
        for (const auto& [name, value] : p_.config.aws.image_tags) {
            tags += fmt::format(" and tag {}={}", name, value);
        }
        return fail(ErrorCode::NotFound,
                    fmt::format("slaves.{}: no available image owned by this account has tag "
                                "base_name={}{}",
                                worker_class,
                                ec2.ami,
                                tags));
    }
    return newest->image_id;
}

void Ec2Pool::launch(const LaunchAction& action) {
    const auto now = p_.clock.now();
    const auto& ec2 = std::get<config::Ec2Workers>(p_.config.slaves.at(action.worker_class));
    // The intent first: a crash from here on leaves a record that reconcile resolves.
    persist();
    const auto failed = [&](LaunchFailure failure, const std::string& error) {
        perform(pool_.launch_failed(action.worker, failure, error, p_.clock.now()));
        // No answer: the instance may exist and boot with this token; reconcile finds it by its
        // tag, and its worker can still log in. The token goes when the pool ends or forgets
        // the intent (persist).
        if (failure != LaunchFailure::Unknown) {
            p_.credentials.revoke(action.worker);
        }
    };
    const auto* stored = pool_.find_worker(action.worker);
    if (stored == nullptr || saved_versions_[action.client_token] != stored->version) {
        failed(LaunchFailure::Refused, "the launch could not be stored first");
        return;
    }
    auto image = image_for(action.worker_class);
    if (!image) {
        failed(LaunchFailure::Refused, image.error().message);
        return;
    }
    const auto suffix = action.worker.substr(action.worker_class.size() + 1);
    auto token = p_.credentials.issue_token(action.worker_class, suffix, ec2.missing_timeout);
    if (!token) {
        failed(LaunchFailure::Refused, token.error().message);
        return;
    }
    aws::RunInstancesInput input;
    input.image_id = *image;
    input.instance_type = ec2.instance_type;
    input.client_token = action.client_token;
    if (p_.user_data) {
        auto rendered = p_.user_data(action.worker_class, action.worker, token->token);
        if (!rendered) {
            failed(LaunchFailure::Refused, rendered.error().message);
            return;
        }
        input.user_data = std::move(*rendered);
    }
    input.subnet_id = ec2.subnet_id;
    input.security_group_ids = ec2.security_groups;
    input.iam_instance_profile = ec2.iam_instance_profile;
    input.key_name = ec2.key_name;
    if (action.market == Market::Spot && ec2.max_spot_price) {
        input.spot_max_price = price_text(*ec2.max_spot_price);
    }
    input.tags = ec2.tags;
    input.tags["Name"] = "libci-" + action.worker;
    input.tags["ci:master"] = p_.config.buildmaster.host;
    input.tags["ci:class"] = action.worker_class;
    input.tags["ci:worker"] = action.worker;
    log::info("ec2: launching {} ({} {}) for {}",
              action.worker,
              to_string(action.market),
              ec2.instance_type,
              action.worker_class);
    auto launched = api_for(action.worker_class)->run_instances(input);
    if (!launched || launched->empty()) {
        const auto error = launched ? Error{ErrorCode::AwsService,
                                            "RunInstances: no instance in the answer",
                                            std::nullopt}
                                    : launched.error();
        // InvalidAMIID.NotFound, .Unavailable, .Malformed: the cached image is gone (deregistered,
        // or replaced); the next launch looks it up again.
        if (error.message.find("InvalidAMIID") != std::string::npos) {
            images_.erase(action.worker_class);
        }
        failed(classify(error), error.message);
        return;
    }
    const auto& instance = launched->front();
    pool_.launched(action.worker, instance.instance_id, instance.lifecycle == "spot", now);
    persist();
    log::info("ec2: {} is instance {}", action.worker, instance.instance_id);
}

void Ec2Pool::end_instances(const std::vector<std::string>& ids,
                            const std::string& why,
                            bool stop_only) {
    // By region: each class's instances are in its region.
    std::map<std::string, std::vector<std::string>> by_region;
    for (const auto& id : ids) {
        std::string region = p_.config.aws.region;
        for (const auto& instance : pool_.instances()) {
            if (instance.instance_id == id) {
                region = region_of(instance.worker_class);
                // A stopped instance's worker logs in again when it is started: its key stays
                // (in the store too) until the instance is terminated.
                if (!instance.orphaned && !stop_only) {
                    p_.credentials.revoke(instance.worker);
                }
            }
        }
        by_region[region].push_back(id);
    }
    for (const auto& [region, list] : by_region) {
        auto& api = apis_[region];
        if (!api) {
            api = p_.api ? p_.api(region) : make_ec2_api(p_.config, region, p_.clock, p_.timeout);
        }
        const auto done = stop_only ? api->stop_instances(list) : api->terminate_instances(list);
        if (!done) {
            alert(fmt::format("{} {} ({}): {}",
                              stop_only ? "stopping" : "terminating",
                              fmt::join(list, ", "),
                              why,
                              done.error().message));
            perform(pool_.end_failed(list, p_.clock.now()));
        }
    }
}

void Ec2Pool::lost(const LostAction& action) {
    log::warn("ec2: worker {} is lost: {}", action.worker, action.reason);
    p_.credentials.revoke(action.worker);
    // Its connection (if one is left) closes: the coordinator ends its builds as retry.
    if (auto link = p_.workers.link(action.worker)) {
        link->close();
    }
}

void Ec2Pool::alert(const std::string& message) {
    log::error("ec2: {}", message);
    p_.reports.operational(
        report::OpsEvent{report::OpsEvent::Kind::InstanceProblem, "ec2", message});
}

void Ec2Pool::persist() {
    for (const auto& instance : pool_.instances()) {
        auto& saved = saved_versions_[instance.client_token];
        if (saved == instance.version) {
            continue;
        }
        if (auto written = store_->save_instance(to_record(instance)); !written) {
            log::error("ec2: storing instance {}: {}", instance.worker, written.error().message);
            continue;
        }
        saved = instance.version;
    }
    // Terminated ones are stored: they need no more memory, and their workers no token (an
    // intent forgotten after a launch with no answer still had one).
    for (const auto& instance : pool_.instances()) {
        if (instance.state == InstanceState::Terminated &&
            saved_versions_[instance.client_token] == instance.version) {
            saved_versions_.erase(instance.client_token);
            if (!instance.orphaned) {
                p_.credentials.revoke(instance.worker);
            }
        }
    }
    pool_.forget_terminated();
}

void Ec2Pool::publish() {
    std::vector<InstanceView> views;
    for (const auto& instance : pool_.instances()) {
        views.push_back(to_view(instance));
    }
    std::map<std::pair<std::string, std::string>, double> seconds;
    for (const auto& [key, value] : pool_.instance_seconds()) {
        seconds[{key.first, to_string(key.second)}] = value;
    }
    const std::lock_guard lock(mutex_);
    published_ = std::move(views);
    seconds_ = std::move(seconds);
}

std::vector<InstanceView> Ec2Pool::instances() {
    const std::lock_guard lock(mutex_);
    return published_;
}

std::optional<InstanceView> Ec2Pool::instance_of(const std::string& worker) {
    const std::lock_guard lock(mutex_);
    const auto found = std::ranges::find(published_, worker, &InstanceView::worker);
    if (found == published_.end()) {
        return std::nullopt;
    }
    return *found;
}

std::map<std::pair<std::string, std::string>, double> Ec2Pool::instance_seconds() {
    const std::lock_guard lock(mutex_);
    return seconds_;
}

} // namespace ci::master
