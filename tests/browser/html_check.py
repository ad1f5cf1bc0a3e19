"""The web UI's HTML checker: every page well-formed, every link and asset on the master answers.

`check_html(text)` parses one page with Python's html.parser (not the master's own code) and
returns its problems (strings) and what it refers to:
- a `<!DOCTYPE html>` first;
- every element that is not void (`<br>`, `<input>`, ...) closed by its own end tag, in order:
  an unclosed `<div>`, a misnested `<b><i></b></i>`, a stray `</p>` or a self-closed `<div/>`
  is a problem (the UI's templates are ours: no end tag is left to the parser's guesswork);
- no `id` twice (links to `#step-N-L` need one target);
- no `<script>`, stylesheet or image from another origin (assets are embedded in the master).

`Crawler(base, cookie)` fetches pages from `base` (GET, urllib), checks each HTML page, and
fetches every same-origin `href`/`src` it finds (GET, 200 required; HTML answers are crawled in
turn, up to a limit). Forms are not submitted: a form's action must be on the master, and a POST
form must carry the hidden field `csrf` (the shared contract of the UI's forms), except the login
form; a GET form's action is fetched like a link.
"""

import html.parser
import urllib.error
import urllib.parse
import urllib.request

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}
# Elements whose content is raw text: html.parser hands it over as data, never as tags.
RAW = {"script", "style"}


class _Parser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems = []
        self.stack = []  # (tag, line)
        self.ids = {}
        self.links = []  # (attribute, value, tag)
        self.forms = []  # {"action", "method", "fields": {name: value}, "line"}
        self.form = None
        self.seen_doctype = False
        self.seen_element = False

    def where(self):
        return f"line {self.getpos()[0]}"

    def handle_decl(self, decl):
        if decl.lower() == "doctype html" and not self.seen_element:
            self.seen_doctype = True

    def handle_starttag(self, tag, attrs):
        self.start(tag, attrs)
        if tag not in VOID:
            self.stack.append((tag, self.getpos()[0]))

    def handle_startendtag(self, tag, attrs):
        self.start(tag, attrs)
        if tag not in VOID:
            self.problems.append(f"{self.where()}: <{tag}/> self-closed (not a void element)")

    def start(self, tag, attrs):
        if not self.seen_element and not self.seen_doctype:
            self.problems.append(f"{self.where()}: <{tag}> before <!DOCTYPE html>")
        self.seen_element = True
        values = dict(attrs)
        if "id" in values:
            if values["id"] in self.ids:
                self.problems.append(f"{self.where()}: id {values['id']!r} again (first at line "
                                     f"{self.ids[values['id']]})")
            else:
                self.ids[values["id"]] = self.getpos()[0]
        for name in ("href", "src"):
            if values.get(name) is not None:
                self.links.append((name, values[name], tag, values.get("rel", "")))
        if tag == "form":
            if self.form is not None:
                self.problems.append(f"{self.where()}: <form> inside a <form>")
            self.form = {"action": values.get("action") or "", "line": self.getpos()[0],
                         "method": (values.get("method") or "get").lower(), "fields": {}}
            self.forms.append(self.form)
        elif tag in ("input", "select", "textarea", "button") and self.form is not None:
            if values.get("name"):
                self.form["fields"][values["name"]] = values.get("value") or ""

    def handle_endtag(self, tag):
        if tag in VOID:
            self.problems.append(f"{self.where()}: </{tag}> (a void element has no end tag)")
            return
        if not self.stack:
            self.problems.append(f"{self.where()}: </{tag}> closes nothing")
            return
        open_tag, line = self.stack[-1]
        if open_tag == tag:
            self.stack.pop()
        elif any(t == tag for t, _ in self.stack):
            self.problems.append(f"{self.where()}: </{tag}> while <{open_tag}> of line {line} "
                                 "is open (misnested or unclosed)")
            while self.stack and self.stack[-1][0] != tag:
                self.stack.pop()
            self.stack.pop()
        else:
            self.problems.append(f"{self.where()}: </{tag}> closes nothing (<{open_tag}> of line "
                                 f"{line} is open)")
        if tag == "form":
            self.form = None

    def close(self):
        super().close()
        for tag, line in self.stack:
            self.problems.append(f"<{tag}> of line {line} never closed")
        if not self.seen_doctype:
            self.problems.append("no <!DOCTYPE html>")


