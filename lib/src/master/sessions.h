#pragma once

// Who is looking at a web UI page: a logged-in user of the config's `auth`, or nobody. The UI's
// pages ask Sessions::viewer for each request, show action forms (force, stop, cancel, worker
// actions) only to a logged-in viewer, and put its CSRF token into each form as the hidden field
// `csrf`.
//
// Logins are not built yet: every viewer is anonymous (the web UI issue builds the login, the
// session cookie and the form routes behind this interface).

#include <string>

#include <ci/http/server.h>

namespace ci::master {

/// The person behind one request to a page.
struct Viewer {
    std::string user;       ///< the logged-in user; empty: nobody is logged in
    std::string csrf_token; ///< what each form must send back as `csrf`; empty when anonymous

    [[nodiscard]] bool logged_in() const { return !user.empty(); }
};

/// The web UI's logins.
class Sessions {
public:
    /// The viewer of `request` (from its session cookie). Thread-safe.
    [[nodiscard]] Viewer viewer(const http::ServerRequest& request) const;
};

} // namespace ci::master
