//! A parsed request as handlers see it: method, target, version, headers, decoded body.

/// Request methods this server recognises (RFC 9110 §9 plus PATCH). Any other method
/// token is answered 501 by the connection and never reaches a handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// CONNECT
    Connect,
    /// OPTIONS
    Options,
    /// TRACE
    Trace,
    /// PATCH
    Patch,
}

impl Method {
    /// The method for a token, case-sensitively (RFC 9110 §9.1), or `None`.
    pub fn from_token(token: &str) -> Option<Method> {
        Some(match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "CONNECT" => Method::Connect,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "PATCH" => Method::Patch,
            _ => return None,
        })
    }

    /// The method's token.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
        }
    }
}

/// The request's protocol version. Others are answered 505.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: connections close after each response unless `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1: persistent by default.
    Http11,
}

/// One request, borrowed from the connection's buffers for the duration of
/// [`Handler::handle`](crate::Handler::handle).
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub(crate) method: Method,
    pub(crate) target: &'a str,
    pub(crate) version: Version,
    pub(crate) headers: &'a [httparse::Header<'a>],
    pub(crate) body: &'a [u8],
}

impl<'a> Request<'a> {
    /// Builds a request by hand (tests, or handlers calling handlers).
    pub fn new(
        method: Method,
        target: &'a str,
        version: Version,
        headers: &'a [httparse::Header<'a>],
        body: &'a [u8],
    ) -> Self {
        Request {
            method,
            target,
            version,
            headers,
            body,
        }
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The request target exactly as received (`/a%20b?x=1`, `http://host/a`, `*`).
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// The raw, still percent-encoded path: the target without scheme and authority
    /// (absolute-form), without the query and without a `#fragment` (never valid in a
    /// request target; nginx drops it too). For `*` and authority-form targets, the
    /// whole target.
    pub fn path(&self) -> &'a str {
        let t = strip_fragment(strip_absolute_form(self.target));
        match t.find('?') {
            Some(q) => t.get(..q).unwrap_or(t),
            None => t,
        }
    }

    /// The query string after `?`, if any (still percent-encoded, fragment dropped).
    pub fn query(&self) -> Option<&'a str> {
        let t = strip_fragment(strip_absolute_form(self.target));
        t.find('?').and_then(|q| t.get(q + 1..))
    }

    /// The protocol version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.header_values(name).next()
    }

    /// Every value of header `name` (case-insensitive), in order of arrival.
    pub fn header_values<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + 'n
    where
        'a: 'n,
    {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// All header fields as (name, value), in order of arrival.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        self.headers.iter().map(|h| (h.name, h.value))
    }

    /// The body, chunked coding removed. Empty when the handler's
    /// [`wants_body`](crate::Handler::wants_body) said no.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}

/// `http://host/p?q` → `/p?q`; `http://host` → `/`; anything else unchanged.
fn strip_absolute_form(target: &str) -> &str {
    let lower_starts = |p: &str| {
        target
            .get(..p.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(p))
    };
    let rest = if lower_starts("http://") {
        target.get(7..)
    } else if lower_starts("https://") {
        target.get(8..)
    } else {
        return target;
    };
    match rest {
        Some(rest) => match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes().get(i) == Some(&b'/') => rest.get(i..).unwrap_or("/"),
            // `http://host?q` has an empty path; treat it as `/`.
            _ => "/",
        },
        None => target,
    }
}

/// `/p?q#f` → `/p?q`: clients must not send fragments (RFC 9112 §3.2), some do.
fn strip_fragment(target: &str) -> &str {
    match target.find('#') {
        Some(i) => target.get(..i).unwrap_or(target),
        None => target,
    }
}

/// Whether a header value's comma-separated list contains `token` (case-insensitive).
pub(crate) fn list_contains(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|item| crate::date::trim_ows(item).eq_ignore_ascii_case(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(target: &'a str, headers: &'a [httparse::Header<'a>]) -> Request<'a> {
        Request::new(Method::Get, target, Version::Http11, headers, b"")
    }

    #[test]
    fn path_and_query() {
        let r = req("/a/b?x=1&y", &[]);
        assert_eq!(r.path(), "/a/b");
        assert_eq!(r.query(), Some("x=1&y"));
        let r = req("/plain", &[]);
        assert_eq!(r.path(), "/plain");
        assert_eq!(r.query(), None);
    }

    #[test]
    fn fragments_are_dropped() {
        let r = req("/index.html#top", &[]);
        assert_eq!((r.path(), r.query()), ("/index.html", None));
        let r = req("/a?x=1#frag?y", &[]);
        assert_eq!((r.path(), r.query()), ("/a", Some("x=1")));
        assert_eq!(req("http://h/p#f", &[]).path(), "/p");
        assert_eq!(req("/#", &[]).path(), "/");
    }

    #[test]
    fn absolute_form_is_reduced_to_its_path() {
        assert_eq!(req("http://example.com/x?q", &[]).path(), "/x");
        assert_eq!(req("HTTPS://example.com", &[]).path(), "/");
        assert_eq!(req("http://example.com?q=1", &[]).path(), "/");
        assert_eq!(req("*", &[]).path(), "*");
    }

    #[test]
    fn headers_are_case_insensitive() {
        let h = [
            httparse::Header {
                name: "Accept",
                value: b"a",
            },
            httparse::Header {
                name: "ACCEPT",
                value: b"b",
            },
        ];
        let r = req("/", &h);
        assert_eq!(r.header("accept"), Some(&b"a"[..]));
        assert_eq!(r.header_values("Accept").count(), 2);
        assert_eq!(r.header("missing"), None);
    }

    #[test]
    fn method_tokens() {
        assert_eq!(Method::from_token("HEAD"), Some(Method::Head));
        assert_eq!(Method::from_token("get"), None);
        assert_eq!(Method::Patch.as_str(), "PATCH");
    }

    #[test]
    fn list_tokens() {
        assert!(list_contains(b"keep-alive, Upgrade", "upgrade"));
        assert!(list_contains(b" close ", "close"));
        assert!(!list_contains(b"closed", "close"));
    }
}