def check_html(text):
    """(problems, links, forms) of one HTML page: problems as strings, links as (attribute,
    value, tag, rel), forms as dicts (action, method, fields, line)."""
    parser = _Parser()
    parser.feed(text)
    parser.close()
    return parser.problems, parser.links, parser.forms


def same_origin(base, url):
    """The absolute URL of `url` (relative to page `base`) without its fragment, and whether it
    is on base's scheme, host and port."""
    absolute = urllib.parse.urljoin(base, url)
    absolute = urllib.parse.urldefrag(absolute)[0]
    a, b = urllib.parse.urlsplit(absolute), urllib.parse.urlsplit(base)
    return absolute, (a.scheme, a.netloc) == (b.scheme, b.netloc)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Crawler:
    """Checks the pages of the master at `base` (http://127.0.0.1:PORT) as one viewer: `cookie`
    is the Cookie header of a logged-in session, or None for an anonymous viewer."""

    def __init__(self, base, cookie=None, limit=400, body_limit=4 << 20):
        self.base = base.rstrip("/") + "/"
        self.cookie = cookie
        self.limit = limit
        self.body_limit = body_limit
        self.opener = urllib.request.build_opener(_NoRedirect)
        self.problems = []  # (url, problem)
        self.pages = []  # the HTML pages checked
        self.fetched = {}  # url -> status

    def fetch(self, url):
        """(status, content type, body up to body_limit) of GET `url`; redirects not followed."""
        request = urllib.request.Request(url)
        if self.cookie:
            request.add_header("Cookie", self.cookie)
        try:
            with self.opener.open(request, timeout=20) as answer:
                return (answer.status, answer.headers.get("Content-Type", ""),
                        answer.read(self.body_limit))
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Content-Type", ""), b""

    def crawl(self, paths):
        """Checks the pages at `paths` (e.g. "/", "/workers") and everything they link to on the
        master; returns self. Each of `paths` must answer 200 with HTML."""
        queue = [self.base.rstrip("/") + p for p in paths]
        for url in queue:
            self.fetched[url] = None
        required = set(queue)
        while queue:
            url = queue.pop(0)
            status, content_type, body = self.fetch(url)
            self.fetched[url] = status
            if status != 200:
                self.problems.append((url, f"GET answered {status}"))
                continue
            if not content_type.startswith("text/html"):
                if url in required:
                    self.problems.append((url, f"not an HTML page ({content_type})"))
                continue
            self.pages.append(url)
            problems, links, forms = check_html(body.decode("utf-8", errors="replace"))
            self.problems += [(url, p) for p in problems]
            targets = []
            for attribute, value, tag, rel in links:
                if value.startswith(("mailto:", "javascript:", "data:")) or value.startswith("#"):
                    if value.startswith("javascript:"):
                        self.problems.append((url, f"<{tag} {attribute}={value!r}>: javascript:"))
                    continue
                absolute, local = same_origin(url, value)
                if not local:
                    if tag != "a":
                        self.problems.append((url, f"<{tag} {attribute}={value!r}> loads from "
                                                   "another origin"))
                    continue
                targets.append(absolute)
            for form in forms:
                absolute, local = same_origin(url, form["action"] or url)
                if not local:
                    self.problems.append((url, f"form of line {form['line']} posts to another "
                                               f"origin ({form['action']!r})"))
                elif form["method"] == "get":
                    targets.append(absolute)
                elif form["method"] != "post":
                    self.problems.append((url, f"form of line {form['line']}: method "
                                               f"{form['method']!r}"))
                elif urllib.parse.urlsplit(absolute).path != "/login" and \
                        "csrf" not in form["fields"]:
                    self.problems.append((url, f"POST form of line {form['line']} to "
                                               f"{form['action']!r} has no csrf field"))
            for target in targets:
                if target in self.fetched:
                    continue
                if len(self.fetched) >= self.limit:
                    self.problems.append((url, f"more than {self.limit} URLs: crawl cut"))
                    return self
                self.fetched[target] = None
                queue.append(target)
        return self
