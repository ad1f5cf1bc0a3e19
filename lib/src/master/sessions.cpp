#include "master/sessions.h"

namespace ci::master {

Viewer Sessions::viewer(const http::ServerRequest& /*request*/) const {
    return {};
}

} // namespace ci::master
