#include "ci/aws/credentials.h"

#include <utility>

namespace ci::aws {

namespace {

class StaticCredentials final : public CredentialsProvider {
public:
    explicit StaticCredentials(TimedCredentials credentials)
        : credentials_(std::move(credentials)) {}

    Result<TimedCredentials> get() override { return credentials_; }

private:
    const TimedCredentials credentials_;
};

} // namespace

std::shared_ptr<CredentialsProvider> make_static_credentials(Credentials credentials,
                                                             std::string source) {
    return std::make_shared<StaticCredentials>(
        TimedCredentials{std::move(credentials), std::nullopt, std::move(source)});
}

} // namespace ci::aws
