#pragma once

/// \file
/// User data for EC2 latent workers: a cloud-init template (the class's `user_data_template`
/// file, else the default shipped as share/user-data/worker.cloud-config) whose placeholders
/// the master fills in for each instance it launches.
///
/// A placeholder is `{{name}}` (spaces inside the braces allowed: `{{ name }}`), one of:
///  - `master`: the worker port as the worker dials it, `host:port` (`[v6]:port`);
///  - `master_host`, `worker_port`: its two halves (the host without brackets);
///  - `master_fingerprint`: the worker port's certificate, `sha256:HEX` (`--fingerprint`);
///  - `worker_name`: `<class>/<suffix>`, the name the master expects at login;
///  - `worker_token`: the one-time registration token (a secret, spent at the first login);
///  - `class`: the worker class;
///  - `unreachable_timeout`: the class's `unreachable_timeout` in seconds (the watchdog's).
/// Every `{{` opens a placeholder: an unknown name or a `{{` without `}}` is an error, found
/// by `ci-master check-config` (file:line:column) rather than on a booting instance. There is
/// no escape for a literal `{{`; cloud-config needs none.
/// Values are pasted as they are; render_user_data refuses a value that could break out of
/// the YAML or shell text around it (control characters, quotes, `\`, `$`, backquote).

#include <filesystem>
#include <string>
#include <string_view>

#include <ci/config/config.h>
#include <ci/core/error.h>

namespace ci::config {

/// What the placeholders stand for, for one instance.
struct UserDataValues {
    std::string master_host;        ///< `{{master_host}}`: buildmaster.host
    std::uint16_t worker_port = 0;  ///< `{{worker_port}}`: buildmaster.worker_port
    std::string master_fingerprint; ///< `{{master_fingerprint}}`: "sha256:" and 64 hex digits
    std::string worker_name;        ///< `{{worker_name}}`
    std::string worker_token;       ///< `{{worker_token}}`: a secret
    std::string worker_class;       ///< `{{class}}`
    Duration unreachable_timeout{}; ///< `{{unreachable_timeout}}`: whole seconds
};

/// The default template (share/user-data/worker.cloud-config, built into the library).
[[nodiscard]] std::string_view default_user_data_template() noexcept;

/// Checks the placeholders of `text` without filling them in. Fails with InvalidArgument whose
/// message starts "LINE:COLUMN: " (1-based, of the offending `{{`) and names the placeholder
/// and the known ones. Pure.
[[nodiscard]] Status check_user_data_template(std::string_view text);

/// `text` with its placeholders filled in from `values`. Fails with InvalidArgument as
/// check_user_data_template, or naming a value that holds a character it refuses (the value
/// itself is not in the message: it may be the token). Pure; `{{master}}` is
/// `master_host:worker_port`, with brackets around an IPv6 host.
[[nodiscard]] Result<std::string> render_user_data(std::string_view text,
                                                   const UserDataValues& values);

/// The template of an EC2 class: its `user_data_template` file read, else the default. Fails
/// with NotFound, PermissionDenied or Io naming the file.
[[nodiscard]] Result<std::string> read_user_data_template(const Ec2Workers& worker_class);

/// Reads and checks the template of every EC2 class of `config` (check-config's file check).
/// Fails with the first problem: InvalidArgument as "FILE:LINE:COLUMN: slaves.CLASS.
/// user_data_template: ..." for a bad placeholder, or the read error.
[[nodiscard]] Status check_user_data_templates(const Config& config);

} // namespace ci::config
