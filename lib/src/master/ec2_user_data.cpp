// The user data of EC2 latent workers: each class's cloud-init template, read once, filled in
// per launch (ci/config/user_data.h). `ci-master start` and `ci-master render-user-data` use the
// same renderer, so what render-user-data prints is what instances boot with (but for the
// masked name and token).

#include <map>
#include <memory>

#include <fmt/format.h>

#include <ci/config/user_data.h>
#include <ci/master/master.h>

namespace ci::master {

namespace {

struct ClassTemplate {
    std::string text;
    config::Duration unreachable_timeout{};
};

} // namespace

Result<Ec2UserData> ec2_user_data_renderer(const config::Config& config) {
    auto templates = std::make_shared<std::map<std::string, ClassTemplate>>();
    for (const auto& [name, worker_class] : config.slaves) {
        const auto* ec2 = std::get_if<config::Ec2Workers>(&worker_class);
        if (ec2 == nullptr) {
            continue;
        }
        auto text = config::read_user_data_template(*ec2);
        if (!text) {
            return fail(text.error().code,
                        fmt::format("slaves.{}.user_data_template: {}", name, text.error().message),
                        text.error().native);
        }
        if (auto checked = config::check_user_data_template(*text); !checked) {
            return fail(checked.error().code,
                        fmt::format("{}:{}",
                                    ec2->user_data_template.empty() ? "(default template)"
                                                                    : ec2->user_data_template,
                                    checked.error().message));
        }
        templates->emplace(name, ClassTemplate{std::move(*text), ec2->unreachable_timeout});
    }
    return Ec2UserData([templates, host = config.buildmaster.host](
                           const Ec2Launch& launch) -> Result<std::string> {
        const auto found = templates->find(launch.worker_class);
        if (found == templates->end()) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("user data: slaves.{} is not an EC2 class of the config",
                                    launch.worker_class));
        }
        if (launch.master_fingerprint.empty()) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("user data of slaves.{}: the worker port has no certificate "
                                    "(buildmaster.tls is false), so a booted worker could not "
                                    "check the master",
                                    launch.worker_class));
        }
        config::UserDataValues values;
        values.master_host = host;
        values.worker_port = launch.worker_port;
        values.master_fingerprint = launch.master_fingerprint;
        values.worker_name = launch.worker;
        values.worker_token = launch.token;
        values.worker_class = launch.worker_class;
        values.unreachable_timeout = found->second.unreachable_timeout;
        return config::render_user_data(found->second.text, values);
    });
}

} // namespace ci::master
