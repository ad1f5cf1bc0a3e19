#include "ci/aws/ec2.h"

#include <utility>

#include <fmt/format.h>
#include <pugixml.hpp>

#include <ci/aws/sigv4.h>
#include <ci/core/crypto.h>

#include "aws/endpoint.h"

namespace ci::aws {

namespace {

// Loads an answer and returns its root element if it is named `root`.
Result<pugi::xml_node>
load_answer(pugi::xml_document& document, std::string_view xml, const char* root) {
    const auto parsed = document.load_buffer(xml.data(), xml.size());
    if (!parsed) {
        return fail(ErrorCode::AwsService,
                    fmt::format("{}: the answer is not XML ({})", root, parsed.description()));
    }
    const auto node = document.child(root);
    if (!node) {
        return fail(ErrorCode::AwsService,
                    fmt::format("{}: the answer is another document ({})",
                                root,
                                document.first_child().name()));
    }
    return node;
}

std::map<std::string, std::string> parse_tags(const pugi::xml_node& tag_set) {
    std::map<std::string, std::string> tags;
    for (const auto item : tag_set.children("item")) {
        tags.emplace(item.child_value("key"), item.child_value("value"));
    }
    return tags;
}

Instance parse_instance(const pugi::xml_node& item) {
    Instance instance;
    instance.instance_id = item.child_value("instanceId");
    instance.image_id = item.child_value("imageId");
    instance.instance_type = item.child_value("instanceType");
    instance.state = item.child("instanceState").child_value("name");
    instance.private_ip = item.child_value("privateIpAddress");
    instance.public_ip = item.child_value("ipAddress");
    instance.launch_time = item.child_value("launchTime");
    instance.lifecycle = item.child_value("instanceLifecycle");
    instance.tags = parse_tags(item.child("tagSet"));
    return instance;
}

void append_tags(QueryParameters& parameters,
                 const std::string& prefix,
                 const std::map<std::string, std::string>& tags) {
    int n = 1;
    for (const auto& [key, value] : tags) {
        parameters.emplace_back(fmt::format("{}.{}.Key", prefix, n), key);
        parameters.emplace_back(fmt::format("{}.{}.Value", prefix, n), value);
        ++n;
    }
}

void append_list(QueryParameters& parameters,
                 std::string_view name,
                 const std::vector<std::string>& values) {
    for (std::size_t i = 0; i < values.size(); ++i) {
        parameters.emplace_back(fmt::format("{}.{}", name, i + 1), values[i]);
    }
}

} // namespace

Result<http::Request> make_ec2_request(const Ec2Endpoint& endpoint,
                                       std::string_view action,
                                       const QueryParameters& parameters) {
    auto base = detail::parse_endpoint(
        endpoint.endpoint_url.empty() ? fmt::format("https://ec2.{}.amazonaws.com", endpoint.region)
                                      : endpoint.endpoint_url);
    if (!base) {
        return fail(base.error());
    }
    http::Request request;
    request.method = "POST";
    request.scheme = base->scheme;
    request.host = base->host;
    request.path = base->path.empty() ? "/" : base->path + "/";
    request.headers = {
        {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
    };
    std::string& body = request.body;
    body = "Action=";
    http::append_uri_encoded(body, action);
    body += "&Version=";
    body += ec2_api_version;
    for (const auto& [name, value] : parameters) {
        body += '&';
        http::append_uri_encoded(body, name);
        body += '=';
        http::append_uri_encoded(body, value);
    }
    return request;
}

QueryParameters run_instances_parameters(const RunInstancesInput& input) {
    QueryParameters parameters = {
        {"ImageId", input.image_id},
        {"InstanceType", input.instance_type},
        {"MinCount", std::to_string(input.count)},
        {"MaxCount", std::to_string(input.count)},
    };
    if (!input.client_token.empty()) {
        parameters.emplace_back("ClientToken", input.client_token);
    }
    if (!input.user_data.empty()) {
        parameters.emplace_back("UserData", crypto::base64_encode(input.user_data));
    }
    if (!input.subnet_id.empty()) {
        parameters.emplace_back("SubnetId", input.subnet_id);
    }
    append_list(parameters, "SecurityGroupId", input.security_group_ids);
    if (!input.iam_instance_profile.empty()) {
        const bool arn = input.iam_instance_profile.starts_with("arn:");
        parameters.emplace_back(arn ? "IamInstanceProfile.Arn" : "IamInstanceProfile.Name",
                                input.iam_instance_profile);
    }
    if (!input.key_name.empty()) {
        parameters.emplace_back("KeyName", input.key_name);
    }
    if (input.spot_max_price) {
        parameters.emplace_back("InstanceMarketOptions.MarketType", "spot");
        parameters.emplace_back("InstanceMarketOptions.SpotOptions.MaxPrice",
                                *input.spot_max_price);
        parameters.emplace_back("InstanceMarketOptions.SpotOptions.SpotInstanceType", "one-time");
    }
    if (!input.shutdown_behavior.empty()) {
        parameters.emplace_back("InstanceInitiatedShutdownBehavior", input.shutdown_behavior);
    }
    if (!input.tags.empty()) {
        // Tagged at launch, so that an instance is never untagged, even for a moment: the
        // reconciler finds what it launched by these tags.
        parameters.emplace_back("TagSpecification.1.ResourceType", "instance");
        append_tags(parameters, "TagSpecification.1.Tag", input.tags);
        parameters.emplace_back("TagSpecification.2.ResourceType", "volume");
        append_tags(parameters, "TagSpecification.2.Tag", input.tags);
    }
    return parameters;
}

void append_filters(QueryParameters& parameters, const std::vector<Filter>& filters) {
    for (std::size_t i = 0; i < filters.size(); ++i) {
        const std::string prefix = fmt::format("Filter.{}", i + 1);
        parameters.emplace_back(prefix + ".Name", filters[i].name);
        append_list(parameters, prefix + ".Value", filters[i].values);
    }
}

Result<std::vector<Instance>> parse_run_instances(std::string_view xml) {
    pugi::xml_document document;
    auto root = load_answer(document, xml, "RunInstancesResponse");
    if (!root) {
        return fail(root.error());
    }
    std::vector<Instance> instances;
    for (const auto item : root->child("instancesSet").children("item")) {
        instances.push_back(parse_instance(item));
    }
    return instances;
}

Result<InstancesPage> parse_describe_instances(std::string_view xml) {
    pugi::xml_document document;
    auto root = load_answer(document, xml, "DescribeInstancesResponse");
    if (!root) {
        return fail(root.error());
    }
    InstancesPage page;
    for (const auto reservation : root->child("reservationSet").children("item")) {
        for (const auto item : reservation.child("instancesSet").children("item")) {
            page.instances.push_back(parse_instance(item));
        }
    }
    page.next_token = root->child_value("nextToken");
    return page;
}

Result<std::vector<StateChange>> parse_terminate_instances(std::string_view xml) {
    return parse_state_changes(xml, "TerminateInstancesResponse");
}

Result<std::vector<StateChange>> parse_state_changes(std::string_view xml, const char* root_name) {
    pugi::xml_document document;
    auto root = load_answer(document, xml, root_name);
    if (!root) {
        return fail(root.error());
    }
    std::vector<StateChange> changes;
    for (const auto item : root->child("instancesSet").children("item")) {
        changes.push_back(StateChange{item.child_value("instanceId"),
                                      item.child("previousState").child_value("name"),
                                      item.child("currentState").child_value("name")});
    }
    return changes;
}

Result<std::vector<Image>> parse_describe_images(std::string_view xml) {
    pugi::xml_document document;
    auto root = load_answer(document, xml, "DescribeImagesResponse");
    if (!root) {
        return fail(root.error());
    }
    std::vector<Image> images;
    for (const auto item : root->child("imagesSet").children("item")) {
        images.push_back(Image{item.child_value("imageId"),
                               item.child_value("name"),
                               item.child_value("imageState"),
                               item.child_value("creationDate"),
                               parse_tags(item.child("tagSet"))});
    }
    return images;
}

Error ec2_error(std::string_view action, const http::Response& response) {
    return detail::aws_error(action, response, detail::ErrorFormat::Ec2);
}

bool is_throttling(const http::Response& response) {
    if (response.status == 503) {
        return true;
    }
    if (response.status != 400 && response.status != 429) {
        return false;
    }
    const auto body = detail::parse_error_body(response, detail::ErrorFormat::Ec2);
    return body.code == "RequestLimitExceeded" || body.code == "Throttling" ||
           body.code == "ThrottlingException" || body.code == "SlowDown" || response.status == 429;
}

http::RetryPolicy aws_retry_policy() {
    http::RetryPolicy policy;
    policy.retryable = [](const http::Response& response) {
        return is_throttling(response) || response.status == 500 || response.status == 502 ||
               response.status == 504;
    };
    return policy;
}

Ec2Client::Ec2Client(std::shared_ptr<http::Client> http,
                     std::shared_ptr<CredentialsProvider> credentials,
                     const Clock& clock,
                     Ec2Endpoint endpoint)
    : http_(std::move(http)), credentials_(std::move(credentials)), clock_(clock),
      endpoint_(std::move(endpoint)) {}

Result<std::string> Ec2Client::call(std::string_view action, const QueryParameters& parameters) {
    auto request = make_ec2_request(endpoint_, action, parameters);
    if (!request) {
        return fail(request.error());
    }
    auto credentials = credentials_->get();
    if (!credentials) {
        return fail(credentials.error().with_context(action));
    }
    SigningParams params;
    params.region = endpoint_.region;
    params.service = "ec2";
    params.time = clock_.now();
    auto signature = sign(*request, credentials->credentials, params);
    if (!signature) {
        return fail(signature.error().with_context(action));
    }
    auto response = http_->send(apply(std::move(*request), *signature));
    if (!response) {
        return fail(response.error().with_context(action));
    }
    if (response->status / 100 != 2) {
        return fail(ec2_error(action, *response));
    }
    return std::move(response->body);
}

Result<std::vector<Instance>> Ec2Client::run_instances(const RunInstancesInput& input) {
    auto body = call("RunInstances", run_instances_parameters(input));
    if (!body) {
        return fail(body.error());
    }
    return parse_run_instances(*body);
}

Result<std::vector<Instance>>
Ec2Client::describe_instances(const std::vector<Filter>& filters,
                              const std::vector<std::string>& instance_ids) {
    std::vector<Instance> instances;
    std::string token;
    do {
        QueryParameters parameters;
        append_list(parameters, "InstanceId", instance_ids);
        append_filters(parameters, filters);
        if (!token.empty()) {
            parameters.emplace_back("NextToken", token);
        }
        auto body = call("DescribeInstances", parameters);
        if (!body) {
            return fail(body.error());
        }
        auto page = parse_describe_instances(*body);
        if (!page) {
            return fail(page.error());
        }
        std::ranges::move(page->instances, std::back_inserter(instances));
        token = std::move(page->next_token);
    } while (!token.empty());
    return instances;
}

Result<std::vector<StateChange>>
Ec2Client::terminate_instances(const std::vector<std::string>& instance_ids) {
    if (instance_ids.empty()) {
        return std::vector<StateChange>{};
    }
    QueryParameters parameters;
    append_list(parameters, "InstanceId", instance_ids);
    auto body = call("TerminateInstances", parameters);
    if (!body) {
        return fail(body.error());
    }
    return parse_terminate_instances(*body);
}

Result<std::vector<StateChange>>
Ec2Client::stop_instances(const std::vector<std::string>& instance_ids) {
    return change_states("StopInstances", instance_ids);
}

Result<std::vector<StateChange>>
Ec2Client::start_instances(const std::vector<std::string>& instance_ids) {
    return change_states("StartInstances", instance_ids);
}

Result<std::vector<StateChange>>
Ec2Client::change_states(std::string_view action, const std::vector<std::string>& instance_ids) {
    if (instance_ids.empty()) {
        return std::vector<StateChange>{};
    }
    QueryParameters parameters;
    append_list(parameters, "InstanceId", instance_ids);
    auto body = call(action, parameters);
    if (!body) {
        return fail(body.error());
    }
    return parse_state_changes(*body, fmt::format("{}Response", action).c_str());
}

Result<std::vector<Image>> Ec2Client::describe_images(const std::vector<std::string>& owners,
                                                      const std::vector<Filter>& filters) {
    QueryParameters parameters;
    append_list(parameters, "Owner", owners);
    append_filters(parameters, filters);
    auto body = call("DescribeImages", parameters);
    if (!body) {
        return fail(body.error());
    }
    return parse_describe_images(*body);
}

Status Ec2Client::create_tags(const std::vector<std::string>& resource_ids,
                              const std::map<std::string, std::string>& tags) {
    QueryParameters parameters;
    append_list(parameters, "ResourceId", resource_ids);
    append_tags(parameters, "Tag", tags);
    auto body = call("CreateTags", parameters);
    if (!body) {
        return fail(body.error());
    }
    return {};
}

} // namespace ci::aws
